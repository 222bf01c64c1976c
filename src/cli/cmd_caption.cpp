// capforge caption IN... --out DIR: read -> decode -> caption -> rank -> repair -> write, over the
// job store, so a rerun resumes where the last one stopped.
#include <fmt/format.h>
#include <algorithm>

#include <filesystem>

#include "capforge/env.h"
#include "capforge/jobstore.h"
#include "cli/caption_run.h"
#include "cli/captioner_options.h"
#include "cli/common.h"
#include "cli/out_guard.h"
#include "coord/store_scheduler.h"
#include "core/log.h"
#include "core/text.h"
#include "curate/embeddings.h"
#include "pipeline/metrics.h"
#include "pipeline/metrics_server.h"
#include "pipeline/model_stages.h"
#include "pipeline/output_sink.h"
#include "pipeline/progress.h"

namespace fs = std::filesystem;

namespace capforge::cli {

int run_caption(CaptionOptions& o, CLI::App* cmd) {
  resolve_options(o, cmd);
  resolve_filter_options(o.filter, cmd);
  if (o.filter.params.min_clip_score && o.rank.empty())
    throw UsageError("--min-clip-score needs a ranker to score the original captions", "add --rank DIR");
  if (o.filter.params.max_punsafe && o.curate.nsfw_head.empty())
    throw UsageError("--filter-unsafe needs punsafe scores", "add --nsfw-head FILE (and --rank DIR)");
  if (o.filter.params.unsafe_concepts && o.curate.unsafe_concepts.empty())
    throw UsageError("--filter-unsafe-concepts needs the zero-shot concepts",
                     "add --unsafe-concepts default (or a config file) and --rank DIR");
  std::vector<OutputFormat> formats;
  for (auto& f : o.formats) formats.push_back(*output_format_from_name(f));
  OutputSchema schema = *schema_from_name(o.schema);
  const bool worker = o.mode == CaptionOptions::Mode::worker;
  std::vector<ShardInput> inputs;
  if (!worker) {
    if (o.inputs.empty()) throw UsageError("no inputs", "pass shards or image folders");
    try {
      inputs = discover_inputs(o.inputs);
    } catch (const std::exception& e) {
      throw UsageError(e.what(), "inputs are shard files (.tar .parquet .csv .tsv .jsonl) or image folders");
    }
    for (auto& in : inputs) in.path = fs::absolute(in.path).lexically_normal().string();
    check_reader_columns(inputs, o.reader);
    std::vector<std::string> exts;
    for (auto f : formats) exts.push_back(output_extension(f));
    auto outputs = shard_output_files(inputs, o.out, exts);
    if (o.db.rfind("sqlite:", 0) == 0) outputs.push_back(o.db.substr(7));
    if (o.curate.save_embeddings)
      for (auto& in : inputs)
        for (auto& p : embedding_set_paths(o.out, in.name)) outputs.push_back(p);
    refuse_outputs_on_inputs(o.inputs, inputs, o.out, outputs);
    inputs = select_partition(inputs, o.shard_index, o.num_shards);
  }
  if (o.mode == CaptionOptions::Mode::queue_init) return init_queue(o, cmd, inputs);

  // Ctrl-C stops the run, and the captioner between decode steps (the rest of a batch is abandoned).
  const std::atomic<bool>* cancel = install_interrupt_handler();
  o.c.params.cancel = cancel;
  // Models first: a bad model file should fail before any shard is touched.
  std::vector<std::unique_ptr<Stage>> stages;
  DecodeParams dp = o.decode;
  dp.short_edge = o.image_size;
  stages.push_back(make_decode_stage(dp, o.threads));
  // image and caption criteria right after decode, so filtered samples skip the models
  if (o.filter.params.image_or_caption())
    stages.push_back(make_filter_stage(o.filter.params, FilterPhase::image_caption));
  std::string captioner_name = "none";
  int embedding_dim = 0;  // the first ranker's, for --save-embeddings
  auto model_stages = make_model_stages(o, captioner_name, &embedding_dim);
  if (o.filter.params.after_rank()) {  // needs org_clip_score and the safety scores (docs/curate.md)
    // before repair, so that filtered samples are not repaired
    auto at =
        std::find_if(model_stages.begin(), model_stages.end(), [](auto& s) { return s->name() == "repair"; });
    model_stages.insert(at, make_filter_stage(o.filter.params, FilterPhase::after_rank));
  }
  for (auto& st : model_stages) stages.push_back(std::move(st));

  env().make_dirs(o.out);
  if (int n = remove_stale_temp_files(o.out)) info("removed {} temp file(s) left by an interrupted run", n);
  std::string db = o.db;
  if (db.empty()) {
    env().make_dirs((fs::path(o.out) / ".capforge").string());
    db = "sqlite:" + (fs::path(o.out) / ".capforge" / "jobs.db").string();
  }
  auto store = open_job_store(db);
  check_store_matches(
      *store, config_fingerprint(o), inputs, o.out,
      fmt::format("use a new --out, or remove {} to start over", (fs::path(o.out) / ".capforge").string()));
  if (!worker) {
    store->add_shards(inputs);
    if (int n = store->reset_failed()) info("retrying {} shard(s) that failed before", n);
  }
  if (!store->get_meta("started_at")) store->set_meta("started_at", fmt::format("{:.3f}", now_seconds()));
  int64_t done_before = 0;
  for (auto& r : store->list()) done_before += r.state == ShardState::done;
  if (done_before) info("skipping {} shard(s) already done", done_before);

  StoreScheduler sched(*store, local_owner_id(), o.lease);
  PipelineParams pp;
  pp.reader = o.reader;
  pp.progress = o.progress;
  pp.cancel = cancel;
  pp.debug_sample_delay = o.debug_sample_delay;
  pp.max_in_flight = std::max<size_t>(pp.max_in_flight, (size_t)o.batch_size * 4);
  PipelineMetrics metrics;
  std::unique_ptr<MetricsServer> metrics_server;
  if (o.metrics_port > 0) {
    pp.metrics = &metrics;
    metrics_server = std::make_unique<MetricsServer>(metrics, o.metrics_host, o.metrics_port);
  }
  Tally tally;
  auto summary = run_pipeline(
      sched, stages,
      [&](const ShardInput& in, const SampleReader& reader) {
        WriterParams wp;
        wp.schema = schema;
        wp.captioner = captioner_name;
        wp.meta_types = reader.meta_types();
        wp.include_images = false;
        wp.punsafe_column = !o.curate.nsfw_head.empty();
        wp.concept_columns = !o.curate.unsafe_concepts.empty();
        wp.repair_columns = o.repair == "model";
        if (!o.c.params.more_prompts.empty() || !o.c.params.prompt_name.empty())
          for (auto& pp : all_prompts(o.c.params)) wp.prompt_names.push_back(pp.name);
        std::vector<std::unique_ptr<SampleWriter>> writers;
        for (auto f : formats)
          writers.push_back(open_writer(f, (fs::path(o.out) / (in.name + output_extension(f))).string(), wp));
        if (o.curate.save_embeddings)  // published with the shard's outputs (docs/curate-embeddings.md)
          writers.push_back(
              open_embedding_writer({o.out, in.name, embedding_dim, wp.punsafe_column, wp.concept_columns}));
        // the summary's means count published shards only, not one given back on Ctrl-C
        auto shard_tally = std::make_shared<Tally>();
        std::unique_ptr<ShardSink> sink = std::make_unique<OutputSink>(
            std::move(writers), (fs::path(o.out) / (in.name + "_stats.json")).string(), nullptr,
            [shard_tally, &tally] { tally.merge(*shard_tally); });
        if (o.filter.drop) sink = drop_filtered_sink(std::move(sink));
        return tally_sink(std::move(sink), shard_tally);  // outside the drop: dropped rows count too
      },
      pp);
  remove_own_temp_dir(o.out);
  int64_t pending = 0;
  for (auto& r : store->list()) pending += r.state == ShardState::pending || r.state == ShardState::running;
  print_summary(summary, tally, o.out, pending);
  if (summary.cancelled) return 130;
  return summary.shards_failed ? 1 : 0;
}

void add_caption_options(CLI::App* cmd, std::shared_ptr<CaptionOptions> o) {
  cmd->add_option("inputs", o->inputs, "shards (.tar .parquet .csv .tsv .jsonl) or image folders");
  cmd->add_option("--out", o->out, "output directory: {shard}.parquet, {shard}_stats.json, .capforge/jobs.db")
      ->required();
  cmd->add_option(
      "--preset-file", o->preset_file,
      "a preset written by `capforge tune` (its flags, over its base preset; explicit flags win)");
  cmd->add_option(
         "--preset", o->preset,
         "laion-coco, recap, recap-v2 (recap plus the alt-text-conditioned caption `condition`) or none; "
         "explicit flags override it")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "laion-coco", "recap", "recap-v2"}));
  cmd->add_option(
         "--captioner", o->captioner,
         "vlm (needs --model and --mmproj; the default when they are given), blip (--model: a Hugging "
         "Face BLIP dir) or none (read, decode, rank the original caption, write)")
      ->check(CLI::IsMember({"vlm", "blip", "none"}));
  add_captioner_options(cmd, o->c, /*model_required=*/false);  // --model demo: the bundled models
  const char* rk = "Ranking and repair";
  cmd->add_option("--rank", o->rank,
                  "ranker DIR[:K]: a Hugging Face CLIP or SigLIP dir or an open_clip dir (ViT or ResNet) "
                  "(repeatable, a cascade: each keeps its top K of the previous one's candidates)")
      ->check(rank_spec())
      ->group(rk);
  cmd->add_option(
         "--rank-prompts", o->rank_prompts,
         "the prompts the rankers rank, by name (`main`: an unnamed first prompt; default: all); the others "
         "keep the captioner's order")
      ->delimiter(',')
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->group(rk);
  cmd->add_option("--rank-dtype", o->rank_dtype,
                  "ranker weights: f32, f16, bf16, q8_0 or int8 (CPUs with VNNI)")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0", "int8"}))
      ->group(rk);
  cmd->add_option("--repair", o->repair,
                  "repair of the winning caption: rules, none or model (the default with --repair-model)")
      ->check(CLI::IsMember({"rules", "none", "model"}))
      ->group(rk);
  add_repair_model_options(cmd, o->rm, "Repair model (docs/repair.md)");
  const char* out = "Output";
  cmd->add_option("--schema", o->schema, "capforge (canonical columns + input columns), laion-coco or recap")
      ->capture_default_str()
      ->check(CLI::IsMember({"capforge", "laion-coco", "recap"}))
      ->group(out);
  cmd->add_option("--format", o->formats, "output formats, comma-separated: parquet, jsonl, webdataset")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::IsMember({"parquet", "jsonl", "webdataset"}))
      ->group(out);
  cmd->add_option("--db", o->db, "job store URL (default: sqlite:OUT/.capforge/jobs.db)");
  cmd->add_option("--threads", o->threads,
                  "threads for decoding and the models (0: the CPUs this process may use)")
      ->capture_default_str()
      ->check(threads_count());
  cmd->add_option("--batch-size", o->batch_size, "images per model batch")
      ->capture_default_str()
      ->check(int_range(1, 65536));
  cmd->add_option("--image-size", o->image_size, "decode images to this shortest edge (shrink-on-load)")
      ->capture_default_str()
      ->check(int_range(1, 65536));
  cmd->add_option("--lease", o->lease, "job lease in seconds, >= 1 (heartbeats renew it every third of it)")
      ->capture_default_str()
      ->check(lease_seconds());
  cmd->add_option("--debug-sample-delay", o->debug_sample_delay, "seconds to sleep per sample (tests)")
      ->check(number_range(0, 3600))
      ->group("");
  add_reader_options(cmd, o->reader);
  add_decode_options(cmd, o->decode);
  add_filter_options(cmd, o->filter);
  add_curate_options(cmd, o->curate);
  add_progress_option(cmd, o->progress);
  cmd->add_option("--shard-index", o->shard_index,
                  "take only the inputs i with i % N == this (default: $SLURM_ARRAY_TASK_ID or "
                  "$JOB_COMPLETION_INDEX)")
      ->check(non_negative_int());
  cmd->add_option("--metrics-port", o->metrics_port,
                  "serve Prometheus metrics on this port while running (/metrics)")
      ->check(port_number());
  cmd->add_option(
         "--metrics-host", o->metrics_host,
         "address for --metrics-port (0.0.0.0: every interface; the default serves this machine only)")
      ->capture_default_str();
  cmd->add_option("--num-shards", o->num_shards,
                  "N for --shard-index (default: $SLURM_ARRAY_TASK_COUNT or $CAPFORGE_NUM_SHARDS)")
      ->check(positive_int());
}

void add_caption(CLI::App& app, Action& action) {
  auto o = std::make_shared<CaptionOptions>();
  auto* cmd = app.add_subcommand("caption",
                                 "Re-caption shards: read, decode, caption, rank, repair, write "
                                 "(resumable: a rerun skips finished shards)");
  add_caption_options(cmd, o);
  cmd->callback([o, cmd, &action] { action = [o, cmd] { return run_caption(*o, cmd); }; });
}

}  // namespace capforge::cli
