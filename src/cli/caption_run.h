// Internal to `capforge caption`: options, model setup, the run's tally and summary.
#pragma once

#include <CLI/CLI.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "capforge/image.h"
#include "capforge/io.h"
#include "capforge/jobstore.h"
#include "capforge/pipeline.h"
#include "cli/captioner_options.h"
#include "cli/embed_options.h"
#include "cli/filter_options.h"
#include "cli/repair_options.h"
#include "pipeline/model_stages.h"

namespace capforge::cli {

struct CaptionOptions {
  std::vector<std::string> inputs;
  std::string out, db;
  std::string preset_file;
  std::string preset = "none", captioner, repair, schema = "capforge", rank_dtype = "f32";
  std::vector<std::string> rank;  // DIR[:K]
  std::vector<std::string>
      rank_prompts;  // prompts the rankers rank (names; "main": an unnamed first); empty: all
  std::vector<std::string> formats = {"parquet"};
  CaptionerCli c;
  int threads = 0;
  int batch_size = 16;
  int image_size = 384;
  double lease = 60;
  double debug_sample_delay = 0;
  // caption: registers its inputs and runs; queue init: registers only; worker: runs what the
  // job store holds (inputs come from it).
  enum class Mode { caption, queue_init, worker } mode = Mode::caption;
  int shard_index = -1, num_shards = 0;    // static partitioning (array jobs); -1/0: all
  int metrics_port = 0;                    // > 0: serve Prometheus metrics here while running
  std::string metrics_host = "127.0.0.1";  // loopback unless told: metrics are not for the world
  ReaderParams reader;
  DecodeParams decode;
  FilterCli filter;  // curation filters (--filter, --min-clip-score, --drop-filtered, ...)
  ProgressMode progress = ProgressMode::automatic;
  CurateCli curate;  // --save-embeddings, --nsfw-head, --unsafe-concepts (cli/embed_options.h)
  RepairCli rm;      // --repair-model and --repair-* (cli/repair_options.h); repair "model" when given
};

// Loads a ranker from DIR[:K] (K: candidates it keeps); throws UsageError if it does not load.
RankerSpec parse_ranker(const std::string& spec, const ClipParams& cp);
// Applies the preset and the defaults that depend on other flags.
void resolve_options(CaptionOptions& o, CLI::App* cmd);
// The caption, rank and repair stages the options ask for; loads the models (throws UsageError
// on bad model files). Sets `captioner_name` for the `captioner` column, and `embedding_dim` (when
// given) to the first ranker's embedding size when a curation flag is set (else 0).
std::vector<std::unique_ptr<Stage>> make_model_stages(const CaptionOptions& o, std::string& captioner_name,
                                                      int* embedding_dim = nullptr);
// Everything that changes the output, so a rerun with other settings is refused.
std::string config_fingerprint(const CaptionOptions& o);
// The settings that differ between two fingerprints, one "  key: old -> new" line each.
std::string config_diff(const std::string& old_fp, const std::string& new_fp);
// Refuses (UsageError) a run over `store` with other settings than `fp` (naming only the settings
// that differ) or whose done shards' inputs changed since they were registered; then records `fp`
// and the inputs' fingerprints. `what`: the store's description for messages.
void check_store_matches(JobStore& store, const std::string& fp, const std::vector<ShardInput>& inputs,
                         const std::string& what, const std::string& hint);

// `caption`'s options on `cmd` (the caption, queue init and worker commands share them).
void add_caption_options(CLI::App* cmd, std::shared_ptr<CaptionOptions> o);
// Runs o.mode: caption (register inputs, run), queue_init (register only) or worker (run the store's).
int run_caption(CaptionOptions& o, CLI::App* cmd);
// queue init: checks the settings, registers `inputs` and stores the options for workers.
int init_queue(const CaptionOptions& o, CLI::App* cmd, const std::vector<ShardInput>& inputs);
// The inputs of array task `index` of `count` (i % count == index), both from flags or, when
// unset, $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT or $JOB_COMPLETION_INDEX/$CAPFORGE_NUM_SHARDS.
std::vector<ShardInput> select_partition(const std::vector<ShardInput>& inputs, int index, int count);

// Means over the written samples (the sink runs on one thread). A sample without an original
// caption (none, empty or blank) has no org_clip_score, so it does not count in that mean; a
// filtered sample counts in none of the means, but in the safety counts.
struct Tally {
  int64_t org_words = 0, org_n = 0, re_words = 0, re_n = 0;
  double org_score = 0, re_score = 0;
  int64_t org_scored = 0, re_scored = 0;
  // safety (cli/embed_options.h): samples judged by the concepts / the head, and found unsafe
  // (a concept over its threshold; punsafe >= 0.5, clip-retrieval's and NeMo Curator's cut)
  int64_t concept_judged = 0, concept_unsafe = 0, nsfw_judged = 0, nsfw_unsafe = 0;
  // model repair (--repair-model): captions by repair_status, every prompt's, filtered rows excluded
  std::map<std::string, int64_t> repair;
  void add(const Sample& s);
  void merge(const Tally& t);
};

// Adds each sample to `tally` (Tally::add), then passes it to `inner`. Wraps drop_filtered_sink, so
// the safety counts include the rows the safety filters dropped.
std::unique_ptr<ShardSink> tally_sink(std::unique_ptr<ShardSink> inner, std::shared_ptr<Tally> tally);

void print_summary(const RunSummary& s, const Tally& t, const std::string& out, int64_t pending);

}  // namespace capforge::cli
