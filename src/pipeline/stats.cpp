#include "capforge/pipeline.h"
#include "capforge/version.h"

namespace capforge {

int64_t ShardStats::successes() const {
  auto it = status_dict.find(status_name(Status::success));
  return it == status_dict.end() ? 0 : it->second;
}

Json ShardStats::to_json() const {
  auto count_of = [&](Status s) {
    auto it = status_dict.find(status_name(s));
    return it == status_dict.end() ? int64_t{0} : it->second;
  };
  Json j = Json::object();
  // img2dataset's fields, in its order
  j["count"] = count;
  j["successes"] = successes();
  j["failed_to_download"] = count_of(Status::failed_to_download);
  j["failed_to_resize"] = count_of(Status::failed_to_resize);
  j["duration"] = end_time - start_time;
  j["start_time"] = start_time;
  j["end_time"] = end_time;
  j["status_dict"] = Json::object();
  for (auto& [k, v] : status_dict) j["status_dict"][k] = v;
  // ours
  j["failed_to_decode"] = count_of(Status::failed_to_decode);
  j["failed_to_read"] = count_of(Status::failed_to_read);
  j["failed_to_caption"] = count_of(Status::failed_to_caption);
  j["filtered"] = count_of(Status::filtered);  // left out by a curation filter (not failures)
  j["filter_reasons"] = Json::object();
  for (auto& [k, v] : filter_reasons) j["filter_reasons"][k] = v;
  j["shard"] = shard;
  j["input"] = input;
  j["read_error"] = read_error.empty() ? Json(nullptr) : Json(read_error);
  j["capforge_version"] = version();
  return j;
}

std::optional<ShardInput> ListScheduler::next() {
  if (next_ >= inputs_.size()) return std::nullopt;
  return inputs_[next_++];
}

}  // namespace capforge
