// The streaming pipeline: read -> stages -> write, shard by shard, with bounded memory.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "capforge/image.h"
#include "capforge/io.h"
#include "capforge/sample.h"

namespace capforge {

// A processing step. process() is called from `threads()` worker threads with batches of up to
// `max_batch()` samples; it must not throw for per-sample problems: it sets the sample's status.
// Samples that are already failed are still passed in; stages skip them.
class Stage {
 public:
  virtual ~Stage() = default;
  virtual std::string name() const = 0;
  virtual int threads() const { return 1; }
  virtual size_t max_batch() const { return 1; }
  virtual void process(std::vector<Sample*>& batch) = 0;
};

// Decodes images (sha256, size, pixels shrunk to params.short_edge) with `threads` workers.
std::unique_ptr<Stage> make_decode_stage(const DecodeParams& params, int threads);

// img2dataset's {shard}_stats.json fields, plus ours.
struct ShardStats {
  std::string shard, input;
  int64_t count = 0;
  std::map<std::string, int64_t> status_dict;     // status name -> count
  std::map<std::string, int64_t> filter_reasons;  // filtered samples by Sample::filtered_by
  double start_time = 0, end_time = 0;            // unix seconds
  std::string read_error;                         // the container broke (samples after it are lost)
  int64_t successes() const;
  Json to_json() const;
};

// Receives one shard's samples in input order. prepare() makes the outputs durable under temp
// names (the slow part); commit() then publishes them (renames only, prepare()d first if needed).
// Destroying a sink that was not committed removes its temp files. Both throw on failure.
class ShardSink {
 public:
  virtual ~ShardSink() = default;
  virtual void write(const Sample& s) = 0;
  virtual void prepare(const ShardStats& stats) { (void)stats; }
  virtual void commit(const ShardStats& stats) = 0;
};

// Hands out shards and hears how they ended. Called from the pipeline's own threads.
class ShardScheduler {
 public:
  virtual ~ShardScheduler() = default;
  virtual std::optional<ShardInput> next() = 0;
  // The shard's outputs are prepared: run `publish` if the shard is still this worker's, and
  // record it done. False if it was not (its lease was taken over): nothing was published.
  virtual bool done(const ShardInput& in, const ShardStats& stats, const std::function<void()>& publish) = 0;
  virtual void failed(const ShardInput& in, const std::string& error) = 0;
  // The run was interrupted before this shard finished: make it available again.
  virtual void released(const ShardInput& in) { (void)in; }
  // Total shards, if known (progress ETA).
  virtual std::optional<int64_t> total() const { return std::nullopt; }
};

// Hands out a fixed list once each.
class ListScheduler : public ShardScheduler {
 public:
  explicit ListScheduler(std::vector<ShardInput> inputs) : inputs_(std::move(inputs)) {}
  std::optional<ShardInput> next() override;
  bool done(const ShardInput&, const ShardStats&, const std::function<void()>& publish) override {
    publish();
    return true;
  }
  void failed(const ShardInput&, const std::string&) override {}
  std::optional<int64_t> total() const override { return (int64_t)inputs_.size(); }

 private:
  std::vector<ShardInput> inputs_;
  size_t next_ = 0;
};

using SinkFactory = std::function<std::unique_ptr<ShardSink>(const ShardInput&, const SampleReader& reader)>;

enum class ProgressMode { automatic, bar, lines, json, off };

struct PipelineParams {
  ReaderParams reader;
  size_t max_in_flight = 512;  // samples between reader and sink, all stages together
  size_t queue_capacity = 64;  // per stage queue
  size_t max_open_shards = 4;  // shards with an open reader or writer at once (each holds buffers)
  ProgressMode progress = ProgressMode::automatic;
  double progress_interval = 10.0;            // seconds between plain progress lines
  const std::atomic<bool>* cancel = nullptr;  // set (e.g. by SIGINT) to stop early
  double debug_sample_delay = 0;              // seconds slept per sample in the reader (tests only)
  class PipelineMetrics* metrics = nullptr;   // optional live metrics (src/pipeline/metrics.h)
};

struct FailedShard {
  std::string shard, input, error;
};

struct RunSummary {
  int64_t shards_done = 0, shards_failed = 0, shards_released = 0;
  int64_t samples = 0;
  std::map<std::string, int64_t> status_dict;
  std::map<std::string, int64_t> filter_reasons;  // filtered samples by reason
  std::vector<FailedShard> failures;              // shards that could not be finished
  std::vector<FailedShard> read_errors;           // shards finished with a broken container
  double seconds = 0;
  bool cancelled = false;
};

// Runs until the scheduler is empty or `cancel` is set. Never throws for per-shard problems;
// they are reported to the scheduler and in the summary.
RunSummary run_pipeline(ShardScheduler& scheduler, std::vector<std::unique_ptr<Stage>>& stages,
                        const SinkFactory& make_sink, const PipelineParams& params);

}  // namespace capforge
