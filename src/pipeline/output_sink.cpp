#include "pipeline/output_sink.h"

#include "capforge/env.h"

namespace capforge {

OutputSink::OutputSink(std::vector<std::unique_ptr<SampleWriter>> writers, std::string stats_path,
                       std::function<void(const Sample&)> on_write, std::function<void()> on_commit)
    : writers_(std::move(writers)),
      stats_path_(std::move(stats_path)),
      on_write_(std::move(on_write)),
      on_commit_(std::move(on_commit)) {}

OutputSink::~OutputSink() {
  if (!committed_ && !stats_tmp_.empty()) env().remove_file(stats_tmp_);
}

void OutputSink::write(const Sample& s) {
  for (auto& w : writers_) w->write(s);
  if (on_write_) on_write_(s);
}

void OutputSink::prepare(const ShardStats& stats) {
  if (!stats_tmp_.empty()) return;
  for (auto& w : writers_) w->prepare();
  std::string tmp = temp_path_for(stats_path_);
  try {
    env().write_file(tmp, stats.to_json().dump(2) + "\n");
    env().fsync_file(tmp);
  } catch (...) {
    env().remove_file(tmp);
    throw;
  }
  stats_tmp_ = tmp;
}

// Outputs first, then the stats file: a shard with a stats file has all of its outputs.
// Idempotent: a job store retries the publish when its connection dropped before COMMIT.
void OutputSink::commit(const ShardStats& stats) {
  if (committed_) return;
  prepare(stats);
  for (auto& w : writers_) w->commit();
  publish_file(stats_tmp_, stats_path_);
  committed_ = true;
  if (on_commit_) on_commit_();
}

}  // namespace capforge
