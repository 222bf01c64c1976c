// Internal: job store backends and name conversions.
#pragma once
#include <memory>
#include <string>

#include "capforge/jobstore.h"

namespace capforge {
std::unique_ptr<JobStore> open_sqlite_store(const std::string& path);
std::unique_ptr<JobStore> open_pg_store(const std::string& url);
// True if `owner` ("host:pid") names a process of this host that no longer exists.
bool owner_is_dead_local(const std::string& owner);
// A shard whose lease expires on this attempt fails instead of being claimed again (meta
// "max_attempts" overrides).
constexpr int kDefaultMaxAttempts = 5;
ShardState shard_state_from_name(const std::string& name);
InputFormat input_format_from_name(const std::string& name);
}  // namespace capforge
