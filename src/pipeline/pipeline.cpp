// run_pipeline: a source thread reads shards, each stage runs its own workers, and a sink thread
// restores input order per shard and commits each shard once all of its samples are written.
#include <fmt/format.h>

#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "capforge/pipeline.h"
#include "core/log.h"
#include "pipeline/bounded_queue.h"
#include "pipeline/metrics.h"
#include "pipeline/progress.h"

namespace capforge {

namespace {

struct ShardCtx {
  ShardInput input;
  std::unique_ptr<ShardSink> sink;
  ShardStats stats;
  std::string fail_error;              // set: the shard cannot be finished
  std::atomic<bool> cancelled{false};  // reading stopped early (Ctrl-C): give it back
  int64_t total = 0;  // samples read; set by the source before it sends the end-of-shard item
  // sink-thread state
  std::map<int64_t, std::unique_ptr<Sample>> pending;  // reorder buffer
  int64_t written = 0;
  bool end_seen = false;
};

// A sample on its way, or (sample == nullptr) the source's note that the shard was fully read.
struct Item {
  std::shared_ptr<ShardCtx> shard;
  std::unique_ptr<Sample> sample;
};
using Queue = BoundedQueue<Item>;

bool cancelled(const PipelineParams& p) { return p.cancel && p.cancel->load(); }

class Runner {
 public:
  Runner(ShardScheduler& sched, std::vector<std::unique_ptr<Stage>>& stages, const SinkFactory& make_sink,
         const PipelineParams& params)
      : sched_(sched),
        stages_(stages),
        make_sink_(make_sink),
        p_(params),
        limit_(params.max_in_flight),
        open_shards_(std::max<size_t>(1, params.max_open_shards)) {
    for (size_t i = 0; i <= stages_.size(); ++i)
      queues_.push_back(std::make_unique<Queue>(p_.queue_capacity));
  }

  RunSummary run() {
    double t0 = now_seconds();
    {
      ProgressReporter progress(counters_, sched_.total(), p_.progress, p_.progress_interval);
      std::vector<std::thread> threads;
      for (auto& st : stages_)
        live_workers_.push_back(std::make_unique<std::atomic<int>>(std::max(1, st->threads())));
      if (p_.metrics)
        p_.metrics->set_queue_probe([this] {
          std::vector<std::pair<std::string, size_t>> d;
          for (size_t i = 0; i < queues_.size(); ++i)
            d.emplace_back(i < stages_.size() ? stages_[i]->name() : "writer", queues_[i]->size());
          return d;
        });
      threads.emplace_back([this] { source(); });
      for (size_t i = 0; i < stages_.size(); ++i)
        for (int w = 0, n = std::max(1, stages_[i]->threads()); w < n; ++w)
          threads.emplace_back([this, i] { stage_worker(i); });
      sink();
      for (auto& t : threads) t.join();
      if (p_.metrics) p_.metrics->set_queue_probe({});
    }
    summary_.seconds = now_seconds() - t0;
    summary_.cancelled = cancelled(p_);
    return summary_;
  }

 private:
  Queue& sink_queue() { return *queues_.back(); }

  void source() {
    while (!cancelled(p_)) {
      auto in = sched_.next();
      if (!in) break;
      open_shards_.acquire();  // released by finish()
      auto shard = std::make_shared<ShardCtx>();
      shard->input = *in;
      shard->stats.shard = in->name;
      shard->stats.input = in->path;
      shard->stats.start_time = now_seconds();
      int64_t n = 0;
      try {
        auto reader = open_reader(*in, p_.reader);
        shard->sink = make_sink_(*in, *reader);
        Sample s;
        while (reader->next(s)) {
          if (cancelled(p_)) {
            shard->cancelled = true;
            break;
          }
          if (p_.debug_sample_delay > 0)
            std::this_thread::sleep_for(std::chrono::duration<double>(p_.debug_sample_delay));
          limit_.acquire();
          ++n;
          queues_[0]->push(Item{shard, std::make_unique<Sample>(std::move(s))});
        }
        shard->stats.read_error = reader->error();
      } catch (const std::exception& e) {
        shard->fail_error = e.what();
      }
      shard->total = n;
      sink_queue().push(Item{shard, nullptr});
    }
    queues_[0]->close();
  }

  void stage_worker(size_t i) {
    Stage& stage = *stages_[i];
    Queue& in = *queues_[i];
    Queue& out = *queues_[i + 1];
    const size_t max_batch = std::max<size_t>(1, stage.max_batch());
    std::vector<Item> items;
    std::vector<Sample*> batch;
    while (auto first = in.pop()) {
      items.clear();
      items.push_back(std::move(*first));
      while (items.size() < max_batch)
        if (auto more = in.try_pop())
          items.push_back(std::move(*more));
        else
          break;
      // After Ctrl-C nothing more is processed: every shard still in flight is given back whole
      // (a stage may also have cut its batch short), and the stages drain their queues at once.
      if (cancelled(p_))
        for (auto& it : items) it.shard->cancelled = true;
      batch.clear();
      for (auto& it : items)
        if (!it.shard->cancelled && it.shard->fail_error.empty()) batch.push_back(it.sample.get());
      if (!batch.empty()) {
        double t0 = now_seconds();
        try {
          stage.process(batch);
        } catch (const std::exception& e) {  // a stage bug must not take the run down
          for (Sample* s : batch)
            if (s->ok())
              s->fail(Status::failed_to_caption, fmt::format("{} stage failed: {}", stage.name(), e.what()));
        }
        if (p_.metrics) p_.metrics->stage_batch(stage.name(), batch.size(), now_seconds() - t0);
        if (cancelled(p_))  // a stage may stop midway once cancelled (the captioner, the ranker)
          for (auto& it : items) it.shard->cancelled = true;
      }
      for (auto& it : items) out.push(std::move(it));
    }
    if (--*live_workers_[i] == 0) out.close();
  }

  void sink() {
    std::map<ShardCtx*, std::shared_ptr<ShardCtx>> open;
    auto& q = sink_queue();
    while (auto item = q.pop()) {
      auto shard = item->shard;
      open.emplace(shard.get(), shard);
      if (item->sample) {
        int64_t idx = item->sample->index;
        shard->pending.emplace(idx, std::move(item->sample));
        drain(*shard);
      } else {
        shard->end_seen = true;
      }
      if (finished(*shard)) {
        finish(*shard);
        open.erase(shard.get());
      }
    }
    for (auto& [ptr, shard] : open) {  // only reachable if the source stopped mid-shard
      shard->cancelled = true;
      finish(*shard);
    }
  }

  // Writes buffered samples that are next in input order.
  void drain(ShardCtx& shard) {
    while (!shard.pending.empty() && shard.pending.begin()->first == shard.written) {
      std::unique_ptr<Sample> s = std::move(shard.pending.begin()->second);
      shard.pending.erase(shard.pending.begin());
      ++shard.written;
      limit_.release();
      if (!shard.fail_error.empty() || shard.cancelled) continue;
      shard.stats.count++;
      shard.stats.status_dict[status_name(s->status)]++;
      counters_.samples++;
      if (s->status == Status::filtered)  // left out on purpose: done, not a failure
        shard.stats.filter_reasons[s->filtered_by.empty() ? "other" : s->filtered_by]++;
      else if (!s->ok())
        counters_.failed++;
      if (p_.metrics) p_.metrics->sample_written(status_name(s->status));
      try {
        shard.sink->write(*s);
      } catch (const std::exception& e) {
        shard.fail_error = e.what();
      }
    }
  }

  static bool finished(const ShardCtx& shard) { return shard.end_seen && shard.written == shard.total; }

  void finish(ShardCtx& shard) {
    finish_shard(shard);
    open_shards_.release();
  }

  void finish_shard(ShardCtx& shard) {
    const auto& name = shard.input.name;
    if (shard.cancelled) {
      shard.sink.reset();
      sched_.released(shard.input);
      summary_.shards_released++;
      return;
    }
    bool published = false;
    if (shard.fail_error.empty()) {
      shard.stats.end_time = now_seconds();
      try {
        shard.sink->prepare(shard.stats);
        published = sched_.done(shard.input, shard.stats, [&] { shard.sink->commit(shard.stats); });
      } catch (const std::exception& e) {
        shard.fail_error = e.what();
      }
    }
    shard.sink.reset();
    if (!published && shard.fail_error.empty()) {  // taken over: the other worker's output stands
      warn("shard {}: its lease was taken over by another worker, which publishes it", name);
      summary_.shards_released++;
      return;
    }
    if (!shard.fail_error.empty()) {
      error("shard {} failed: {}", name, shard.fail_error);
      sched_.failed(shard.input, shard.fail_error);
      summary_.shards_failed++;
      counters_.shards_failed++;
      if (p_.metrics) p_.metrics->shard_finished(false);
      summary_.failures.push_back({name, shard.input.path, shard.fail_error});
      logging::event("shard_failed", {{"shard", name}, {"error", shard.fail_error}});
      return;
    }
    summary_.shards_done++;
    counters_.shards_done++;
    if (p_.metrics) p_.metrics->shard_finished(true);
    summary_.samples += shard.stats.count;
    for (auto& [k, v] : shard.stats.status_dict) summary_.status_dict[k] += v;
    for (auto& [k, v] : shard.stats.filter_reasons) summary_.filter_reasons[k] += v;
    if (!shard.stats.read_error.empty()) {
      warn("shard {}: {} (kept the {} samples before the break)", name, shard.stats.read_error,
           shard.stats.count);
      summary_.read_errors.push_back({name, shard.input.path, shard.stats.read_error});
    }
    logging::event("shard_done", {{"shard", name},
                                  {"samples", shard.stats.count},
                                  {"successes", shard.stats.successes()},
                                  {"read_error", shard.stats.read_error}});
  }

  ShardScheduler& sched_;
  std::vector<std::unique_ptr<Stage>>& stages_;
  const SinkFactory& make_sink_;
  const PipelineParams& p_;
  InFlightLimit limit_;
  InFlightLimit open_shards_;
  std::vector<std::unique_ptr<Queue>> queues_;
  std::vector<std::unique_ptr<std::atomic<int>>> live_workers_;
  ProgressCounters counters_;
  RunSummary summary_;
};

}  // namespace

RunSummary run_pipeline(ShardScheduler& scheduler, std::vector<std::unique_ptr<Stage>>& stages,
                        const SinkFactory& make_sink, const PipelineParams& params) {
  return Runner(scheduler, stages, make_sink, params).run();
}

}  // namespace capforge
