// Builds a Sample from the parts a container stores per key (webdataset members, folder files).
#pragma once

#include <map>
#include <string>

#include "capforge/sample.h"

namespace capforge {

// Members of one sample keyed by extension ("jpg", "txt", "json", ...), in container order.
struct MemberGroup {
  std::string key;
  std::vector<std::pair<std::string, std::string>> members;  // (extension, bytes)
};

// Image: the first image-extension member. Caption: ".txt" (invalid UTF-8 repaired and noted).
// ".json": an object whose fields become pass-through metadata; "url" becomes the url, "key"
// and "caption" are consumed (caption only if there is no .txt). Everything else is an extra
// member. Problems are notes on the sample, never exceptions.
Sample build_sample(MemberGroup&& group, int64_t index);

}  // namespace capforge
