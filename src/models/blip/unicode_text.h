// The text functions of transformers' slow BertTokenizer (tokenization_utils and BasicTokenizer),
// on ICU's Unicode data (Unicode 15 in Debian 12's ICU 72; Python 3.11's unicodedata is Unicode
// 14, so characters assigned in Unicode 15 are letters/symbols here but unassigned, Cn, there).
// Each function names the Python it mirrors.
#pragma once

#include <string>
#include <string_view>

namespace capforge::blip::text {

// code points -> UTF-8
std::string to_utf8(std::u32string_view s);
// UTF-8 -> code points; invalid sequences become U+FFFD as Python's errors="replace" does.
std::u32string decode_utf8(std::string_view s);
bool is_ascii(std::u32string_view s);
// tokenization_utils._is_whitespace: " \t\n\r" or category Zs.
bool is_bert_whitespace(char32_t c);
// tokenization_utils._is_control: category C* except "\t\n\r".
bool is_control(char32_t c);
// tokenization_utils._is_punctuation: all non-alphanumeric printable ASCII, or category P*.
bool is_punctuation(char32_t c);
// Python's str.isspace (what str.split() splits on).
bool py_isspace(char32_t c);
// BasicTokenizer._is_chinese_char: exactly HF's ranges (CJK ideographs, not kana or hangul).
bool is_chinese(char32_t c);
// Python's str.lower() of ONE character, appended to out (root locale: 'İ' -> "i̇").
void append_lower(char32_t c, std::u32string& out);
// str.lower() of a whole token (context-sensitive: final sigma).
std::u32string lower(const std::u32string& s);
// unicodedata.normalize(NFC if compose, else NFD, s); the text unnormalized if ICU ever failed.
std::u32string normalize(const std::u32string& s, bool compose);
// BasicTokenizer._run_strip_accents: NFD, then drop category Mn.
std::u32string strip_accents(const std::u32string& s);

}  // namespace capforge::blip::text
