// A ShardScheduler backed by a JobStore: claims leases, heartbeats them while shards are in
// flight, and records how each shard ended.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "capforge/jobstore.h"
#include "capforge/pipeline.h"

namespace capforge {

class StoreScheduler : public ShardScheduler {
 public:
  StoreScheduler(JobStore& store, std::string owner, double lease_seconds = 60);
  ~StoreScheduler() override;

  std::optional<ShardInput> next() override;
  bool done(const ShardInput& in, const ShardStats& stats, const std::function<void()>& publish) override;
  void failed(const ShardInput& in, const std::string& error) override;
  void released(const ShardInput& in) override;
  std::optional<int64_t> total() const override { return total_; }

 private:
  void heartbeat_loop();
  int64_t take(const std::string& name);

  JobStore& store_;
  std::string owner_;
  double lease_;
  std::optional<int64_t> total_;
  std::mutex mu_;  // guards held_ and the store (a JobStore is used from one thread at a time)
  std::map<std::string, int64_t> held_;  // shard name -> id
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread heartbeat_;
};

}  // namespace capforge
