// Captioner flags shared by `describe` and `caption`, and the two reference presets.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "capforge/captioner.h"
#include "capforge/sample.h"

namespace capforge::cli {

// Sampling flags take comma-separated lists; candidate i uses element i % size (LAION-COCO varied
// top_p, min and max length across its candidates).
struct CaptionerCli {
  CaptionerParams params;
  std::vector<float> temperature, top_p, min_p;
  std::vector<int> top_k, min_new, max_new;
  bool greedy = false;
  // Several prompts: --prompt TEXT or NAME=TEXT (repeatable; the first fills params.prompt), their
  // options `--prompt-opt NAME:FLAG[=VALUE]` (what `--FLAG@NAME [VALUE]` becomes), and a prompts
  // file (JSON) adding more.
  std::vector<std::string> prompts, prompt_opts;
  std::string prompts_file;
  // added by a preset: prompts after the user's, options before the user's (which win)
  std::vector<std::string> preset_prompts, preset_prompt_opts;
};

// Rewrites `--FLAG@NAME VALUE` / `--FLAG@NAME=VALUE` (and `--greedy@NAME`) into
// `--prompt-opt NAME:FLAG=VALUE` before CLI11 parses the command line.
std::vector<std::string> rewrite_prompt_flags(int argc, char** argv);

// Registers --model/--mmproj (required if `model_required`), prompt, decoding and resource flags.
void add_captioner_options(CLI::App* cmd, CaptionerCli& c, bool model_required);

// The bundled demo models' directory: $CAPFORGE_DEMO_MODELS, else models/demo in the source tree.
std::string demo_models_dir();
// `--model demo`: points model (and mmproj, unless given) at the demo captioner. Returns whether it
// did; throws UsageError when the demo models are missing.
bool resolve_demo_model(CaptionerParams& p);

// What --model takes for params.family, for usage errors.
std::string captioner_model_hint(const CaptionerParams& p);

// Sets option `flag` (long name without dashes, e.g. "top-p") of `cmd` to `values` as if given on
// the command line, once per value (comma lists split as there). Throws UsageError for an unknown
// flag or a bad value.
void apply_flag(CLI::App* cmd, const std::string& flag, const std::vector<std::string>& values);

// `--preset-file FILE` (written by `capforge tune`): {"preset": base preset, "flags": {flag: value}}.
// Flags given on the command line win over the file's, and the file's over its base preset; the
// base preset applies when --preset was not given.
void apply_preset_file(const std::string& path, CLI::App* cmd, std::string& preset);

// Fills params.sampling / params.schedule from the flag lists, and every prompt (--prompt,
// --prompts, each with the flags plus its own --prompt-opt), then check_captioner_settings().
void build_schedule(CaptionerCli& c);
// Registers the flags a prompt may also set for itself (--response-prefix, --candidates, --greedy,
// the sampling lists, penalties, --harvest-eos, --force-eos).
void add_decoding_options(CLI::App* cmd, CaptionerCli& c);
// params.sampling / params.schedule from c's flag lists (one prompt's decoding settings).
void fill_schedule(CaptionerCli& c);
// Every prompt from c.prompts, the prompts file and c.params.prompt: the first into c.params'
// own fields, the others into c.params.more_prompts; each starts from c's flags and applies its
// --prompt-opt ones. Throws UsageError naming the prompt or option at fault.
void build_prompts(CaptionerCli& c);
// recap-v2: Recap-DataComp-1B's second caption, `condition`, written with the alt-text in the
// prompt and top-k sampling (our prompt and k: the card does not give them; docs/prompts.md).
// A prompt the user already named `condition` is kept.
void add_condition_prompt(CaptionerCli& c);

// Throws UsageError for settings that cannot work together (--candidates above --parallel,
// --ctx-size below --parallel, --min-new-tokens above --max-new-tokens); the sizes that need the
// model (image tokens) are checked by the Captioner itself.
void check_captioner_settings(const CaptionerCli& c);

// Applies a preset ("laion-coco", "recap", "recap-v2") to every flag of `cmd` the user did not give.
// Returns false for an unknown name.
bool apply_preset(const std::string& name, CLI::App* cmd, CaptionerCli& c);

}  // namespace capforge::cli
