#include "capforge/sample.h"

namespace capforge {

namespace {
constexpr std::pair<Status, const char*> kNames[] = {
    {Status::success, "success"},
    {Status::failed_to_download, "failed_to_download"},
    {Status::failed_to_resize, "failed_to_resize"},
    {Status::failed_to_decode, "failed_to_decode"},
    {Status::failed_to_read, "failed_to_read"},
    {Status::failed_to_caption, "failed_to_caption"},
    {Status::filtered, "filtered"},
};
}  // namespace

const char* status_name(Status s) {
  for (auto& [st, name] : kNames)
    if (st == s) return name;
  return "unknown";
}

std::optional<Status> status_from_name(const std::string& name) {
  for (auto& [st, n] : kNames)
    if (name == n) return st;
  return std::nullopt;
}

}  // namespace capforge
