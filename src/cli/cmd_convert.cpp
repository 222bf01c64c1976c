// capforge convert IN... --to parquet|jsonl|webdataset --out DIR: lossless format changes.
#include <fmt/format.h>

#include <filesystem>

#include "capforge/env.h"
#include "cli/common.h"
#include "cli/out_guard.h"
#include "core/log.h"

namespace fs = std::filesystem;

namespace capforge::cli {

namespace {

struct ConvertOptions {
  std::vector<std::string> inputs;
  std::string to, out;
  ReaderParams reader;
  ProgressMode progress = ProgressMode::automatic;
};

class WriterSink : public ShardSink {
 public:
  WriterSink(std::unique_ptr<SampleWriter> w, bool carries_extras)
      : w_(std::move(w)), warn_extras_(!carries_extras) {}
  void write(const Sample& s) override {
    w_->write(s);
    if (warn_extras_ && !s.extra_members.empty()) {
      warn_extras_ = false;
      warn("{}: extra members such as '.{}' are only carried to webdataset outputs", w_->path(),
           s.extra_members.begin()->first);
    }
  }
  void commit(const ShardStats&) override { w_->commit(); }

 private:
  std::unique_ptr<SampleWriter> w_;
  bool warn_extras_;
};

int run_convert(const ConvertOptions& o) {
  auto fmt_out = output_format_from_name(o.to);
  std::vector<ShardInput> inputs;
  try {
    inputs = discover_inputs(o.inputs);
  } catch (const std::exception& e) {
    throw UsageError(e.what());
  }
  check_reader_columns(inputs, o.reader);
  refuse_outputs_on_inputs(o.inputs, inputs, o.out,
                           shard_output_files(inputs, o.out, {output_extension(*fmt_out)}, /*stats=*/false));
  env().make_dirs(o.out);
  remove_stale_temp_files(o.out);
  ListScheduler sched(inputs);
  std::vector<std::unique_ptr<Stage>> stages;  // bytes move as they are: nothing to decode
  PipelineParams pp;
  pp.reader = o.reader;
  pp.progress = o.progress;
  pp.cancel = install_interrupt_handler();
  auto summary = run_pipeline(
      sched, stages,
      [&](const ShardInput& in, const SampleReader& reader) {
        WriterParams wp;
        wp.schema = OutputSchema::samples;
        wp.meta_types = reader.meta_types();
        auto path = (fs::path(o.out) / (in.name + output_extension(*fmt_out))).string();
        return std::make_unique<WriterSink>(open_writer(*fmt_out, path, wp),
                                            *fmt_out == OutputFormat::webdataset);
      },
      pp);
  remove_own_temp_dir(o.out);
  info("converted {} shard(s), {} sample(s) to {} in {} ({:.1f}s)", summary.shards_done, summary.samples,
       o.to, o.out, summary.seconds);
  if (summary.cancelled) return 130;
  return summary.shards_failed || !summary.read_errors.empty() ? 1 : 0;
}

}  // namespace

void add_convert(CLI::App& app, Action& action) {
  auto o = std::make_shared<ConvertOptions>();
  auto* cmd = app.add_subcommand("convert",
                                 "Move samples between formats without loss (image bytes, captions, "
                                 "metadata, keys)");
  cmd->add_option("inputs", o->inputs, "shards or image folders")->required();
  cmd->add_option("--to", o->to, "output format")
      ->required()
      ->check(CLI::IsMember({"parquet", "jsonl", "webdataset"}));
  cmd->add_option("--out", o->out, "output directory (one file per input shard)")->required();
  add_reader_options(cmd, o->reader);
  add_progress_option(cmd, o->progress);
  cmd->callback([o, &action] { action = [o] { return run_convert(*o); }; });
}

}  // namespace capforge::cli
