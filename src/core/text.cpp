#include "core/text.h"

#include <utf8proc.h>

#include <cctype>

namespace capforge {

size_t repair_utf8(std::string& s) {
  std::string out;
  size_t bad = 0, i = 0;
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  while (i < s.size()) {
    utf8proc_int32_t cp;
    auto n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(s.size() - i), &cp);
    if (n < 0) {
      if (bad == 0) out.assign(s, 0, i);
      out += "\xEF\xBF\xBD";
      ++bad;
      ++i;
      continue;
    }
    if (bad) out.append(s, i, (size_t)n);
    i += (size_t)n;
  }
  if (bad) s.swap(out);
  return bad;
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = (char)std::tolower((unsigned char)c);
  return out;
}

std::string unicode_lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  for (size_t i = 0; i < s.size();) {
    utf8proc_int32_t cp;
    auto n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(s.size() - i), &cp);
    if (n <= 0) {
      out += s[i++];
      continue;
    }
    i += (size_t)n;
    if (cp == 0x130) {
      out += "i\xCC\x87";
      continue;
    }
    utf8proc_uint8_t buf[4];
    auto m = utf8proc_encode_char(utf8proc_tolower(cp), buf);
    out.append(reinterpret_cast<const char*>(buf), (size_t)m);
  }
  return out;
}

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::pair<std::string, std::string> split_member_name(std::string_view name) {
  size_t slash = name.rfind('/');
  size_t base = slash == std::string_view::npos ? 0 : slash + 1;
  size_t dot = name.find('.', base);
  if (dot == std::string_view::npos) return {std::string(name), ""};
  return {std::string(name.substr(0, dot)), std::string(name.substr(dot + 1))};
}

std::string path_stem(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  size_t slash = path.rfind('/');
  std::string base(slash == std::string_view::npos ? path : path.substr(slash + 1));
  static const char* exts[] = {".gz",  ".zst",   ".tar",    ".parquet", ".csv",
                               ".tsv", ".jsonl", ".ndjson", ".json"};
  for (bool changed = true; changed;) {
    changed = false;
    for (const char* e : exts) {
      std::string ext(e);
      if (base.size() > ext.size() && ascii_lower(base.substr(base.size() - ext.size())) == ext) {
        base.resize(base.size() - ext.size());
        changed = true;
      }
    }
  }
  return base;
}

int word_count(std::string_view s) {
  int n = 0;
  bool in = false;
  for (char c : s) {
    bool sp = std::isspace((unsigned char)c);
    if (!sp && !in) ++n;
    in = !sp;
  }
  return n;
}

std::string terminal_safe(std::string_view s) {
  std::string in(s);
  repair_utf8(in);  // stray 8-bit bytes (raw C1 controls among them) become U+FFFD
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    unsigned char c = (unsigned char)in[i];
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
      out += '?';
    } else if (c == 0xc2 && i + 1 < in.size() && (unsigned char)in[i + 1] <= 0x9f) {
      out += '?';  // U+0080-U+009F: a C1 control encoded as UTF-8
      ++i;
    } else {
      out += (char)c;
    }
  }
  return out;
}

}  // namespace capforge
