#include "coord/input_fingerprints.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <ctime>
#include <map>

namespace capforge {

namespace {

constexpr const char* kMetaKey = "inputs";

// Size and mtime (ns) of a file or folder; "missing" if it cannot be read.
std::string fingerprint(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "missing";
  std::time_t t = st.st_mtim.tv_sec;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
  return fmt::format("size {} bytes, modified {}.{:09d} UTC", (long long)st.st_size, when,
                     (long)st.st_mtim.tv_nsec);
}

}  // namespace

std::vector<ChangedInput> check_input_fingerprints(JobStore& store, const std::vector<ShardInput>& inputs) {
  Json known = Json::parse(store.get_meta(kMetaKey).value_or("{}"), nullptr, false);
  if (!known.is_object()) known = Json::object();
  std::map<std::string, ShardState> state;
  for (auto& r : store.list()) state[r.input.name] = r.state;
  std::vector<ChangedInput> changed;
  bool dirty = false;
  for (auto& in : inputs) {
    std::string now = fingerprint(in.path);
    auto it = known.find(in.name);
    if (it != known.end() && it->is_string() && it->get<std::string>() == now) continue;
    auto st = state.find(in.name);
    if (it != known.end() && it->is_string() && st != state.end() && st->second == ShardState::done) {
      changed.push_back({in.name, in.path, it->get<std::string>(), now});
      continue;
    }
    known[in.name] = now;
    dirty = true;
  }
  if (dirty) store.set_meta(kMetaKey, known.dump());
  return changed;
}

}  // namespace capforge
