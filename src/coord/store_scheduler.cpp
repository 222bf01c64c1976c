#include "coord/store_scheduler.h"

#include "core/log.h"

namespace capforge {

StoreScheduler::StoreScheduler(JobStore& store, std::string owner, double lease_seconds)
    : store_(store), owner_(std::move(owner)), lease_(lease_seconds) {
  int64_t open = 0;
  for (auto& r : store_.list()) open += r.state != ShardState::done;
  total_ = open;
  heartbeat_ = std::thread([this] { heartbeat_loop(); });
}

StoreScheduler::~StoreScheduler() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  heartbeat_.join();
}

std::optional<ShardInput> StoreScheduler::next() {
  std::lock_guard lock(mu_);
  auto rec = store_.claim(owner_, lease_);
  if (!rec) return std::nullopt;
  held_[rec->input.name] = rec->id;
  if (rec->attempts > 1) info("shard {}: attempt {}", rec->input.name, rec->attempts);
  return rec->input;
}

int64_t StoreScheduler::take(const std::string& name) {
  auto it = held_.find(name);
  if (it == held_.end()) return -1;
  int64_t id = it->second;
  held_.erase(it);
  return id;
}

bool StoreScheduler::done(const ShardInput& in, const ShardStats& stats,
                          const std::function<void()>& publish) {
  std::lock_guard lock(mu_);
  int64_t id = take(in.name);
  if (id < 0) throw std::logic_error("shard " + in.name + " is not held by this worker");
  try {
    return store_.complete(id, owner_, stats.count, publish);
  } catch (...) {
    held_[in.name] = id;  // still ours: failed() records the error
    throw;
  }
}

void StoreScheduler::failed(const ShardInput& in, const std::string& error) {
  std::lock_guard lock(mu_);
  if (int64_t id = take(in.name); id >= 0) store_.fail(id, owner_, error);
}

void StoreScheduler::released(const ShardInput& in) {
  std::lock_guard lock(mu_);
  if (int64_t id = take(in.name); id >= 0) store_.release(id, owner_);
}

void StoreScheduler::heartbeat_loop() {
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, std::chrono::duration<double>(lease_ / 3), [&] { return stop_; })) {
    for (auto& [name, id] : held_) {
      try {
        if (!store_.heartbeat(id, owner_, lease_))
          warn("shard {}: lease lost (expired and taken over)", name);
      } catch (const std::exception& e) {
        warn("shard {}: heartbeat failed: {}", name, e.what());
      }
    }
  }
}

}  // namespace capforge
