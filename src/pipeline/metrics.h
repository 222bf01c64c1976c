// Live pipeline metrics for Prometheus scraping (`--metrics-port`): samples and shards done,
// outcomes by status, per-stage busy time and batches, and the depth of each stage's queue.
// The pipeline updates it from its threads; render() may be called at any time from another.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace capforge {

class PipelineMetrics {
 public:
  void sample_written(const std::string& status);
  void shard_finished(bool ok);
  void stage_batch(const std::string& stage, size_t items, double seconds);
  // Set by the pipeline while it runs: the current length of each stage's input queue.
  void set_queue_probe(std::function<std::vector<std::pair<std::string, size_t>>()> probe);
  // Prometheus text exposition format (version 0.0.4).
  std::string render();

 private:
  struct Stage {
    int64_t batches = 0, items = 0;
    double seconds = 0;
  };
  std::mutex mu_;
  int64_t samples_ = 0, shards_done_ = 0, shards_failed_ = 0;
  std::map<std::string, int64_t> statuses_;
  std::map<std::string, Stage> stages_;
  std::function<std::vector<std::pair<std::string, size_t>>()> probe_;
};

}  // namespace capforge
