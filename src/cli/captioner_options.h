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
};

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

// Fills params.sampling / params.schedule from the flag lists, then check_captioner_settings().
void build_schedule(CaptionerCli& c);
// Throws UsageError for settings that cannot work together (--candidates above --parallel,
// --ctx-size below --parallel, --min-new-tokens above --max-new-tokens); the sizes that need the
// model (image tokens) are checked by the Captioner itself.
void check_captioner_settings(const CaptionerCli& c);

// Applies a preset ("laion-coco", "recap") to every flag of `cmd` the user did not give.
// Returns false for an unknown name.
bool apply_preset(const std::string& name, CLI::App* cmd, CaptionerCli& c);

}  // namespace capforge::cli
