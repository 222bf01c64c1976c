// capforge tune --dev SHARDS --refs REFS --grid SPEC: grid or random search over decoding flags,
// scoring each setting's final captions (caption -> rank -> repair, as `caption` makes them)
// against references, as LAION-COCO tuned its sampler. Writes the best as a --preset-file.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>

#include "capforge/env.h"
#include "capforge/eval.h"
#include "capforge/image.h"
#include "cli/caption_run.h"
#include "cli/common.h"
#include "cli/out_guard.h"
#include "core/log.h"
#include "eval/eval_data.h"
#include "eval/grid.h"
#include "pipeline/model_stages.h"
#include "pipeline/repair_stage.h"

namespace fs = std::filesystem;

namespace capforge::cli {

namespace {

struct TuneOptions {
  CaptionOptions cap;
  std::vector<std::string> dev;
  std::string refs, refs_col = "caption", refs_key_col = "key";
  std::string grid, metric = "cider_d", out = "tuned-preset.json";
  size_t random = 0, max_samples = 100;
  uint64_t seed = 0;
  bool json = false;
};

struct Dev {
  std::vector<Sample> samples;  // decoded, each with references
  std::vector<std::vector<std::string>> refs;
};

Dev load_dev(const TuneOptions& o) {
  std::map<std::string, std::vector<std::string>> refs;
  try {
    refs = eval::load_refs(o.refs, o.refs_col, o.refs_key_col);
  } catch (const std::exception& e) {
    throw UsageError(e.what(),
                     "--refs takes COCO annotations (.json) or a table with --refs-col/--refs-key-col");
  }
  Dev d;
  DecodeParams dp = o.cap.decode;
  dp.short_edge = o.cap.image_size;
  size_t seen = 0, undecodable = 0;
  for (auto& in : discover_inputs(o.dev, false)) {
    auto reader = open_reader(in, o.cap.reader);
    Sample s;
    while (d.samples.size() < o.max_samples && reader->next(s)) {
      ++seen;
      auto it = refs.find(s.key);
      if (it == refs.end() || it->second.empty() || !s.has_image) continue;
      DecodedImage img;
      if (!decode_image(s.image_bytes, dp, img).empty()) {
        ++undecodable;
        continue;
      }
      s.pixels = std::move(img.pixels);
      d.refs.push_back(it->second);
      d.samples.push_back(std::move(s));
      s = Sample{};
    }
  }
  if (d.samples.empty())
    throw UsageError(fmt::format("none of the {} dev samples has both an image and a reference", seen),
                     "--refs must have the dev shards' keys (--refs-key-col, --refs-col)");
  info("dev set: {} samples with references ({} read, {} undecodable)", d.samples.size(), seen, undecodable);
  return d;
}

// The flags given to tune that shape the scored captions, as a preset file's "flags": every
// explicit flag except tune's own and those that never change captions (threads, batch size).
// Model and ranker paths are made absolute, so the preset works from any directory.
Json explicit_flags(CLI::App* cmd) {
  static const std::set<std::string> kNotCaption = {"help", "dev",    "refs",   "refs-col",  "refs-key-col",
                                                    "grid", "metric", "random", "grid-seed", "max-samples",
                                                    "out",  "json",   "preset", "threads",   "batch-size"};
  Json flags = Json::object();
  for (const CLI::Option* opt : cmd->get_options()) {
    if (opt->get_lnames().empty() || opt->count() == 0) continue;
    const std::string& name = opt->get_lnames().front();
    if (kNotCaption.count(name)) continue;
    Json values = Json::array();
    for (auto v : opt->results()) {
      bool path = name == "model" || name == "mmproj" || name == "rank" || name == "repair-model";
      if (path && v != "demo" && v.rfind("demo:", 0) != 0) {
        auto colon = name == "rank" ? v.rfind(':') : std::string::npos;
        bool k = colon != std::string::npos && colon + 1 < v.size() &&
                 v.find_first_not_of("0123456789", colon + 1) == std::string::npos;
        std::string dir = k ? v.substr(0, colon) : v;
        v = fs::absolute(dir).lexically_normal().string() + (k ? v.substr(colon) : "");
      }
      values.push_back(v);
    }
    flags[name] = values.size() == 1 ? values[0] : values;
  }
  return flags;
}

// The final captions of one setting over the dev set.
std::vector<std::string> run_setting(const Dev& dev, const TuneOptions& o,
                                     std::shared_ptr<const CaptionModel> vlm,
                                     const std::vector<RankerSpec>& rankers,
                                     std::shared_ptr<const RepairModel> repair_model) {
  std::vector<std::unique_ptr<Stage>> stages;
  stages.push_back(make_caption_stage(vlm, o.cap.c.params, (size_t)o.cap.batch_size));
  if (!rankers.empty()) stages.push_back(make_rank_stage(rankers, (size_t)o.cap.batch_size));
  if (o.cap.repair == "rules") stages.push_back(make_repair_stage());
  if (o.cap.repair == "model") {  // a Repairer per setting: --grid may vary the repair flags
    try {
      stages.push_back(make_model_repair_stage(repair_model, o.cap.rm.params, o.cap.rm.guard, rankers,
                                               (size_t)o.cap.batch_size));
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what(), "see the repair flags of `capforge tune --help`");
    }
  }
  std::vector<Sample> work = dev.samples;
  for (size_t i = 0; i < work.size(); i += (size_t)o.cap.batch_size) {
    std::vector<Sample*> batch;
    for (size_t k = i; k < work.size() && k < i + (size_t)o.cap.batch_size; ++k) batch.push_back(&work[k]);
    for (auto& st : stages) {
      std::vector<Sample*> live;
      for (auto* s : batch)
        if (s->status == Status::success) live.push_back(s);
      if (!live.empty()) st->process(live);
    }
  }
  std::vector<std::string> out;
  for (auto& s : work) out.push_back(s.status == Status::success ? s.re_caption.value_or("") : "");
  return out;
}

int run_tune(TuneOptions& o, CLI::App* cmd) {
  std::vector<eval::Setting> settings;
  try {
    metric_value(CaptionMetrics{}, o.metric);
    settings = eval::expand_grid(eval::parse_grid(o.grid), o.random, o.seed);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what(), "--grid \"top_p=0.1,0.25,0.5;min_new_tokens=5,10\"; --metric " +
                                   fmt::format("{}", fmt::join(metric_names(), "|")));
  }
  for (auto& [flag, v] : settings.front()) {
    if (flag == "model" || flag == "mmproj" || flag == "rank" || flag == "preset" || flag == "repair-model")
      throw UsageError("--grid varies decoding and repair flags, not --" + flag);
    if (flag.rfind("repair-", 0) == 0 && o.cap.rm.params.model.empty())
      throw UsageError("--grid varies --" + flag + ", which needs --repair-model",
                       "pass --repair-model FILE.gguf");
    try {
      cmd->get_option("--" + flag);
    } catch (const CLI::OptionNotFound&) {
      throw UsageError("--grid names --" + flag + ", which tune does not have", "see `capforge tune --help`");
    }
  }
  resolve_options(o.cap, cmd);
  if (!o.cap.c.params.more_prompts.empty())
    throw UsageError("tune scores one prompt against the references; give one --prompt",
                     "tune each prompt in its own run, then combine them with --prompt NAME=TEXT in caption");
  if (o.cap.captioner != "vlm" && o.cap.captioner != "blip")
    throw UsageError(
        "tune needs a captioner: --model and --mmproj, --captioner blip --model DIR, or --model demo");
  Dev dev = load_dev(o);
  auto inputs = discover_inputs(o.dev, false);
  inputs.push_back({o.refs, "refs", InputFormat::jsonl});
  refuse_outputs_on_inputs(o.dev, inputs, "", {o.out});
  std::shared_ptr<const CaptionModel> vlm;
  try {
    vlm = load_captioner(o.cap.c.params);
  } catch (const std::exception& e) {
    throw UsageError(e.what(), captioner_model_hint(o.cap.c.params));
  }
  ClipParams cp;
  cp.dtype = o.cap.rank_dtype;
  cp.threads = o.cap.threads;
  std::vector<RankerSpec> rankers;
  for (auto& spec : o.cap.rank) rankers.push_back(parse_ranker(spec, cp));
  auto repair_model = o.cap.repair == "model" ? load_repair_model_checked(o.cap.rm) : nullptr;

  // The preset reproduces the scored run: the command line's flags, then the best grid point.
  Json flags = explicit_flags(cmd);
  const CaptionOptions base = o.cap;  // each setting starts from the command line's options
  struct Result {
    eval::Setting setting;
    CaptionMetrics m;
    double seconds;
  };
  std::vector<Result> results;
  size_t best = 0;
  for (size_t i = 0; i < settings.size(); ++i) {
    o.cap = base;
    for (auto& [flag, v] : settings[i]) apply_flag(cmd, flag, {v});
    build_schedule(o.cap.c);
    if (o.cap.repair == "model") check_repair_settings(o.cap.rm);
    auto t0 = std::chrono::steady_clock::now();
    auto preds = run_setting(dev, o, vlm, rankers, repair_model);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    results.push_back({settings[i], score_captions(preds, dev.refs), secs});
    double v = metric_value(results.back().m, o.metric);
    if (v > metric_value(results[best].m, o.metric)) best = i;
    info("[{}/{}] {}: {} {:.4f} ({:.1f}s; best {:.4f})", i + 1, settings.size(),
         eval::setting_label(settings[i]), o.metric, v, secs, metric_value(results[best].m, o.metric));
  }

  for (auto& [flag, v] : results[best].setting) flags[flag] = v;
  Json tried = Json::array();
  for (auto& r : results) {
    Json f = Json::object();
    for (auto& [flag, v] : r.setting) f[flag] = v;
    tried.push_back({{"flags", f},
                     {"bleu_4", r.m.bleu[3]},
                     {"rouge_l", r.m.rouge_l},
                     {"cider_d", r.m.cider_d},
                     {"seconds", r.seconds}});
  }
  Json preset = {{"capforge_preset", 1},
                 {"preset", o.cap.preset},
                 {"flags", flags},
                 {"tuned",
                  {{"metric", o.metric},
                   {"score", metric_value(results[best].m, o.metric)},
                   {"dev", o.dev},
                   {"dev_samples", dev.samples.size()},
                   {"refs", o.refs},
                   {"grid", o.grid},
                   {"settings", tried}}}};
  if (fs::path(o.out).has_parent_path()) env().make_dirs(fs::path(o.out).parent_path().string());
  write_file_atomic(o.out, preset.dump(1) + "\n");
  if (o.json) {
    std::printf("%s\n", preset.dump().c_str());
    return 0;
  }
  std::vector<size_t> order(results.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return metric_value(results[a].m, o.metric) > metric_value(results[b].m, o.metric);
  });
  std::printf("%-44s %8s %8s %8s %8s\n", "setting", "BLEU-4", "ROUGE-L", "CIDEr-D", "seconds");
  for (size_t i : order)
    std::printf("%-44s %8.4f %8.4f %8.4f %8.1f\n", eval::setting_label(results[i].setting).c_str(),
                results[i].m.bleu[3], results[i].m.rouge_l, results[i].m.cider_d, results[i].seconds);
  std::printf(
      "best by %s: %s\npreset written to %s (base preset, every flag given and the best setting); use it "
      "with: "
      "capforge caption IN --out DIR --preset-file %s\n",
      o.metric.c_str(), eval::setting_label(results[best].setting).c_str(), o.out.c_str(), o.out.c_str());
  return 0;
}

}  // namespace

void add_tune(CLI::App& app, Action& action) {
  auto o = std::make_shared<TuneOptions>();
  auto* cmd =
      app.add_subcommand("tune",
                         "Search decoding settings for the captions that best match references (grid or "
                         "random), as LAION-COCO tuned its sampler; writes the best as a preset file");
  cmd->add_option("--dev", o->dev, "dev shards with images (webdataset, parquet, ...)")->required();
  cmd->add_option("--refs", o->refs, "references: COCO annotations .json, or a table with --refs-col")
      ->required();
  cmd->add_option("--refs-col", o->refs_col, "table refs: text or list-of-texts column")
      ->capture_default_str();
  cmd->add_option("--refs-key-col", o->refs_key_col, "table refs: key column")->capture_default_str();
  cmd->add_option("--grid", o->grid,
                  "e.g. \"top_p=0.1,0.25,0.5;min_new_tokens=5,10\" (| inside a value: a list)")
      ->required();
  cmd->add_option("--metric", o->metric, "bleu_1..bleu_4, rouge_l or cider_d")->capture_default_str();
  cmd->add_option("--random", o->random, "try this many settings drawn from the grid (0: all)")
      ->capture_default_str()
      ->check(int_range(0, 1000000));
  cmd->add_option("--grid-seed", o->seed, "seed for --random's draw of settings")
      ->capture_default_str()
      ->check(seed_value());
  cmd->add_option("--max-samples", o->max_samples, "dev samples used")
      ->capture_default_str()
      ->check(int_range(1, 100000000));
  cmd->add_option("--out", o->out, "preset file to write")->capture_default_str();
  cmd->add_flag("--json", o->json, "print the preset (with every setting's scores) as JSON");
  cmd->add_option("--preset", o->cap.preset, "base preset: laion-coco, recap or none")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "laion-coco", "recap"}));
  add_captioner_options(cmd, o->cap.c, /*model_required=*/true);
  cmd->add_option("--captioner", o->cap.captioner,
                  "vlm (--model and --mmproj GGUFs) or blip (--model: a BLIP dir)")
      ->check(CLI::IsMember({"vlm", "blip"}));
  cmd->add_option("--rank", o->cap.rank, "CLIP ranker DIR[:K] (repeatable), as in caption")
      ->check(rank_spec());
  cmd->add_option("--repair", o->cap.repair, "rules, none or model (the default with --repair-model)")
      ->check(CLI::IsMember({"rules", "none", "model"}));
  add_repair_model_options(cmd, o->cap.rm,
                           "Repair model (docs/repair.md; --grid may vary the --repair-* flags)");
  cmd->add_option("--threads", o->cap.threads, "threads for the models (0: the CPUs this process may use)")
      ->capture_default_str()
      ->check(threads_count());
  cmd->add_option("--batch-size", o->cap.batch_size, "images per model batch")
      ->capture_default_str()
      ->check(int_range(1, 65536));
  cmd->add_option("--image-size", o->cap.image_size, "decode images to this shortest edge")
      ->capture_default_str()
      ->check(int_range(1, 65536));
  cmd->callback([o, cmd, &action] { action = [o, cmd] { return run_tune(*o, cmd); }; });
}

}  // namespace capforge::cli
