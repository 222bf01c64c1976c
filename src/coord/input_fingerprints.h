// A rerun must not skip a shard whose input changed under the same name: the job store remembers
// each input's size and modification time from when its shard was registered.
#pragma once

#include <string>
#include <vector>

#include "capforge/io.h"
#include "capforge/jobstore.h"

namespace capforge {

struct ChangedInput {
  std::string shard, path;
  std::string was, now;  // "size N bytes, modified YYYY-MM-DD HH:MM:SS.nnnnnnnnn UTC" (or "missing")
};

// Compares each input with the fingerprint recorded in `store` (meta "inputs": shard name ->
// size and mtime) and records the ones not yet known. Returns the inputs whose shard is done but
// whose file changed since it was recorded; their records are kept as they were, so every rerun
// reports them. Inputs whose shard is not done yet take their current fingerprint (nothing was
// published from the old contents). Call it before add_shards.
std::vector<ChangedInput> check_input_fingerprints(JobStore& store, const std::vector<ShardInput>& inputs);

}  // namespace capforge
