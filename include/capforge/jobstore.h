// The job store: which shards exist, who works on them, which are done. One interface, with
// SQLite as the embedded default; every transition is a single atomic statement or transaction.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "capforge/io.h"

namespace capforge {

enum class ShardState { pending, running, done, failed };
const char* shard_state_name(ShardState s);

struct ShardRecord {
  int64_t id = 0;
  ShardInput input;
  ShardState state = ShardState::pending;
  int attempts = 0;
  std::string last_error;
  std::string owner;
  double lease_until = 0;  // unix seconds
  int64_t samples = 0;
};

class JobStore {
 public:
  virtual ~JobStore() = default;
  // Registers shards; ones already known (by name) are left as they are.
  virtual void add_shards(const std::vector<ShardInput>& inputs) = 0;
  // Leases the next claimable shard: pending, or running with an expired lease or a dead local
  // owner. Marks it running and counts an attempt. A shard whose lease expired on its last allowed
  // attempt (meta "max_attempts", default 5) is marked failed instead, with that as its error.
  virtual std::optional<ShardRecord> claim(const std::string& owner, double lease_seconds) = 0;
  // Extends a lease. False if `owner` no longer holds it (expired and taken over).
  virtual bool heartbeat(int64_t id, const std::string& owner, double lease_seconds) = 0;
  // Marks done. `publish` (the output renames) runs first, while the shard is locked and confirmed
  // to be `owner`'s, so a worker whose lease was taken over can never publish over the new owner's
  // output. False (nothing published, no change) if `owner` no longer holds the lease; if publish
  // throws, nothing changes and the exception propagates.
  virtual bool complete(int64_t id, const std::string& owner, int64_t samples,
                        const std::function<void()>& publish = {}) = 0;
  virtual void fail(int64_t id, const std::string& owner, const std::string& error) = 0;
  // Gives the shard back as pending without counting it against its attempts.
  virtual void release(int64_t id, const std::string& owner) = 0;
  // Failed shards become pending again; returns how many.
  virtual int reset_failed() = 0;
  virtual std::vector<ShardRecord> list() = 0;
  virtual std::optional<std::string> get_meta(const std::string& key) = 0;
  virtual void set_meta(const std::string& key, const std::string& value) = 0;
};

// "sqlite:PATH" (or a bare path). Throws std::runtime_error with a hint on bad URLs.
std::unique_ptr<JobStore> open_job_store(const std::string& url);

// This process's owner id: "host:pid".
std::string local_owner_id();

}  // namespace capforge
