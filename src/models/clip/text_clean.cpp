// Text cleanup for the CLIP tokenizer: Python's html.unescape, whitespace, lower-case, and the
// pre-tokenization pattern 's|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+.
#include <utf8proc.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "core/text.h"
#include "models/clip/tokenizer.h"

namespace capforge::clip {

namespace {

#include "html_entities.inc"

void append_utf8(std::string& out, int32_t cp) {
  uint8_t buf[4];
  auto n = utf8proc_encode_char(cp, buf);
  out.append((const char*)buf, (size_t)n);
}

std::vector<int32_t> codepoints(std::string_view s) {
  std::string fixed(s);
  repair_utf8(fixed);
  std::vector<int32_t> out;
  const auto* p = (const utf8proc_uint8_t*)fixed.data();
  size_t i = 0;
  while (i < fixed.size()) {
    utf8proc_int32_t cp;
    auto n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(fixed.size() - i), &cp);
    out.push_back(cp);
    i += (size_t)n;
  }
  return out;
}

// Python's str.isspace(): White_Space plus the separators \x1c-\x1f.
bool is_space(int32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
         c == 0x3000;
}
bool is_letter(int32_t c) {
  auto cat = utf8proc_category(c);
  return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
}
bool is_number(int32_t c) {
  auto cat = utf8proc_category(c);
  return cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO;
}

const std::unordered_map<std::string, std::string>& entities() {
  static const auto* m = [] {
    auto* t = new std::unordered_map<std::string, std::string>();
    for (auto& [k, v] : kHtml5Entities) t->emplace(k, v);
    return t;
  }();
  return *m;
}

// One numeric reference, as html._replace_charref.
std::string numeric_ref(unsigned long long num) {
  for (auto& [n, v] : kInvalidCharrefs)
    if (n == num) return v;
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return "\xEF\xBF\xBD";
  for (unsigned c : kInvalidCodepoints)
    if (c == num) return "";
  std::string out;
  append_utf8(out, (int32_t)num);
  return out;
}

}  // namespace

std::string html_unescape(std::string_view s) {
  if (s.find('&') == std::string_view::npos) return std::string(s);
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != '&') {
      out += s[i++];
      continue;
    }
    size_t j = i + 1;
    if (j < s.size() && s[j] == '#') {  // &#123; or &#x1F;, the ';' optional
      bool hex = j + 1 < s.size() && (s[j + 1] == 'x' || s[j + 1] == 'X');
      size_t k = j + (hex ? 2 : 1), start = k;
      while (k < s.size() && (hex ? std::isxdigit((unsigned char)s[k]) : std::isdigit((unsigned char)s[k])))
        ++k;
      if (k > start) {
        std::string digits(s.substr(start, k - start));
        // Python ints are unbounded; anything past 0x10FFFF is U+FFFD anyway.
        unsigned long long num =
            digits.size() > 12 ? 0x110000ull : std::stoull(digits, nullptr, hex ? 16 : 10);
        if (k < s.size() && s[k] == ';') ++k;
        out += numeric_ref(num);
        i = k;
        continue;
      }
      out += s[i++];
      continue;
    }
    // named: up to 32 chars of [^\t\n\f <&#;], then an optional ';'
    size_t k = j;
    while (k < s.size() && k - j < 32 && !std::strchr("\t\n\f <&#;", s[k])) ++k;
    if (k == j) {
      out += s[i++];
      continue;
    }
    if (k < s.size() && s[k] == ';') ++k;
    std::string name(s.substr(j, k - j));
    auto& ents = entities();
    if (auto it = ents.find(name); it != ents.end()) {
      out += it->second;
    } else {  // the longest known prefix (at least 2 chars), as the HTML5 standard says
      bool found = false;
      for (size_t x = name.size() - 1; x > 1 && !found; --x)
        if (auto p = ents.find(name.substr(0, x)); p != ents.end()) {
          out += p->second + name.substr(x);
          found = true;
        }
      if (!found) out += "&" + name;
    }
    i = k;
  }
  return out;
}

std::string clean_text(std::string_view text) {
  std::string s = html_unescape(html_unescape(text));
  std::string out;
  bool pending_space = false;
  for (int32_t c : codepoints(s)) {
    if (is_space(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    if (c == 0x130) {  // the one full-case lower mapping that differs from the simple one
      out += "i\xCC\x87";
      continue;
    }
    append_utf8(out, utf8proc_tolower(c));
  }
  return out;
}

std::vector<std::string> pretokenize(std::string_view cleaned) {
  std::vector<int32_t> cps = codepoints(cleaned);
  std::vector<std::string> out;
  auto piece = [&](size_t a, size_t b) {
    std::string s;
    for (size_t i = a; i < b; ++i) append_utf8(s, cps[i]);
    out.push_back(std::move(s));
  };
  auto match_ascii = [&](size_t i, const char* lit) {
    size_t n = std::strlen(lit);
    if (i + n > cps.size()) return false;
    for (size_t k = 0; k < n; ++k)
      if (utf8proc_tolower(cps[i + k]) != (unsigned char)lit[k]) return false;
    return true;
  };
  size_t i = 0;
  while (i < cps.size()) {
    bool matched = false;
    for (const char* lit :
         {"<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"}) {
      if (match_ascii(i, lit)) {
        size_t n = std::strlen(lit);
        piece(i, i + n);
        i += n;
        matched = true;
        break;
      }
    }
    if (matched) continue;
    size_t j = i;
    if (is_letter(cps[i])) {
      while (j < cps.size() && is_letter(cps[j])) ++j;
    } else if (is_number(cps[i])) {
      j = i + 1;
    } else if (!is_space(cps[i])) {
      while (j < cps.size() && !is_space(cps[j]) && !is_letter(cps[j]) && !is_number(cps[j])) ++j;
    } else {
      ++i;  // whitespace separates and is dropped
      continue;
    }
    piece(i, j);
    i = j;
  }
  return out;
}

}  // namespace capforge::clip
