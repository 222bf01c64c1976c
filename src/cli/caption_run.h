// Internal to `capforge caption`: options, model setup, the run's tally and summary.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "capforge/image.h"
#include "capforge/io.h"
#include "capforge/pipeline.h"
#include "cli/captioner_options.h"
#include "pipeline/model_stages.h"

namespace capforge::cli {

struct CaptionOptions {
  std::vector<std::string> inputs;
  std::string out, db;
  std::string preset_file;
  std::string preset = "none", captioner, repair, schema = "capforge", rank_dtype = "f32";
  std::vector<std::string> rank;  // DIR[:K]
  std::vector<std::string> formats = {"parquet"};
  CaptionerCli c;
  int threads = 0;
  int batch_size = 16;
  int image_size = 384;
  double lease = 60;
  double debug_sample_delay = 0;
  ReaderParams reader;
  DecodeParams decode;
  ProgressMode progress = ProgressMode::automatic;
};

// Loads a ranker from DIR[:K] (K: candidates it keeps); throws UsageError if it does not load.
RankerSpec parse_ranker(const std::string& spec, const ClipParams& cp);
// Applies the preset and the defaults that depend on other flags.
void resolve_options(CaptionOptions& o, CLI::App* cmd);
// The caption, rank and repair stages the options ask for; loads the models (throws UsageError
// on bad model files). Sets `captioner_name` for the `captioner` column.
std::vector<std::unique_ptr<Stage>> make_model_stages(const CaptionOptions& o, std::string& captioner_name);
// Everything that changes the output, so a rerun with other settings is refused.
std::string config_fingerprint(const CaptionOptions& o);

// Means over the written samples (the sink runs on one thread).
struct Tally {
  int64_t org_words = 0, org_n = 0, re_words = 0, re_n = 0;
  double org_score = 0, re_score = 0;
  int64_t org_scored = 0, re_scored = 0;
  void add(const Sample& s);
};

void print_summary(const RunSummary& s, const Tally& t, const std::string& out, int64_t pending);

}  // namespace capforge::cli
