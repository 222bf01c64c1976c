#include "io/keys.h"

#include <fmt/format.h>

#include "core/text.h"

namespace capforge {

std::string sanitize_key(std::string_view raw) {
  std::string s(raw);
  repair_utf8(s);
  for (char& c : s)
    if ((unsigned char)c < 0x20 || c == 0x7f || c == '\\') c = '_';
  std::string out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find('/', start);
    if (end == std::string::npos) end = s.size();
    std::string_view part(s.data() + start, end - start);
    if (!part.empty() && part != "." && part != "..") {
      if (!out.empty()) out += '/';
      out += part;
    }
    start = end + 1;
  }
  return out.empty() ? "_" : out;
}

std::string KeyDeduper::unique(const std::string& key) {
  if (taken_.insert(key).second) return key;
  int& n = next_suffix_[key];
  while (true) {
    std::string candidate = fmt::format("{}_{}", key, ++n);
    if (taken_.insert(candidate).second) return candidate;
  }
}

void finalize_key(Sample& s, KeyDeduper& keys) {
  std::string safe = sanitize_key(s.key);
  std::string final_key = keys.unique(safe);
  if (safe != s.key) {
    std::string shown = s.key;
    repair_utf8(shown);
    s.note(fmt::format("input key \"{}\" is not a safe relative name; written as \"{}\"", shown, final_key));
  } else if (final_key != safe) {
    s.note(fmt::format("duplicate key \"{}\" in this shard; written as \"{}\"", safe, final_key));
  }
  s.key = std::move(final_key);
}

std::string default_key(const std::string& shard_name, const std::string& stem, int64_t index, int digits) {
  return digits > 0 ? fmt::format("{}{:0{}d}", shard_name, index, digits)
                    : fmt::format("{}_{:06d}", stem, index);
}

}  // namespace capforge
