// capforge caption IN... --out DIR: read -> decode -> (caption -> rank -> repair) -> write, over
// the job store, so a rerun resumes where the last one stopped.
#include <fmt/format.h>

#include <filesystem>

#include "capforge/env.h"
#include "capforge/jobstore.h"
#include "cli/common.h"
#include "coord/store_scheduler.h"
#include "core/log.h"
#include "core/text.h"

namespace fs = std::filesystem;

namespace capforge::cli {

namespace {

struct CaptionOptions {
  std::vector<std::string> inputs;
  std::string out, db, captioner = "none";
  std::vector<std::string> formats = {"parquet"};
  int threads = default_threads();
  int image_size = 384;
  double lease = 60;
  double debug_sample_delay = 0;
  ReaderParams reader;
  DecodeParams decode;
  ProgressMode progress = ProgressMode::automatic;
};

// Means over the written samples (the sink runs on one thread).
struct Tally {
  int64_t org_words = 0, org_n = 0;
};

class CaptionSink : public ShardSink {
 public:
  CaptionSink(std::vector<std::unique_ptr<SampleWriter>> writers, std::string stats_path, Tally& tally)
      : writers_(std::move(writers)), stats_path_(std::move(stats_path)), tally_(tally) {}
  void write(const Sample& s) override {
    for (auto& w : writers_) w->write(s);
    if (s.caption) {
      tally_.org_words += word_count(*s.caption);
      tally_.org_n++;
    }
  }
  // Outputs first, then the stats file; the job store marks the shard done only after both.
  void commit(const ShardStats& stats) override {
    for (auto& w : writers_) w->commit();
    write_file_atomic(stats_path_, stats.to_json().dump(2) + "\n");
  }

 private:
  std::vector<std::unique_ptr<SampleWriter>> writers_;
  std::string stats_path_;
  Tally& tally_;
};

std::string config_fingerprint(const CaptionOptions& o) {
  Json j = {{"captioner", o.captioner},
            {"formats", o.formats},
            {"image_size", o.image_size},
            {"url_col", o.reader.url_col},
            {"caption_col", o.reader.caption_col},
            {"key_col", o.reader.key_col},
            {"image_col", o.reader.image_col},
            {"max_pixels", o.decode.max_pixels},
            {"max_bytes", o.decode.max_bytes}};
  return j.dump();
}

void print_summary(const RunSummary& s, const Tally& t, const std::string& out, int64_t pending) {
  std::string statuses;
  for (auto& [k, v] : s.status_dict) statuses += fmt::format("{}{} {}", statuses.empty() ? "" : ", ", k, v);
  double rate = s.seconds > 0 ? s.samples / s.seconds : 0;
  std::string org_len = t.org_n ? fmt::format("{:.1f}", (double)t.org_words / t.org_n) : "n/a";
  logging::event("summary",
                 {{"shards_done", s.shards_done},
                  {"shards_failed", s.shards_failed},
                  {"pending", pending},
                  {"samples", s.samples},
                  {"status_dict", s.status_dict},
                  {"seconds", s.seconds},
                  {"samples_per_s", rate},
                  {"mean_org_length", t.org_n ? Json((double)t.org_words / t.org_n) : Json(nullptr)},
                  {"failures", Json::array()}});
  if (logging::format() == logging::Format::json) return;
  std::fprintf(stderr,
               "\nsummary: %lld shard(s) done, %lld failed, %lld pending\n"
               "  samples %lld: %s\n"
               "  mean length (words): org %s, re n/a (no captioner)\n"
               "  mean CLIP score: org n/a, re n/a (no ranker)\n"
               "  %.1f samples/s over %.1fs\n"
               "  outputs in %s\n",
               (long long)s.shards_done, (long long)s.shards_failed, (long long)pending, (long long)s.samples,
               statuses.empty() ? "none" : statuses.c_str(), org_len.c_str(), rate, s.seconds, out.c_str());
  for (auto& f : s.failures)
    std::fprintf(stderr, "  failed shard %s: %s\n", f.shard.c_str(), f.error.c_str());
  for (auto& f : s.read_errors)
    std::fprintf(stderr, "  broken input %s: %s\n", f.shard.c_str(), f.error.c_str());
}

int run_caption(const CaptionOptions& o) {
  std::vector<OutputFormat> formats;
  for (auto& f : o.formats) formats.push_back(*output_format_from_name(f));
  std::vector<ShardInput> inputs;
  try {
    inputs = discover_inputs(o.inputs);
  } catch (const std::exception& e) {
    throw UsageError(e.what());
  }
  for (auto& in : inputs) in.path = fs::absolute(in.path).lexically_normal().string();

  env().make_dirs(o.out);
  if (int n = remove_stale_temp_files(o.out)) info("removed {} temp file(s) left by an interrupted run", n);
  std::string db = o.db;
  if (db.empty()) {
    env().make_dirs((fs::path(o.out) / ".capforge").string());
    db = "sqlite:" + (fs::path(o.out) / ".capforge" / "jobs.db").string();
  }
  auto store = open_job_store(db);
  std::string fp = config_fingerprint(o);
  if (auto old = store->get_meta("config"); old && *old != fp)
    throw UsageError(
        fmt::format("{} already holds a run with other settings", o.out),
        fmt::format("use a new --out, or remove {} to start over\n  previous: {}\n  now:      {}",
                    (fs::path(o.out) / ".capforge").string(), *old, fp));
  store->set_meta("config", fp);
  store->add_shards(inputs);
  if (int n = store->reset_failed()) info("retrying {} shard(s) that failed before", n);
  int64_t done_before = 0;
  for (auto& r : store->list()) done_before += r.state == ShardState::done;
  if (done_before) info("skipping {} shard(s) already done", done_before);

  StoreScheduler sched(*store, local_owner_id(), o.lease);
  std::vector<std::unique_ptr<Stage>> stages;
  DecodeParams dp = o.decode;
  dp.short_edge = o.image_size;
  stages.push_back(make_decode_stage(dp, o.threads));
  PipelineParams pp;
  pp.reader = o.reader;
  pp.progress = o.progress;
  pp.cancel = install_interrupt_handler();
  pp.debug_sample_delay = o.debug_sample_delay;
  Tally tally;
  auto summary = run_pipeline(
      sched, stages,
      [&](const ShardInput& in, const SampleReader& reader) {
        WriterParams wp;
        wp.schema = OutputSchema::caption;
        wp.captioner = o.captioner;
        wp.meta_types = reader.meta_types();
        wp.include_images = false;
        std::vector<std::unique_ptr<SampleWriter>> writers;
        for (auto f : formats)
          writers.push_back(open_writer(f, (fs::path(o.out) / (in.name + output_extension(f))).string(), wp));
        return std::make_unique<CaptionSink>(std::move(writers),
                                             (fs::path(o.out) / (in.name + "_stats.json")).string(), tally);
      },
      pp);
  remove_own_temp_dir(o.out);
  int64_t pending = 0;
  for (auto& r : store->list()) pending += r.state == ShardState::pending || r.state == ShardState::running;
  print_summary(summary, tally, o.out, pending);
  if (summary.cancelled) return 130;
  return summary.shards_failed ? 1 : 0;
}

}  // namespace

void add_caption(CLI::App& app, Action& action) {
  auto o = std::make_shared<CaptionOptions>();
  auto* cmd = app.add_subcommand("caption",
                                 "Re-caption shards: read, decode, caption, rank, repair, write "
                                 "(resumable: a rerun skips finished shards)");
  cmd->add_option("inputs", o->inputs, "shards (.tar .parquet .csv .tsv .jsonl) or image folders")
      ->required();
  cmd->add_option("--out", o->out, "output directory: {shard}.parquet, {shard}_stats.json, .capforge/jobs.db")
      ->required();
  cmd->add_option("--captioner", o->captioner,
                  "captioning model; 'none' runs the pipeline without a model stage (read, decode, write)")
      ->capture_default_str()
      ->check([](const std::string& v) {
        return v == "none" ? std::string()
                           : "only --captioner none is available in this build (no VLM stage yet)";
      });
  cmd->add_option("--format", o->formats, "output formats, comma-separated: parquet, jsonl, webdataset")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::IsMember({"parquet", "jsonl", "webdataset"}));
  cmd->add_option("--db", o->db, "job store URL (default: sqlite:OUT/.capforge/jobs.db)");
  cmd->add_option("--threads", o->threads, "decode threads")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--image-size", o->image_size, "decode images to this shortest edge (shrink-on-load)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--lease", o->lease, "job lease in seconds (heartbeats renew it)")->capture_default_str();
  cmd->add_option("--debug-sample-delay", o->debug_sample_delay, "seconds to sleep per sample (tests)")
      ->group("");
  add_reader_options(cmd, o->reader);
  add_decode_options(cmd, o->decode);
  add_progress_option(cmd, o->progress);
  cmd->callback([o, &action] { action = [o] { return run_caption(*o); }; });
}

}  // namespace capforge::cli
