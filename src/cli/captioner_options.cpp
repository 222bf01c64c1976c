#include "cli/captioner_options.h"

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cli/common.h"
#include "models/vlm/captioner_checks.h"

namespace capforge::cli {

namespace {
template <typename T>
T pick(const std::vector<T>& v, size_t i, T fallback) {
  return v.empty() ? fallback : v[i % v.size()];
}
}  // namespace

std::string demo_models_dir() {
  if (const char* d = std::getenv("CAPFORGE_DEMO_MODELS"); d && *d) return d;
  return CAPFORGE_DEMO_MODELS_DIR;
}

bool resolve_demo_model(CaptionerParams& p) {
  if (p.model != "demo") return false;
  std::filesystem::path d = demo_models_dir();
  if (p.family == "blip") {
    if (!std::filesystem::exists(d / "blip" / "config.json"))
      throw UsageError(fmt::format("the demo BLIP captioner is not in {}", (d / "blip").string()),
                       "set CAPFORGE_DEMO_MODELS, or retrain it with tools/demo-models/blip.py");
    p.model = (d / "blip").string();
    return true;
  }
  if (!std::filesystem::exists(d / "captioner.gguf"))
    throw UsageError(fmt::format("the demo models are not in {}", d.string()),
                     "set CAPFORGE_DEMO_MODELS, or retrain them with tools/demo-models/train.py");
  p.model = (d / "captioner.gguf").string();
  if (p.mmproj.empty()) p.mmproj = (d / "captioner-mmproj.gguf").string();
  return true;
}

std::string captioner_model_hint(const CaptionerParams& p) {
  if (p.family == "blip")
    return "--model takes a Hugging Face BLIP dir (config.json, model.safetensors, vocab.txt, "
           "preprocessor_config.json), e.g. Salesforce/blip-image-captioning-large";
  return "--model takes the language model GGUF and --mmproj its projector GGUF";
}

void apply_flag(CLI::App* cmd, const std::string& flag, const std::vector<std::string>& values) {
  CLI::Option* opt = nullptr;
  try {
    opt = cmd->get_option("--" + flag);
  } catch (const CLI::OptionNotFound&) {
    throw UsageError(fmt::format("`{}` has no option --{}", cmd->get_name(), flag),
                     "use the flag names of `capforge " + cmd->get_name() + " --help`, without the dashes");
  }
  try {
    opt->clear();
    for (auto& v : values) opt->add_result(v);
    opt->run_callback();
  } catch (const CLI::Error& e) {
    throw UsageError(fmt::format("--{} {}: {}", flag, fmt::join(values, " "), e.what()));
  }
}

void apply_preset_file(const std::string& path, CLI::App* cmd, std::string& preset) {
  std::ifstream f(path);
  if (!f) throw UsageError("cannot read --preset-file " + path);
  Json j = Json::parse(f, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("flags") || !j["flags"].is_object())
    throw UsageError(path + " is not a capforge preset file",
                     "write one with `capforge tune ... --out FILE`");
  if (j.contains("preset") && j["preset"].is_string() && cmd->count("--preset") == 0) preset = j["preset"];
  for (auto& [flag, v] : j["flags"].items()) {
    const CLI::Option* given = cmd->get_option_no_throw("--" + flag);
    if (given && given->count() > 0) continue;  // the command line wins
    std::vector<std::string> values;
    for (auto& x : v.is_array() ? v : Json::array({v}))
      values.push_back(x.is_string() ? x.get<std::string>() : x.dump());
    apply_flag(cmd, flag, values);
  }
}

void add_decoding_options(CLI::App* cmd, CaptionerCli& c) {
  auto& p = c.params;
  cmd->add_option(
         "--response-prefix", p.response_prefix,
         "forced start of the answer, kept in the caption (e.g. 'a picture of '); BLIP's text prompt")
      ->group("Prompt");
  const char* d = "Decoding (lists: candidate i uses element i % length)";
  cmd->add_option("--candidates", p.candidates, "candidates per image (at most --parallel)")
      ->capture_default_str()
      ->check(int_range(1, 256))
      ->group(d);
  cmd->add_flag("--greedy", c.greedy, "argmax decoding")->group(d);
  // list flags: one value per use (repeat the flag or use commas), so they never eat the inputs
  auto list = [&](const char* name, auto& v, const char* help, CLI::Validator check) {
    cmd->add_option(name, v, help)
        ->delimiter(',')
        ->expected(1)
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
        ->check(check)
        ->group(d);
  };
  list("--temperature", c.temperature, "sampling temperature (0: argmax)", number_range(0, 100));
  list("--top-k", c.top_k, "top-k (0: off)", non_negative_int());
  list("--top-p", c.top_p, "nucleus mass (1: off)", number_range(0, 1, /*lo_open=*/true));
  list("--min-p", c.min_p, "min-p (0: off)", prob01());
  list("--min-new-tokens", c.min_new, "no end of text before this many tokens", int_range(0, 1 << 20));
  list("--max-new-tokens", c.max_new, "at most this many tokens (default 64; BLIP: 30)",
       int_range(1, 1 << 20));
  cmd->add_option("--repetition-penalty", p.sampling.repetition_penalty,
                  "penalty on tokens already generated")
      ->capture_default_str()
      ->check(number_range(0, 100, /*lo_open=*/true))
      ->group(d);
  cmd->add_option("--no-repeat-ngram", p.sampling.no_repeat_ngram, "never repeat an n-gram (0: off)")
      ->check(int_range(0, 1024))
      ->group(d);
  cmd->add_option("--harvest-eos", p.harvest_eos,
                  "keep the text as a candidate whenever p(EOS) >= P (LAION-COCO; 0: off)")
      ->check(prob01())
      ->group(d);
  cmd->add_option("--force-eos", p.force_eos,
                  "a candidate ends when the raw p(end) exceeds P, even before --min-new-tokens; the token "
                  "sampled at that step is dropped (LAION-COCO: 0.1794; 0: off)")
      ->check(prob01())
      ->group(d);
}

void add_captioner_options(CLI::App* cmd, CaptionerCli& c, bool model_required) {
  auto& p = c.params;
  const char* m = "Captioning model";
  auto* model =
      cmd->add_option("--model", p.model,
                      "language model GGUF of the VLM, a BLIP model dir (--captioner blip), or `demo` "
                      "for the bundled demo models")
          ->group(m);
  cmd->add_option("--mmproj", p.mmproj, "multimodal projector GGUF of the VLM (needed unless --model demo)")
      ->group(m);
  if (model_required) model->required();
  cmd->add_option("--captioner-dtype", p.dtype, "BLIP weights, converted at load: f32, f16 or bf16")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "f16", "bf16"}))
      ->group(m);
  cmd->add_option(
         "--lm-engine", p.lm_engine,
         "VLM text model: llama (libllama, weights as stored) or int8 (capforge's decoder for llama-"
         "architecture models: weights re-quantised to int8 at load, on the CPU; faster, captions close "
         "to llama's)")
      ->capture_default_str()
      ->check(CLI::IsMember({"llama", "int8"}))
      ->group(m);
  cmd->add_option(
         "--mmproj-dtype", p.mmproj_dtype,
         "VLM projector: stored (as the GGUF holds it) or bf16 (its matrices converted at load: faster "
         "image encoding on CPUs with AVX512-BF16; mlp and idefics3 projectors)")
      ->capture_default_str()
      ->check(CLI::IsMember({"stored", "bf16"}))
      ->group(m);
  cmd->add_option("--chat-template", p.chat_template, "override the model's chat template (name or template)")
      ->group(m);
  const char* pr = "Prompt";
  cmd->add_option("--prompt", c.prompts,
                  "the instruction (default: '" + p.prompt +
                      "'); NAME=TEXT names it; repeat for several prompts per image in one pass (the first "
                      "fills re_caption, each named one its own columns); {org_caption}, {url}, {key}, "
                      "{col:NAME} are filled per sample as plain text")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->group(pr);
  cmd->add_option(
         "--prompt-opt", c.prompt_opts,
         "NAME:FLAG[=VALUE]: a decoding flag for prompt NAME only (also spelt --FLAG@NAME VALUE), e.g. "
         "detailed:max-new-tokens=128 or short:greedy")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->group(pr);
  cmd->add_option(
         "--prompts", c.prompts_file,
         "JSON file of more prompts: [{\"name\": N, \"prompt\": TEXT, FLAG: VALUE...}] or {N: {...}}")
      ->check(CLI::ExistingFile)
      ->group(pr);
  cmd->add_option("--org-caption-max-tokens", p.org_caption_max_tokens,
                  "{org_caption} keeps the alt-text's first N tokens")
      ->capture_default_str()
      ->check(int_range(0, 1 << 16))
      ->group(pr);
  add_decoding_options(cmd, c);

  const char* d = "Decoding (lists: candidate i uses element i % length)";
  cmd->add_option("--stop", p.stop, "stop string (repeatable)")->group(d);
  cmd->add_option("--loop-repeats", p.loop_repeats,
                  "cut an n-gram repeated this many times in a row (0, 1: off)")
      ->capture_default_str()
      ->check(int_range(0, 1024))
      ->group(d);
  cmd->add_flag("!--keep-fragments", p.drop_fragment, "keep an unfinished trailing sentence")->group(d);
  cmd->add_option("--seed", p.seed, "mixed with each sample's key")->check(seed_value())->group(d);
  const char* r = "Captioner resources";
  cmd->add_option(
         "--ctx-size", p.ctx_size,
         "KV cells for all sequences in flight: at least the image, the prompt and every candidate's "
         "tokens (0: 1024 per sequence)")
      ->capture_default_str()
      ->check(int_range(0, 1 << 24))
      ->group(r);
  cmd->add_flag("--kv-unified", p.kv_unified,
                "one KV pool shared by all sequences (default: one per sequence)")
      ->group(r);
  cmd->add_option("--parallel", p.parallel,
                  "sequences in flight (at least --candidates; llama.cpp's limit is 256)")
      ->capture_default_str()
      ->check(int_range(1, 256))
      ->group(r);
  cmd->add_option("--batch", p.batch, "prompt tokens per decode")
      ->capture_default_str()
      ->check(int_range(1, 1 << 20))
      ->group(r);
  cmd->add_flag("!--cpu", p.gpu, "stay on the CPU")->group(r);
}

void fill_schedule(CaptionerCli& c) {
  size_t n = std::max({c.temperature.size(), c.top_p.size(), c.min_p.size(), c.top_k.size(), c.min_new.size(),
                       c.max_new.size(), (size_t)1});
  SamplingParams base = c.params.sampling;
  base.greedy = c.greedy;
  if (c.max_new.empty() && c.params.family == "blip") base.max_new_tokens = 30;  // captions, not paragraphs
  c.params.schedule.clear();
  for (size_t i = 0; i < n; ++i) {
    SamplingParams p = base;
    p.temperature = pick(c.temperature, i, p.temperature);
    p.top_p = pick(c.top_p, i, p.top_p);
    p.min_p = pick(c.min_p, i, p.min_p);
    p.top_k = pick(c.top_k, i, p.top_k);
    p.min_new_tokens = pick(c.min_new, i, p.min_new_tokens);
    p.max_new_tokens = pick(c.max_new, i, p.max_new_tokens);
    c.params.schedule.push_back(p);
  }
  c.params.sampling = c.params.schedule[0];
  if (n == 1) c.params.schedule.clear();
}

void build_schedule(CaptionerCli& c) {
  build_prompts(c);
  check_captioner_settings(c);
}

void check_captioner_settings(const CaptionerCli& c) {
  try {
    vlm::check_captioner_params(c.params);  // the Captioner checks the same again before llama.cpp
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what(), "see `capforge describe --help` for each flag's range");
  }
}

bool apply_preset(const std::string& name, CLI::App* cmd, CaptionerCli& c) {
  auto unset = [&](const char* flag) { return cmd->count(flag) == 0; };
  auto& p = c.params;
  if (name == "laion-coco") {
    // LAION-COCO's sampler as the code that ran set it (laion_idle_cap docker/c_h2.py and sampling.py;
    // docs/blip.md lists each value), with an instruction for a chat VLM (BLIP takes none)
    if (unset("--prompt")) p.prompt = "Write a short caption for this image.";
    if (unset("--response-prefix")) p.response_prefix = "a picture of ";
    if (unset("--candidates")) p.candidates = 40;
    if (unset("--parallel")) p.parallel = p.family == "blip" ? 80 : 40;  // BLIP: two images in flight
    if (unset("--top-p")) c.top_p = {0.2427084604681384f};
    if (unset("--top-k")) c.top_k = {9607};
    if (unset("--temperature")) c.temperature = {1.0f};
    if (unset("--min-new-tokens")) c.min_new = {5};
    if (unset("--max-new-tokens")) {  // [20]*8 + [30]*8 + [30]*8 + [45]*8 + [45]*8
      c.max_new.assign(8, 20);
      c.max_new.resize(24, 30);
      c.max_new.resize(40, 45);
    }
    if (unset("--repetition-penalty")) p.sampling.repetition_penalty = 1.3f;
    if (unset("--force-eos")) p.force_eos = 0.17937666742679637f;
    return true;
  }
  if (name == "recap" || name == "recap-v2") {
    if (unset("--prompt"))
      p.prompt = "Please generate a detailed caption of this image. Please be as descriptive as possible.";
    if (unset("--greedy")) c.greedy = true;
    if (unset("--candidates")) p.candidates = 1;
    if (unset("--max-new-tokens")) c.max_new = {128};
    if (name == "recap-v2") add_condition_prompt(c);
    return true;
  }
  return name == "none";
}

}  // namespace capforge::cli
