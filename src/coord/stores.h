// Internal: job store backends and name conversions.
#pragma once
#include <memory>
#include <string>

#include "capforge/jobstore.h"

namespace capforge {
std::unique_ptr<JobStore> open_sqlite_store(const std::string& path);
ShardState shard_state_from_name(const std::string& name);
InputFormat input_format_from_name(const std::string& name);
}  // namespace capforge
