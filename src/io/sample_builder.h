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

// Image: the first image-extension member, else the first member of a refused image format
// (avif, svg, ...; decoding then fails naming it). Caption: ".txt" (invalid UTF-8 repaired and
// noted). ".json": an object whose fields become pass-through metadata; a string "url" becomes
// the url; a string "caption" is the caption when there is no .txt, else kept as "json_caption"
// if it differs; a string "key" that differs from the member key is kept as "json_key"; a null
// url, caption or key is absent.
// Everything else is an extra member. Problems are notes on the sample, never exceptions.
Sample build_sample(MemberGroup&& group, int64_t index);

}  // namespace capforge
