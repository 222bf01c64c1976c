// capforge inspect PATH... [--json]: per-input and total counts, decoding every image.
#include <fmt/format.h>

#include <cstdio>
#include <map>
#include <mutex>

#include "cli/common.h"
#include "core/log.h"
#include "core/text.h"

namespace capforge::cli {

namespace {

struct Counts {
  int64_t samples = 0, images_ok = 0, images_failed = 0, with_caption = 0;
  std::string error;
  void add(const Counts& o) {
    samples += o.samples;
    images_ok += o.images_ok;
    images_failed += o.images_failed;
    with_caption += o.with_caption;
  }
  Json json() const {
    return {{"samples", samples},
            {"images_ok", images_ok},
            {"images_failed", images_failed},
            {"with_caption", with_caption}};
  }
};

// Counts one input's samples; the first kShown failures are logged, then "... and N more".
// An input with unreadable records (status failed_to_read) or a broken container gets `error`.
class CountingSink : public ShardSink {
 public:
  static constexpr int kShown = 3;
  CountingSink(Counts& c, std::string path) : c_(c), path_(std::move(path)) {}
  void write(const Sample& s) override {
    c_.samples++;
    if (s.ok())
      c_.images_ok++;
    else
      c_.images_failed++;
    if (s.caption && !s.caption->empty()) c_.with_caption++;
    if (!s.ok() && failures_++ < kShown) warn("{} {}: {}", s.key, status_name(s.status), s.error);
    if (s.status == Status::failed_to_read && unreadable_++ == 0) first_unreadable_ = s.error;
  }
  void commit(const ShardStats& stats) override {
    if (failures_ > kShown) warn("{}: ... and {} more failure(s)", path_, failures_ - kShown);
    c_.error = stats.read_error;
    if (c_.error.empty() && unreadable_ > 0)
      c_.error = unreadable_ == 1
                     ? "unreadable record: " + first_unreadable_
                     : fmt::format("{} unreadable records, the first: {}", unreadable_, first_unreadable_);
  }

 private:
  Counts& c_;
  std::string path_;
  int64_t failures_ = 0, unreadable_ = 0;
  std::string first_unreadable_;
};

struct InspectOptions {
  std::vector<std::string> paths;
  bool json = false;
  int threads = default_threads();
  ReaderParams reader;
  DecodeParams decode;
};

int run_inspect(const InspectOptions& o) {
  std::vector<ShardInput> inputs;
  try {
    inputs = discover_inputs(o.paths, /*unique_names=*/false);
  } catch (const std::exception& e) {
    throw UsageError(e.what(), "inspect takes .tar, .parquet, .csv, .tsv, .jsonl files or image folders");
  }
  check_reader_columns(inputs, o.reader);
  std::map<std::string, Counts> counts;  // by input path; filled by the single sink thread
  ListScheduler sched(inputs);
  std::vector<std::unique_ptr<Stage>> stages;
  DecodeParams dp = o.decode;
  dp.short_edge = 64;  // full decode (catches truncation) at a cheap shrink-on-load scale
  stages.push_back(make_decode_stage(dp, o.threads));
  PipelineParams pp;
  pp.reader = o.reader;
  pp.progress = ProgressMode::off;
  auto summary = run_pipeline(
      sched, stages,
      [&](const ShardInput& in, const SampleReader&) {
        return std::make_unique<CountingSink>(counts[in.path], in.path);
      },
      pp);
  for (auto& f : summary.failures)  // inputs that could not be opened or read at all
    if (counts[f.input].error.empty()) counts[f.input].error = f.error;

  Counts total;
  int64_t broken = 0;
  for (auto& in : inputs) {
    Counts& c = counts[in.path];
    total.add(c);
    broken += !c.error.empty();
    if (o.json) {
      Json j = {{"path", in.path}, {"format", format_name(in.format)}};
      Json cj = c.json();
      for (auto& [k, v] : cj.items()) j[k] = v;
      if (!c.error.empty()) j["error"] = c.error;
      std::printf("%s\n", j.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
    } else {
      std::printf("%s  [%s]\n  samples %lld, images ok %lld, images failed %lld, with caption %lld\n",
                  terminal_safe(in.path).c_str(), format_name(in.format), (long long)c.samples,
                  (long long)c.images_ok, (long long)c.images_failed, (long long)c.with_caption);
      if (!c.error.empty()) std::printf("  error: %s\n", terminal_safe(c.error).c_str());
    }
  }
  if (o.json) {
    Json t = total.json();
    t["inputs"] = inputs.size();
    t["inputs_with_errors"] = broken;
    std::printf("%s\n", Json{{"total", t}}.dump().c_str());
  } else {
    std::printf(
        "total: %zu input(s), %lld samples, images ok %lld, images failed %lld, with caption %lld%s\n",
        inputs.size(), (long long)total.samples, (long long)total.images_ok, (long long)total.images_failed,
        (long long)total.with_caption,
        broken ? fmt::format(", {} input(s) with errors", broken).c_str() : "");
  }
  return broken ? 1 : 0;
}

}  // namespace

void add_inspect(CLI::App& app, Action& action) {
  auto o = std::make_shared<InspectOptions>();
  auto* cmd = app.add_subcommand("inspect", "Count samples, decodable images and captions per input");
  cmd->add_option("paths", o->paths, "shards (.tar .parquet .csv .tsv .jsonl) or image folders")->required();
  cmd->add_flag("--json", o->json, "one JSON object per input, then {\"total\": {...}}");
  cmd->add_option("--threads", o->threads, "decode threads")
      ->capture_default_str()
      ->check(int_range(1, 4096));
  add_reader_options(cmd, o->reader);
  add_decode_options(cmd, o->decode);
  cmd->callback([o, &action] { action = [o] { return run_inspect(*o); }; });
}

}  // namespace capforge::cli
