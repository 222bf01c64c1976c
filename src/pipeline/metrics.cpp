#include "pipeline/metrics.h"

#include <fmt/format.h>

namespace capforge {

void PipelineMetrics::sample_written(const std::string& status) {
  std::lock_guard lock(mu_);
  ++samples_;
  ++statuses_[status];
}

void PipelineMetrics::shard_finished(bool ok) {
  std::lock_guard lock(mu_);
  ++(ok ? shards_done_ : shards_failed_);
}

void PipelineMetrics::stage_batch(const std::string& stage, size_t items, double seconds) {
  std::lock_guard lock(mu_);
  auto& s = stages_[stage];
  ++s.batches;
  s.items += (int64_t)items;
  s.seconds += seconds;
}

void PipelineMetrics::set_queue_probe(std::function<std::vector<std::pair<std::string, size_t>>()> probe) {
  std::lock_guard lock(mu_);
  probe_ = std::move(probe);
}

std::string PipelineMetrics::render() {
  std::lock_guard lock(mu_);
  std::string out;
  auto family = [&](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  family("capforge_samples_total", "counter", "Samples written, every status.");
  out += fmt::format("capforge_samples_total {}\n", samples_);
  family("capforge_samples_by_status_total", "counter", "Samples written by status (failures by reason).");
  for (auto& [k, v] : statuses_)
    out += fmt::format("capforge_samples_by_status_total{{status=\"{}\"}} {}\n", k, v);
  family("capforge_shards_total", "counter", "Shards finished by this process.");
  out += fmt::format(
      "capforge_shards_total{{result=\"done\"}} {}\ncapforge_shards_total{{result=\"failed\"}} {}\n",
      shards_done_, shards_failed_);
  family("capforge_stage_seconds_total", "counter", "Time spent inside each stage's batches.");
  for (auto& [k, s] : stages_)
    out += fmt::format("capforge_stage_seconds_total{{stage=\"{}\"}} {:.6f}\n", k, s.seconds);
  family("capforge_stage_items_total", "counter", "Samples each stage processed.");
  for (auto& [k, s] : stages_)
    out += fmt::format("capforge_stage_items_total{{stage=\"{}\"}} {}\n", k, s.items);
  family("capforge_stage_batches_total", "counter", "Batches each stage processed.");
  for (auto& [k, s] : stages_)
    out += fmt::format("capforge_stage_batches_total{{stage=\"{}\"}} {}\n", k, s.batches);
  family("capforge_queue_depth", "gauge", "Samples waiting in front of each stage.");
  if (probe_)
    for (auto& [k, n] : probe_()) out += fmt::format("capforge_queue_depth{{queue=\"{}\"}} {}\n", k, n);
  return out;
}

}  // namespace capforge
