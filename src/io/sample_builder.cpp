#include "io/sample_builder.h"

#include <fmt/format.h>

#include "capforge/image.h"
#include "core/text.h"

namespace capforge {

namespace {
std::string take_text(std::string bytes, Sample& s, const std::string& what) {
  if (size_t bad = repair_utf8(bytes))
    s.note(fmt::format("{} had {} invalid UTF-8 byte(s), replaced with U+FFFD", what, bad));
  return bytes;
}
}  // namespace

Sample build_sample(MemberGroup&& group, int64_t index) {
  Sample s;
  s.key = std::move(group.key);
  s.index = index;
  std::optional<std::string> json_caption, json_key;
  std::string refused_ext;  // first member of an image format we refuse (see is_unsupported_image_ext)
  for (auto& [ext_raw, bytes] : group.members) {
    std::string ext = ascii_lower(ext_raw);
    if (!s.has_image && is_image_ext(ext)) {
      s.has_image = true;
      s.image_bytes = std::move(bytes);
      s.image_ext = ext == "jpeg" ? "jpg" : ext;
    } else if (refused_ext.empty() && is_unsupported_image_ext(ext) && !s.extra_members.count(ext_raw)) {
      refused_ext = ext_raw;
      s.extra_members[ext_raw] = std::move(bytes);
    } else if (ext == "txt" && !s.caption) {
      s.caption = take_text(std::move(bytes), s, "caption");
    } else if (ext == "json" && s.meta.empty()) {
      Json j = Json::parse(take_text(std::move(bytes), s, ".json"), nullptr, false);
      if (!j.is_object()) {
        s.note(j.is_discarded() ? ".json member is not valid JSON; metadata dropped"
                                : ".json member is not an object; metadata dropped");
        continue;
      }
      for (auto& [k, v] : j.items()) {
        if ((k == "url" || k == "caption" || k == "key") && v.is_null())
          continue;  // absent, as our own outputs write it
        else if (k == "url" && v.is_string())
          s.url = v.get<std::string>();
        else if (k == "caption" && v.is_string())
          json_caption = v.get<std::string>();
        else if (k == "key" && v.is_string())
          json_key = v.get<std::string>();
        else
          s.meta[k] = std::move(v);
      }
    } else {
      s.extra_members[ext_raw] = std::move(bytes);
    }
  }
  // The member name is the key and .txt the caption; a differing json key or caption is kept.
  if (json_key && *json_key != s.key) s.meta["json_key"] = *json_key;
  if (!s.caption && json_caption)
    s.caption = std::move(json_caption);
  else if (json_caption && *json_caption != *s.caption)
    s.meta["json_caption"] = *json_caption;
  // No supported image but a refused one: it is the image, so decoding names its type.
  if (!s.has_image && !refused_ext.empty()) {
    s.has_image = true;
    s.image_bytes = std::move(s.extra_members[refused_ext]);
    s.image_ext = ascii_lower(refused_ext);
    s.extra_members.erase(refused_ext);
  }
  return s;
}

}  // namespace capforge
