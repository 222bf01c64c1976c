#include "cli/caption_run.h"

#include <fmt/format.h>

#include <filesystem>
#include <thread>

#include "capforge/captioner.h"
#include "capforge/clip.h"
#include "cli/common.h"
#include "coord/input_fingerprints.h"
#include "core/cpus.h"
#include "core/log.h"
#include "core/text.h"
#include "models/prompt_template.h"
#include "pipeline/model_stages.h"
#include "pipeline/repair_stage.h"

namespace fs = std::filesystem;

namespace capforge::cli {

void resolve_options(CaptionOptions& o, CLI::App* cmd) {
  if (!o.preset_file.empty()) apply_preset_file(o.preset_file, cmd, o.preset);
  if (o.captioner == "blip") o.c.params.family = "blip";
  if (!apply_preset(o.preset, cmd, o.c)) throw UsageError("unknown --preset " + o.preset);
  // `--model demo` also ranks with the demo CLIP unless rankers are given
  if (resolve_demo_model(o.c.params) && o.rank.empty()) o.rank.push_back("demo");
  for (auto& r : o.rank)
    if (r == "demo" || r.rfind("demo:", 0) == 0)
      r = (fs::path(demo_models_dir()) / "clip").string() + r.substr(4);
  if (o.captioner.empty())
    o.captioner = o.c.params.model.empty() && o.c.params.mmproj.empty() ? "none" : "vlm";
  if (o.captioner == "vlm" && (o.c.params.model.empty() || o.c.params.mmproj.empty()))
    throw UsageError("captioning needs --model (the VLM's language model GGUF) and --mmproj (its projector)",
                     "pass both, or --captioner none to run the pipeline without a captioner");
  if (o.captioner == "blip" && o.c.params.model.empty())
    throw UsageError("--captioner blip needs --model: a Hugging Face BLIP dir (or demo)",
                     "e.g. a local copy of Salesforce/blip-image-captioning-large");
  if (o.captioner == "blip" && !o.c.params.mmproj.empty())
    throw UsageError("--mmproj is for VLM captioners; BLIP's dir holds its vision tower");
  // --repair-model repairs with the model instead of the rules (docs/repair.md): with --repair
  // rules or none it is a contradiction, and --repair model needs the model
  if (o.rm.given() && (o.repair == "rules" || o.repair == "none"))
    throw UsageError("--repair " + o.repair + " and --repair-model exclude each other",
                     "--repair-model repairs with the model instead of the rules; give one of them");
  if (o.repair == "model" && !o.rm.given()) throw UsageError("--repair model needs --repair-model FILE.gguf");
  if (o.rm.given()) o.repair = "model";
  if (o.repair.empty()) o.repair = o.preset == "recap" || o.preset == "recap-v2" ? "none" : "rules";
  if (o.threads <= 0) o.threads = available_cpus();
  resolve_repair_options(o.rm, cmd, o.preset, o.threads);
  o.c.params.threads = o.threads;
  build_schedule(o.c);
  // LAION-COCO ranks down to one caption: the last ranker keeps 1 unless told otherwise
  if (o.preset == "laion-coco" && !o.rank.empty() && o.rank.back().find(':') == std::string::npos)
    o.rank.back() += ":1";
}

RankerSpec parse_ranker(const std::string& spec, const ClipParams& cp) {
  RankerSpec r;
  r.name = spec;
  std::string dir = spec;
  if (auto colon = spec.rfind(':'); colon != std::string::npos && colon + 1 < spec.size() &&
                                    spec.find_first_not_of("0123456789", colon + 1) == std::string::npos) {
    dir = spec.substr(0, colon);
    r.keep = std::stoi(spec.substr(colon + 1));
  }
  try {
    r.model = load_clip(dir, cp);
  } catch (const std::exception& e) {
    throw UsageError(
        fmt::format("cannot load ranker {}: {}", dir, e.what()),
        "--rank takes a model directory (Hugging Face CLIP or SigLIP, or open_clip), optionally with :K "
        "(candidates it keeps)");
  }
  r.name = fs::path(dir).filename().string() + (r.keep ? ":" + std::to_string(r.keep) : "");
  return r;
}

// --rank-prompts as a flag per prompt (empty: all ranked).
std::vector<bool> ranked_prompts(const CaptionOptions& o) {
  if (o.rank_prompts.empty()) return {};
  auto prompts = all_prompts(o.c.params);
  std::vector<bool> ranked(prompts.size(), false);
  std::string known;
  for (auto& want : o.rank_prompts) {
    bool found = false;
    for (size_t k = 0; k < prompts.size(); ++k) {
      std::string name = prompts[k].name.empty() ? "main" : prompts[k].name;
      if (k == 0 || known.size() < 200) known += (known.empty() ? "" : ", ") + name;
      if (name == want) ranked[k] = found = true;
    }
    if (!found)
      throw UsageError(fmt::format("--rank-prompts {}: no prompt is named so", want), "prompts: " + known);
  }
  return ranked;
}

std::vector<std::unique_ptr<Stage>> make_model_stages(const CaptionOptions& o, std::string& captioner_name,
                                                      int* embedding_dim) {
  std::vector<std::unique_ptr<Stage>> stages;
  int curate_dim = 0;
  std::vector<RankerSpec> repair_rankers;  // the model repair's CLIP guard and re-scoring
  // the repair model loads first of all: a bad one stops the run before the slow loads
  auto repair_model = o.repair == "model" ? load_repair_model_checked(o.rm) : nullptr;
  if (o.captioner == "vlm" || o.captioner == "blip") {
    std::shared_ptr<const CaptionModel> vlm;
    try {
      vlm = load_captioner(o.c.params);
    } catch (const std::exception& e) {
      throw UsageError(e.what(), captioner_model_hint(o.c.params));
    }
    captioner_name = fs::path(o.c.params.model).filename().string();
    try {
      stages.push_back(make_caption_stage(vlm, o.c.params, (size_t)o.batch_size));
    } catch (const std::invalid_argument& e) {  // settings that cannot work with this model
      throw UsageError(e.what(), "see `capforge caption --help` for the captioner resource flags");
    }
  }
  if (!o.rank.empty()) {
    ClipParams cp;
    cp.dtype = o.rank_dtype;
    cp.threads = o.threads;
    std::vector<RankerSpec> rankers;
    for (auto& spec : o.rank) rankers.push_back(parse_ranker(spec, cp));
    repair_rankers = rankers;
    RankerSpec first = rankers.front();
    stages.push_back(make_rank_stage(std::move(rankers), (size_t)o.batch_size, o.c.params.cancel,
                                     ranked_prompts(o), /*embed_images=*/o.curate.any()));
    if (auto safety = make_curate_stage(o.curate, &first, curate_dim)) stages.push_back(std::move(safety));
  } else {
    make_curate_stage(o.curate, nullptr, curate_dim);  // a curation flag without a ranker: UsageError
  }
  if (embedding_dim) *embedding_dim = curate_dim;
  if (o.repair == "rules") stages.push_back(make_repair_stage());
  if (o.repair == "model") {
    RepairParams rp = o.rm.params;
    rp.cancel = o.c.params.cancel;
    try {
      stages.push_back(make_model_repair_stage(repair_model, rp, o.rm.guard, std::move(repair_rankers),
                                               (size_t)o.batch_size));
    } catch (const std::invalid_argument& e) {  // settings that cannot work with this model
      throw UsageError(e.what(), "see the repair flags of `capforge caption --help`");
    }
  }
  return stages;
}

std::string config_fingerprint(const CaptionOptions& o) {
  const CaptionerParams& p = o.c.params;
  Json sched = Json::array();
  auto one = [](const SamplingParams& s) {
    return Json{{"greedy", s.greedy},
                {"t", s.temperature},
                {"k", s.top_k},
                {"p", s.top_p},
                {"min_p", s.min_p},
                {"rep", s.repetition_penalty},
                {"ngram", s.no_repeat_ngram},
                {"min", s.min_new_tokens},
                {"max", s.max_new_tokens}};
  };
  for (auto& s : p.schedule) sched.push_back(one(s));
  Json more = Json::array();
  bool placeholders = PromptTemplate(p.prompt).has_placeholders();
  for (auto& pp : p.more_prompts) {
    Json ms = Json::array();
    for (auto& s : pp.schedule) ms.push_back(one(s));
    more.push_back({{"name", pp.name},
                    {"prompt", pp.prompt},
                    {"prefix", pp.response_prefix},
                    {"candidates", pp.candidates},
                    {"sampling", one(pp.sampling)},
                    {"schedule", ms},
                    {"harvest", pp.harvest_eos},
                    {"force_eos", pp.force_eos}});
    placeholders |= PromptTemplate(pp.prompt).has_placeholders();
  }
  Json j = {{"captioner", o.captioner},
            {"model", p.model},
            {"mmproj", p.mmproj},
            {"prompt", p.prompt},
            {"prefix", p.response_prefix},
            {"template", p.chat_template},
            {"candidates", p.candidates},
            {"sampling", one(p.sampling)},
            {"schedule", sched},
            {"harvest", p.harvest_eos},
            {"stop", p.stop},
            {"loop", p.loop_repeats},
            {"fragments", p.drop_fragment},
            {"seed", p.seed},
            {"rank", o.rank},
            {"rank_dtype", o.rank_dtype},
            {"repair", o.repair},
            {"schema", o.schema},
            {"formats", o.formats},
            {"image_size", o.image_size},
            {"url_col", o.reader.url_col},
            {"caption_col", o.reader.caption_col},
            {"key_col", o.reader.key_col},
            {"image_col", o.reader.image_col},
            {"max_pixels", o.decode.max_pixels},
            {"max_bytes", o.decode.max_bytes}};
  // keys that older runs did not have are only added when set, so their stores still match
  if (!p.prompt_name.empty()) j["prompt_name"] = p.prompt_name;
  if (!more.empty()) j["more_prompts"] = more;
  if (placeholders) j["org_caption_max_tokens"] = p.org_caption_max_tokens;
  if (!o.rank_prompts.empty()) j["rank_prompts"] = o.rank_prompts;
  if (o.repair == "model") j["repair_model"] = repair_fingerprint(o.rm);
  add_curate_fingerprint(j, o.curate);
  if (Json f = filter_fingerprint(o.filter); !f.is_null()) j["filter"] = f;
  return j.dump();
}

std::string config_diff(const std::string& old_fp, const std::string& new_fp) {
  Json a = Json::parse(old_fp, nullptr, false), b = Json::parse(new_fp, nullptr, false);
  auto shorten = [](const Json& v) {
    std::string t = v.is_null() ? "(unset)" : v.dump();
    return t.size() > 120 ? t.substr(0, 117) + "..." : t;
  };
  if (!a.is_object() || !b.is_object()) return "  settings: " + shorten(old_fp) + " -> " + shorten(new_fp);
  std::string out;
  for (auto& [k, v] : a.items())
    if (v.is_object() && b.contains(k) && b[k].is_object()) {  // e.g. repair_model: name the members
      for (auto& [m, x] : v.items())
        if (!b[k].contains(m) || b[k][m] != x)
          out += fmt::format("  {}.{}: {} -> {}\n", k, m, shorten(x), shorten(b[k].value(m, Json())));
      for (auto& [m, x] : b[k].items())
        if (!v.contains(m)) out += fmt::format("  {}.{}: (unset) -> {}\n", k, m, shorten(x));
    } else if (!b.contains(k) || b[k] != v) {
      out += fmt::format("  {}: {} -> {}\n", k, shorten(v), shorten(b.value(k, Json())));
    }
  for (auto& [k, v] : b.items())
    if (!a.contains(k)) out += fmt::format("  {}: (unset) -> {}\n", k, shorten(v));
  if (!out.empty()) out.pop_back();  // no trailing newline
  return out;
}

void check_store_matches(JobStore& store, const std::string& fp, const std::vector<ShardInput>& inputs,
                         const std::string& what, const std::string& hint) {
  if (auto old = store.get_meta("config"); old && *old != fp)
    throw UsageError(fmt::format("{} already holds a run with other settings (previous -> now):\n{}", what,
                                 config_diff(*old, fp)),
                     hint);
  auto changed = check_input_fingerprints(store, inputs);
  if (!changed.empty()) {
    std::string list;
    for (auto& c : changed)
      list += fmt::format("\n  {} (shard {}): was {}; now {}", c.path, c.shard, c.was, c.now);
    throw UsageError(
        fmt::format("{} input(s) changed since their shards were captioned into {}; their outputs were made "
                    "from the old contents:{}",
                    changed.size(), what, list),
        hint);
  }
  store.set_meta("config", fp);
}

void Tally::add(const Sample& s) {
  // the safety counts cover every judged row, the ones the safety filters removed included
  if (s.unsafe_margin) concept_judged++, concept_unsafe += s.unsafe_concept.has_value();
  if (s.punsafe) nsfw_judged++, nsfw_unsafe += *s.punsafe >= 0.5;
  if (s.status == Status::filtered) return;  // the means describe the kept rows, dropped or not
  if (s.caption) org_words += word_count(*s.caption), org_n++;
  if (s.re_caption) re_words += word_count(*s.re_caption), re_n++;
  if (s.org_clip_score) org_score += *s.org_clip_score, org_scored++;
  if (s.re_clip_score) re_score += *s.re_clip_score, re_scored++;
  if (!s.repair_status.empty()) repair[s.repair_status]++;
  for (auto& o : s.more_outputs)
    if (!o.repair_status.empty()) repair[o.repair_status]++;
}

namespace {
class TallySink : public ShardSink {
 public:
  TallySink(std::unique_ptr<ShardSink> inner, std::shared_ptr<Tally> tally)
      : inner_(std::move(inner)), tally_(std::move(tally)) {}
  void write(const Sample& s) override {
    tally_->add(s);
    inner_->write(s);
  }
  void prepare(const ShardStats& stats) override { inner_->prepare(stats); }
  void commit(const ShardStats& stats) override { inner_->commit(stats); }

 private:
  std::unique_ptr<ShardSink> inner_;
  std::shared_ptr<Tally> tally_;
};
}  // namespace

std::unique_ptr<ShardSink> tally_sink(std::unique_ptr<ShardSink> inner, std::shared_ptr<Tally> tally) {
  return std::make_unique<TallySink>(std::move(inner), std::move(tally));
}

void Tally::merge(const Tally& t) {
  org_words += t.org_words, org_n += t.org_n, re_words += t.re_words, re_n += t.re_n;
  org_score += t.org_score, re_score += t.re_score;
  org_scored += t.org_scored, re_scored += t.re_scored;
  concept_judged += t.concept_judged, concept_unsafe += t.concept_unsafe;
  nsfw_judged += t.nsfw_judged, nsfw_unsafe += t.nsfw_unsafe;
  for (auto& [k, v] : t.repair) repair[k] += v;
}

void print_summary(const RunSummary& s, const Tally& t, const std::string& out, int64_t pending) {
  std::string statuses;
  for (auto& [k, v] : s.status_dict) statuses += fmt::format("{}{} {}", statuses.empty() ? "" : ", ", k, v);
  double rate = s.seconds > 0 ? s.samples / s.seconds : 0;
  auto mean = [](double sum, int64_t n) { return n ? fmt::format("{:.2f}", sum / n) : std::string("n/a"); };
  auto mean_json = [](double sum, int64_t n) { return n ? Json(sum / n) : Json(nullptr); };
  logging::event("summary", {{"shards_done", s.shards_done},
                             {"shards_failed", s.shards_failed},
                             {"pending", pending},
                             {"samples", s.samples},
                             {"status_dict", s.status_dict},
                             {"filter_reasons", s.filter_reasons},
                             {"unsafe_concept", t.concept_judged ? Json(t.concept_unsafe) : Json(nullptr)},
                             {"unsafe_nsfw_head", t.nsfw_judged ? Json(t.nsfw_unsafe) : Json(nullptr)},
                             {"seconds", s.seconds},
                             {"samples_per_s", rate},
                             {"mean_org_length", mean_json(t.org_words, t.org_n)},
                             {"mean_re_length", mean_json(t.re_words, t.re_n)},
                             {"mean_org_clip_score", mean_json(t.org_score, t.org_scored)},
                             {"mean_re_clip_score", mean_json(t.re_score, t.re_scored)},
                             {"repair", t.repair.empty() ? Json(nullptr) : Json(t.repair)}});
  if (logging::format() == logging::Format::json) return;
  if (!logging::shows_info()) {  // -q: only what went wrong
    for (auto& f : s.failures) warn("failed shard {}: {}", f.shard, f.error);
    for (auto& f : s.read_errors) warn("broken input {}: {}", f.shard, f.error);
    return;
  }
  std::fprintf(stderr,
               "\nsummary: %lld shard(s) done, %lld failed, %lld pending\n"
               "  samples %lld: %s\n"
               "  mean length (words): org %s, re %s\n"
               "  mean CLIP score (cosine x 100): org %s, re %s\n"
               "  %.2f samples/s over %.1fs\n"
               "  outputs in %s\n",
               (long long)s.shards_done, (long long)s.shards_failed, (long long)pending, (long long)s.samples,
               statuses.empty() ? "none" : statuses.c_str(), mean(t.org_words, t.org_n).c_str(),
               mean(t.re_words, t.re_n).c_str(), mean(t.org_score, t.org_scored).c_str(),
               mean(t.re_score, t.re_scored).c_str(), rate, s.seconds, out.c_str());
  if (!s.filter_reasons.empty()) {
    std::string by;
    for (auto& [k, v] : s.filter_reasons) by += fmt::format("{}{} {}", by.empty() ? "" : ", ", k, v);
    std::fprintf(stderr, "  filtered by: %s\n", by.c_str());
  }
  if (!t.repair.empty()) {
    auto n = [&](const char* k) { return t.repair.count(k) ? (long long)t.repair.at(k) : 0LL; };
    std::fprintf(
        stderr,
        "  model repair (captions): %lld repaired, %lld unchanged, %lld rejected_drift, %lld failed, %lld "
        "skipped (blank)\n",
        n("repaired"), n("unchanged"), n("rejected_drift"), n("repair_failed"), n("skipped"));
  }
  if (t.concept_judged)
    std::fprintf(stderr, "  unsafe (zero-shot concepts): %lld of %lld\n", (long long)t.concept_unsafe,
                 (long long)t.concept_judged);
  if (t.nsfw_judged)
    std::fprintf(stderr, "  unsafe (NSFW head, punsafe >= 0.5): %lld of %lld\n", (long long)t.nsfw_unsafe,
                 (long long)t.nsfw_judged);
  for (auto& f : s.failures)
    std::fprintf(stderr, "  failed shard %s: %s\n", f.shard.c_str(), terminal_safe(f.error).c_str());
  for (auto& f : s.read_errors)
    std::fprintf(stderr, "  broken input %s: %s\n", f.shard.c_str(), terminal_safe(f.error).c_str());
}

}  // namespace capforge::cli
