// Sample keys as they leave a reader: safe to use as relative member names and unique per shard.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "capforge/sample.h"

namespace capforge {

// Makes `raw` a safe relative name. Invalid UTF-8 becomes U+FFFD; control characters (NUL
// included, and DEL) and backslashes become '_'; '/'-separated components that are empty, "." or
// ".." are dropped, so the result has no leading '/', no '..' and no empty component. A key with
// nothing left becomes "_". A key that is already safe comes back unchanged.
std::string sanitize_key(std::string_view raw);

// Keeps keys unique within one shard, deterministically in sample order: the first sample with a
// key keeps it, later ones get the first free "{key}_1", "{key}_2", ...
class KeyDeduper {
 public:
  std::string unique(const std::string& key);

 private:
  std::unordered_set<std::string> taken_;
  std::unordered_map<std::string, int> next_suffix_;
};

// The key of a sample its input does not name: img2dataset's "{shard}{index:0Nd}" when `digits` > 0
// (downloads), else "{stem}_{index:06d}".
std::string default_key(const std::string& shard_name, const std::string& stem, int64_t index, int digits);

// sanitize_key() then dedupe, and a note on the sample naming the input key when it changed.
void finalize_key(Sample& s, KeyDeduper& keys);

}  // namespace capforge
