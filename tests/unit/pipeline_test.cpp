#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>
#include <system_error>
#include <thread>

#include "capforge/env.h"
#include "capforge/jobstore.h"
#include "capforge/pipeline.h"
#include "coord/store_scheduler.h"
#include "pipeline/output_sink.h"
#include "support/fixtures.h"

namespace capforge {

namespace {

// Sleeps a random, key-dependent time so samples finish out of order across workers.
class JitterStage : public Stage {
 public:
  explicit JitterStage(int threads) : threads_(threads) {}
  std::string name() const override { return "jitter"; }
  int threads() const override { return threads_; }
  size_t max_batch() const override { return 3; }
  void process(std::vector<Sample*>& batch) override {
    for (Sample* s : batch) {
      std::this_thread::sleep_for(std::chrono::microseconds(std::hash<std::string>{}(s->key) % 3000));
      s->note("seen");
    }
  }

 private:
  int threads_;
};

class ThrowingStage : public Stage {
 public:
  std::string name() const override { return "boom"; }
  void process(std::vector<Sample*>& batch) override {
    if (batch[0]->index == 2) throw std::runtime_error("kaboom");
  }
};

struct Recorded {
  std::map<std::string, std::vector<Sample>> by_shard;
  std::map<std::string, ShardStats> stats;
};

class RecordingSink : public ShardSink {
 public:
  RecordingSink(Recorded& r, std::string name) : r_(r), name_(std::move(name)) {}
  void write(const Sample& s) override { buf_.push_back(s); }
  void commit(const ShardStats& st) override {
    r_.by_shard[name_] = buf_;
    r_.stats[name_] = st;
  }

 private:
  Recorded& r_;
  std::string name_;
  std::vector<Sample> buf_;
};

SinkFactory recorder(Recorded& r) {
  return
      [&r](const ShardInput& in, const SampleReader&) { return std::make_unique<RecordingSink>(r, in.name); };
}

std::vector<ShardInput> make_shards(const test::TempDir& dir, int shards, int per_shard) {
  std::vector<ShardInput> out;
  for (int s = 0; s < shards; ++s) {
    std::string name = "0000" + std::to_string(s);
    test::write_tar(dir / (name + ".tar"), test::wds_members(name, per_shard, (uint32_t)s));
    out.push_back({dir / (name + ".tar"), name, InputFormat::webdataset});
  }
  return out;
}

}  // namespace

TEST(Pipeline, KeepsInputOrderAndEverySampleOnceAcrossThreads) {
  test::TempDir dir;
  auto inputs = make_shards(dir, 3, 17);
  ListScheduler sched(inputs);
  std::vector<std::unique_ptr<Stage>> stages;
  stages.push_back(std::make_unique<JitterStage>(4));
  stages.push_back(make_decode_stage(DecodeParams{}, 3));
  PipelineParams p;
  p.progress = ProgressMode::off;
  p.max_in_flight = 8;  // small: exercises back-pressure
  p.queue_capacity = 2;
  Recorded rec;
  auto summary = run_pipeline(sched, stages, recorder(rec), p);
  EXPECT_EQ(summary.shards_done, 3);
  EXPECT_EQ(summary.samples, 51);
  for (auto& in : inputs) {
    auto& rows = rec.by_shard[in.name];
    ASSERT_EQ(rows.size(), 17u);
    for (int i = 0; i < 17; ++i) {
      EXPECT_EQ(rows[i].index, i);
      EXPECT_EQ(rows[i].error, "seen");
      EXPECT_TRUE(rows[i].ok());
      EXPECT_FALSE(rows[i].sha256.empty());
      EXPECT_GT(rows[i].width, 0);
    }
    EXPECT_EQ(rec.stats[in.name].count, 17);
    EXPECT_EQ(rec.stats[in.name].successes(), 17);
  }
}

// Counts sinks alive at once: each open shard holds a reader and a writer with their buffers.
class CountingSink : public ShardSink {
 public:
  CountingSink(std::atomic<int>& open, std::atomic<int>& peak) : open_(open) {
    int now = ++open_;
    for (int p = peak.load(); now > p && !peak.compare_exchange_weak(p, now);) {
    }
  }
  ~CountingSink() override { --open_; }
  void write(const Sample&) override {}
  void commit(const ShardStats&) override {}

 private:
  std::atomic<int>& open_;
};

TEST(Pipeline, OpenShardsStayWithinTheLimitWhateverTheInFlightBudget) {
  test::TempDir dir;
  auto inputs = make_shards(dir, 24, 2);  // tiny shards: the sample budget alone would open them all
  ListScheduler sched(inputs);
  std::vector<std::unique_ptr<Stage>> stages;
  stages.push_back(std::make_unique<JitterStage>(2));
  PipelineParams p;
  p.progress = ProgressMode::off;
  p.max_open_shards = 3;
  std::atomic<int> open{0}, peak{0};
  auto summary = run_pipeline(
      sched, stages,
      [&](const ShardInput&, const SampleReader&) { return std::make_unique<CountingSink>(open, peak); }, p);
  EXPECT_EQ(summary.shards_done, 24);
  EXPECT_EQ(summary.samples, 48);
  EXPECT_EQ(open.load(), 0);
  EXPECT_LE(peak.load(), 3);
  EXPECT_GE(peak.load(), 1);
}

TEST(Pipeline, AStageExceptionFailsOnlyItsBatch) {
  test::TempDir dir;
  auto inputs = make_shards(dir, 1, 5);
  ListScheduler sched(inputs);
  std::vector<std::unique_ptr<Stage>> stages;
  stages.push_back(std::make_unique<ThrowingStage>());
  PipelineParams p;
  p.progress = ProgressMode::off;
  Recorded rec;
  run_pipeline(sched, stages, recorder(rec), p);
  auto& rows = rec.by_shard["00000"];
  ASSERT_EQ(rows.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(rows[i].ok(), i != 2) << i;
  EXPECT_NE(rows[2].error.find("kaboom"), std::string::npos);
}

TEST(Pipeline, UnreadableShardFailsAloneAndOthersFinish) {
  test::TempDir dir;
  auto inputs = make_shards(dir, 2, 3);
  test::write_file(dir / "bad.parquet", "this is not parquet");
  inputs.insert(inputs.begin() + 1, ShardInput{dir / "bad.parquet", "bad", InputFormat::parquet});
  ListScheduler sched(inputs);
  std::vector<std::unique_ptr<Stage>> stages;
  PipelineParams p;
  p.progress = ProgressMode::off;
  Recorded rec;
  auto summary = run_pipeline(sched, stages, recorder(rec), p);
  EXPECT_EQ(summary.shards_done, 2);
  EXPECT_EQ(summary.shards_failed, 1);
  ASSERT_EQ(summary.failures.size(), 1u);
  EXPECT_EQ(summary.failures[0].shard, "bad");
  EXPECT_NE(summary.failures[0].error.find("bad.parquet"), std::string::npos);
}

namespace {
// Records the shards a cancelled run gives back.
struct ReleasingScheduler : ListScheduler {
  using ListScheduler::ListScheduler;
  std::vector<std::string> given_back;
  void released(const ShardInput& in) override { given_back.push_back(in.name); }
};
}  // namespace

TEST(Pipeline, CancelReleasesUnfinishedShardsAndCommitsNothingPartial) {
  test::TempDir dir;
  auto inputs = make_shards(dir, 3, 20);
  ReleasingScheduler sched(inputs);
  std::atomic<bool> cancel{false};
  std::vector<std::unique_ptr<Stage>> stages;
  PipelineParams p;
  p.progress = ProgressMode::off;
  p.cancel = &cancel;
  p.debug_sample_delay = 0.005;
  Recorded rec;
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));  // mid second shard
    cancel = true;
  });
  auto summary = run_pipeline(sched, stages, recorder(rec), p);
  stopper.join();
  EXPECT_TRUE(summary.cancelled);
  EXPECT_GE(summary.shards_released, 1);
  for (auto& [name, rows] : rec.by_shard) EXPECT_EQ(rows.size(), 20u) << name;  // committed = complete
  EXPECT_EQ(rec.by_shard.size() + sched.given_back.size(),
            (size_t)summary.shards_done + summary.shards_released);
}

// Issue #12 (14): a Ctrl-C that lands while a stage works on a fully read shard (one batch holds
// it all) gives that shard back: the stage's half-done batch is never written, nothing committed.
TEST(Pipeline, CancelDuringAStageGivesAFullyReadShardBack) {
  test::TempDir dir;
  auto inputs = make_shards(dir, 1, 8);
  ReleasingScheduler sched(inputs);
  std::atomic<bool> cancel{false};
  // "Interrupted" at the shard's last sample, which the reader has then delivered: the shard is
  // fully read, so only the stage's own stop can keep it from being committed.
  struct StopMidway : Stage {
    std::atomic<bool>& cancel;
    explicit StopMidway(std::atomic<bool>& c) : cancel(c) {}
    std::string name() const override { return "stop-midway"; }
    size_t max_batch() const override { return 8; }
    void process(std::vector<Sample*>& batch) override {
      for (Sample* s : batch) {
        if (s->index == 7) cancel = true;
        if (cancel) return;  // as the captioner does: the rest stays undone
        s->note("done");
      }
    }
  };
  std::vector<std::unique_ptr<Stage>> stages;
  stages.push_back(std::make_unique<StopMidway>(cancel));
  PipelineParams p;
  p.progress = ProgressMode::off;
  p.cancel = &cancel;
  p.queue_capacity = 16;
  Recorded rec;
  auto summary = run_pipeline(sched, stages, recorder(rec), p);
  EXPECT_TRUE(summary.cancelled);
  EXPECT_EQ(summary.shards_done, 0);
  EXPECT_EQ(summary.shards_released, 1);
  EXPECT_TRUE(rec.by_shard.empty()) << "a half-processed shard was committed";
  EXPECT_EQ(sched.given_back, std::vector<std::string>{"00000"});
}

}  // namespace capforge

namespace capforge {

TEST(Pipeline, ADiskFullShardFailsAloneWithoutPartialFilesAndARerunFinishesIt) {
  test::TempDir dir;
  auto inputs = make_shards(dir, 3, 4);
  auto run = [&](Env* e) {
    set_env(e);
    auto store = open_job_store("sqlite:" + dir / "jobs.db");
    store->add_shards(inputs);
    store->reset_failed();
    StoreScheduler sched(*store, local_owner_id(), 60);
    std::vector<std::unique_ptr<Stage>> stages;
    PipelineParams p;
    p.progress = ProgressMode::off;
    auto summary = run_pipeline(
        sched, stages,
        [&](const ShardInput& in, const SampleReader&) {
          std::vector<std::unique_ptr<SampleWriter>> w;
          w.push_back(
              open_writer(OutputFormat::parquet, dir / ("out/" + in.name + ".parquet"), WriterParams{}));
          return std::make_unique<OutputSink>(std::move(w), dir / ("out/" + in.name + "_stats.json"));
        },
        p);
    set_env(nullptr);
    return std::make_pair(summary, store->list());
  };
  std::filesystem::create_directories(dir / "out");
  auto full = make_full_disk_env("00001");
  auto [summary, records] = run(full.get());
  EXPECT_EQ(summary.shards_done, 2);
  EXPECT_EQ(summary.shards_failed, 1);
  ASSERT_EQ(summary.failures.size(), 1u);
  EXPECT_NE(summary.failures[0].error.find("No space left on device"), std::string::npos)
      << summary.failures[0].error;
  EXPECT_EQ(records[1].state, ShardState::failed);
  EXPECT_FALSE(std::filesystem::exists(dir / "out/00001.parquet"));
  EXPECT_FALSE(std::filesystem::exists(dir / "out/00001_stats.json"));
  EXPECT_TRUE(std::filesystem::exists(dir / "out/00000.parquet"));
  auto again = run(nullptr);
  EXPECT_EQ(again.first.shards_done, 1);
  for (auto& r : again.second) EXPECT_EQ(r.state, ShardState::done);
  EXPECT_EQ(test::duckdb_column("SELECT count(*) FROM read_parquet('" + dir / "out/*.parquet" + "')"),
            std::vector<std::string>{"12"});
}

}  // namespace capforge

namespace capforge {

TEST(OutputSink, PreparesThenPublishesOnceEvenIfCommitIsRetried) {
  test::TempDir dir;
  std::vector<std::unique_ptr<SampleWriter>> w;
  w.push_back(open_writer(OutputFormat::parquet, dir / "00000.parquet", WriterParams{}));
  w.push_back(open_writer(OutputFormat::jsonl, dir / "00000.jsonl", WriterParams{}));
  OutputSink sink(std::move(w), dir / "00000_stats.json");
  Sample s;
  s.key = "k";
  s.caption = "a caption";
  sink.write(s);
  ShardStats st;
  st.count = 1;
  sink.prepare(st);
  EXPECT_FALSE(std::filesystem::exists(dir / "00000.parquet")) << "prepare publishes nothing";
  EXPECT_FALSE(std::filesystem::exists(dir / "00000_stats.json"));
  sink.commit(st);
  EXPECT_NO_THROW(sink.commit(st)) << "a retried publish (lost COMMIT reply) must not fail";
  EXPECT_TRUE(std::filesystem::exists(dir / "00000.parquet"));
  EXPECT_TRUE(std::filesystem::exists(dir / "00000.jsonl"));
  EXPECT_TRUE(std::filesystem::exists(dir / "00000_stats.json"));
}

}  // namespace capforge
