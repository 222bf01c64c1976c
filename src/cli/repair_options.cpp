#include "cli/repair_options.h"

#include <fmt/format.h>

#include <filesystem>

#include "cli/common.h"

namespace fs = std::filesystem;

namespace capforge::cli {

namespace {
// Every --repair-* flag that needs --repair-model (the ones registered on a command).
const char* kRepairFlags[] = {"--repair-prefix",
                              "--repair-prompt",
                              "--repair-chat-template",
                              "--repair-beams",
                              "--repair-length-penalty",
                              "--repair-early-stopping",
                              "--repair-repetition-penalty",
                              "--repair-max-tokens-ratio",
                              "--repair-max-tokens-extra",
                              "--repair-max-change",
                              "--repair-max-clip-drop",
                              "--repair-parallel",
                              "--repair-kv-type",
                              "--repair-engine",
                              "--repair-dtype"};

bool given(CLI::App* cmd, const char* flag) {
  const CLI::Option* o = cmd->get_option_no_throw(flag);
  return o && o->count() > 0;
}
}  // namespace

void add_repair_model_options(CLI::App* cmd, RepairCli& r, const char* g, bool with_model,
                              bool with_clip_guard) {
  auto& p = r.params;
  if (with_model)
    cmd->add_option(
           "--repair-model", p.model,
           "repair each final caption with this GGUF (a T5 / Flan-T5 or a decoder-only instruct model) "
           "instead of the rules (docs/repair.md)")
        ->group(g);
  cmd->add_option("--repair-prefix", p.prefix, "T5: text put before the caption, e.g. 'fix grammar: '")
      ->group(g);
  cmd->add_option("--repair-prompt", p.prompt,
                  "decoder-only: the user message, with {caption} where the caption goes (as plain text)")
      ->group(g);
  cmd->add_option("--repair-chat-template", p.chat_template,
                  "decoder-only: chat template (name or template) instead of the model's")
      ->group(g);
  cmd->add_option("--repair-beams", p.beams, "1: greedy; N > 1: beam search with N beams (laion-coco: 2)")
      ->capture_default_str()
      ->check(int_range(1, 64))
      ->group(g);
  cmd->add_option("--repair-length-penalty", p.length_penalty,
                  "beam score = sum of log-probs / length^P (Hugging Face's length_penalty)")
      ->capture_default_str()
      ->check(number_range(-100, 100))
      ->group(g);
  cmd->add_option("--repair-early-stopping", p.early_stopping,
                  "beam search ends: true (N finished), false (heuristic) or never (Hugging Face's)")
      ->capture_default_str()
      ->check(CLI::IsMember({"true", "false", "never"}))
      ->group(g);
  cmd->add_option("--repair-repetition-penalty", p.repetition_penalty,
                  "Hugging Face's repetition penalty over the decoder's ids (1: off; laion-coco: 2.5)")
      ->capture_default_str()
      ->check(number_range(0, 100, /*lo_open=*/true))
      ->group(g);
  cmd->add_option("--repair-max-tokens-ratio", p.max_tokens_ratio,
                  "new tokens at most: ratio x the caption's tokens + --repair-max-tokens-extra")
      ->capture_default_str()
      ->check(number_range(0, 64, /*lo_open=*/true))
      ->group(g);
  cmd->add_option("--repair-max-tokens-extra", p.max_tokens_extra, "see --repair-max-tokens-ratio")
      ->capture_default_str()
      ->check(int_range(0, 4096))
      ->group(g);
  cmd->add_option("--repair-max-change", r.guard.max_change,
                  "drift guard: the largest fraction of word tokens a repair may change (0..1)")
      ->capture_default_str()
      ->check(number_range(0, 1))
      ->group(g);
  if (with_clip_guard)
    cmd->add_option("--repair-max-clip-drop", r.guard.max_clip_drop,
                    "drift guard with a ranker: the largest drop of the CLIP score (cosine x 100) a repair "
                    "may cause (-200..200)")
        ->capture_default_str()
        ->check(number_range(-200, 200))
        ->group(g);
  cmd->add_option("--repair-parallel", p.parallel,
                  fmt::format("repair sequences in flight (captions x beams); 0: the engine's default ({} on "
                              "capforge's ggml T5 engine, {} on libllama)",
                              RepairParams::kParallelGgml, RepairParams::kParallelLlama))
      ->capture_default_str()
      ->check(int_range(0, 4096))
      ->group(g);
  cmd->add_option("--repair-kv-type", p.kv_type, "repair model's KV cache: f16 (llama.cpp's default) or f32")
      ->capture_default_str()
      ->check(CLI::IsMember({"f16", "f32"}))
      ->group(g);
  cmd->add_option(
         "--repair-engine", p.engine,
         "repair model engine: auto (capforge's ggml engine for a T5, libllama otherwise), llama, or "
         "ggml (T5 only; CPU, f32 caches)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "llama", "ggml"}))
      ->group(g);
  cmd->add_option("--repair-dtype", p.weights,
                  "ggml T5 engine's matrices: stored (as in the GGUF), bf16 (converted at load; about 2x "
                  "faster than f16 on CPUs with AVX512-BF16) or int8 (per-channel int8 with each input row "
                  "quantised to 8 bits, on AVX512-VNNI; changes some outputs: check with capforge eval)")
      ->capture_default_str()
      ->check(CLI::IsMember({"stored", "bf16", "int8"}))
      ->group(g);
}

void check_repair_settings(const RepairCli& r) {
  if (r.params.prompt.find("{caption}") == std::string::npos)
    throw UsageError("--repair-prompt has no {caption}: the caption would not reach the model",
                     "e.g. --repair-prompt 'Fix the grammar of this caption: {caption}'");
  if (r.params.parallel > 0 && r.params.parallel < r.params.beams)
    throw UsageError(
        fmt::format("--repair-parallel {} is below --repair-beams {}: one caption's beams must fit",
                    r.params.parallel, r.params.beams));
}

void resolve_repair_options(RepairCli& r, CLI::App* cmd, const std::string& preset, int threads) {
  if (!r.given()) {
    for (const char* f : kRepairFlags)
      if (given(cmd, f))
        throw UsageError(fmt::format("{} needs --repair-model", f), "pass --repair-model FILE.gguf");
    return;
  }
  if (preset == "laion-coco") {  // LAION-COCO's repairer (SimpleT5): num_beams=2, repetition_penalty=2.5
    if (!given(cmd, "--repair-beams")) r.params.beams = 2;
    if (!given(cmd, "--repair-repetition-penalty")) r.params.repetition_penalty = 2.5f;
  }
  std::error_code ec;
  if (!fs::is_regular_file(r.params.model, ec))
    throw UsageError(fmt::format("--repair-model {}: {}", r.params.model,
                                 fs::exists(r.params.model, ec) ? "not a regular file" : "no such file"),
                     "--repair-model takes a GGUF file: a T5 / Flan-T5 or a decoder-only model");
  r.prompt_given = given(cmd, "--repair-prompt");
  r.prefix_given = given(cmd, "--repair-prefix");
  r.template_given = given(cmd, "--repair-chat-template");
  check_repair_settings(r);
  r.params.threads = threads;
}

std::shared_ptr<const RepairModel> load_repair_model_checked(const RepairCli& r) {
  std::shared_ptr<const RepairModel> m;
  try {
    m = load_repair_model(r.params);
  } catch (const std::exception& e) {
    throw UsageError(fmt::format("cannot load --repair-model {}: {}", r.params.model, e.what()),
                     "--repair-model takes a GGUF file: a T5 / Flan-T5 or a decoder-only model");
  }
  if (m->family() == "t5" && (r.prompt_given || r.template_given))
    throw UsageError(
        fmt::format("{} is for decoder-only repair models; {} is a T5",
                    r.prompt_given ? "--repair-prompt" : "--repair-chat-template", r.params.model),
        "a T5 takes the caption itself, after --repair-prefix");
  if (m->family() != "t5" && r.prefix_given)
    throw UsageError("--repair-prefix is for T5 repair models; " + r.params.model + " is decoder-only",
                     "a decoder-only model takes --repair-prompt with {caption}");
  return m;
}

Json repair_fingerprint(const RepairCli& r) {
  const RepairParams& p = r.params;
  Json j{{"model", p.model},
         {"prefix", p.prefix},
         {"prompt", p.prompt},
         {"template", p.chat_template},
         {"beams", p.beams},
         {"length_penalty", p.length_penalty},
         {"early_stopping", p.early_stopping},
         {"rep", p.repetition_penalty},
         {"max_tokens_ratio", p.max_tokens_ratio},
         {"max_tokens_extra", p.max_tokens_extra},
         {"kv_type", p.kv_type},
         {"engine", p.engine},
         {"max_change", r.guard.max_change},
         {"max_clip_drop", r.guard.max_clip_drop}};
  if (p.weights != "stored") j["weights"] = p.weights;  // absent by default: older runs still resume
  return j;
}

}  // namespace capforge::cli
