#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

#include <stdexcept>

#include "coord/stores.h"

namespace capforge {

const char* shard_state_name(ShardState s) {
  switch (s) {
    case ShardState::pending:
      return "pending";
    case ShardState::running:
      return "running";
    case ShardState::done:
      return "done";
    case ShardState::failed:
      return "failed";
  }
  return "?";
}

ShardState shard_state_from_name(const std::string& name) {
  for (auto s : {ShardState::pending, ShardState::running, ShardState::done, ShardState::failed})
    if (name == shard_state_name(s)) return s;
  throw std::runtime_error("job store: unknown shard state '" + name + "'");
}

InputFormat input_format_from_name(const std::string& name) {
  for (auto f : {InputFormat::webdataset, InputFormat::parquet, InputFormat::csv, InputFormat::tsv,
                 InputFormat::jsonl, InputFormat::folder, InputFormat::txt})
    if (name == format_name(f)) return f;
  throw std::runtime_error("job store: unknown input format '" + name + "'");
}

bool owner_is_dead_local(const std::string& owner) {
  auto colon = owner.rfind(':');
  if (colon == std::string::npos) return false;
  std::string me = local_owner_id();
  if (owner.compare(0, colon, me, 0, me.rfind(':')) != 0) return false;  // another host
  pid_t pid = (pid_t)std::strtol(owner.c_str() + colon + 1, nullptr, 10);
  if (pid <= 0) return false;
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

std::string local_owner_id() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return fmt::format("{}:{}", host, getpid());
}

std::unique_ptr<JobStore> open_job_store(const std::string& url) {
  if (url.rfind("sqlite:", 0) == 0) return open_sqlite_store(url.substr(7));
  if (url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0) return open_pg_store(url);
  if (url.find("://") != std::string::npos)
    throw std::runtime_error("unknown job store URL '" + url + "': expected sqlite:PATH or postgresql://...");
  return open_sqlite_store(url);
}

}  // namespace capforge
