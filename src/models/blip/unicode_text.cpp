// BERT's basic tokenizer's text functions on ICU's Unicode data (see unicode_text.h).
#include "models/blip/unicode_text.h"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <algorithm>

namespace capforge::blip::text {

namespace {

void append_u32(const icu::UnicodeString& u, std::u32string& out) {
  for (int32_t i = 0; i < u.length(); i = u.moveIndex32(i, 1)) out.push_back((char32_t)u.char32At(i));
}

icu::UnicodeString to_icu(std::u32string_view s) {
  return icu::UnicodeString::fromUTF32(reinterpret_cast<const UChar32*>(s.data()), (int32_t)s.size());
}

uint32_t gc_mask(char32_t c) { return U_GET_GC_MASK((UChar32)c); }

}  // namespace

std::string to_utf8(std::u32string_view s) {
  std::string out;
  return to_icu(s).toUTF8String(out);
}

// UTF-8 -> code points; invalid sequences become U+FFFD as Python's errors="replace" does (ICU
// follows the same "maximal subpart" practice, so valid bytes after a bad one are kept). Chunks
// are cut before a non-continuation byte, where no maximal subpart can straddle the cut.
std::u32string decode_utf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    size_t end = std::min(s.size(), i + (1u << 20));
    while (end < s.size() && ((unsigned char)s[end] & 0xC0) == 0x80) ++end;
    append_u32(icu::UnicodeString::fromUTF8(icu::StringPiece(s.data() + i, (int32_t)(end - i))), out);
    i = end;
  }
  return out;
}

bool is_ascii(std::u32string_view s) {
  return std::all_of(s.begin(), s.end(), [](char32_t c) { return c < 0x80; });
}

// tokenization_utils._is_whitespace: " \t\n\r" or category Zs.
bool is_bert_whitespace(char32_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || (gc_mask(c) & U_GC_ZS_MASK);
}
// tokenization_utils._is_control: category C* (Cc Cf Cs Co Cn) except "\t\n\r".
bool is_control(char32_t c) { return c != '\t' && c != '\n' && c != '\r' && (gc_mask(c) & U_GC_C_MASK); }
// tokenization_utils._is_punctuation: all non-alphanumeric printable ASCII, or category P*.
bool is_punctuation(char32_t c) {
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126) ||
         (gc_mask(c) & U_GC_P_MASK);
}
// Python's str.isspace (what str.split() splits on): bidi class WS, B or S, or category Zs.
bool py_isspace(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x1F);
  if (gc_mask(c) & U_GC_ZS_MASK) return true;
  auto d = u_charDirection((UChar32)c);
  return d == U_WHITE_SPACE_NEUTRAL || d == U_BLOCK_SEPARATOR || d == U_SEGMENT_SEPARATOR;
}
// BasicTokenizer._is_chinese_char: exactly HF's ranges (CJK ideographs, not kana or hangul).
bool is_chinese(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// Python's str.lower() of ONE character: ICU's full lower-case mapping with the root locale (no
// Turkish/Lithuanian rules), as Python: 'İ' -> "i̇" (two code points), an isolated 'Σ' -> 'σ'.
void append_lower(char32_t c, std::u32string& out) {
  if (c < 0x80) {
    out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return;
  }
  icu::UnicodeString one((UChar32)c);
  append_u32(one.toLower(icu::Locale::getRoot()), out);
}

// str.lower() of a whole token (context-sensitive: final sigma).
std::u32string lower(const std::u32string& s) {
  std::u32string out;
  if (is_ascii(s))
    for (char32_t c : s) append_lower(c, out);
  else
    append_u32(to_icu(s).toLower(icu::Locale::getRoot()), out);
  return out;
}

// unicodedata.normalize(NFC|NFD, s). ICU's normalizers cannot fail once ICU's data is linked in;
// if they ever did, the text is returned unnormalized.
std::u32string normalize(const std::u32string& s, bool compose) {
  if (is_ascii(s)) return s;
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* n =
      compose ? icu::Normalizer2::getNFCInstance(err) : icu::Normalizer2::getNFDInstance(err);
  if (U_FAILURE(err)) return s;
  icu::UnicodeString r = n->normalize(to_icu(s), err);
  std::u32string out;
  append_u32(r, out);
  return U_FAILURE(err) ? s : out;
}

// BasicTokenizer._run_strip_accents: NFD, then drop category Mn.
std::u32string strip_accents(const std::u32string& s) {
  std::u32string out;
  for (char32_t c : normalize(s, false))
    if (!(gc_mask(c) & U_GC_MN_MASK)) out.push_back(c);
  return out;
}

}  // namespace capforge::blip::text
