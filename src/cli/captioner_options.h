// Captioner flags shared by `describe` and `caption`, and the two reference presets.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "capforge/captioner.h"

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

// Fills params.sampling / params.schedule from the flag lists.
void build_schedule(CaptionerCli& c);

// Applies a preset ("laion-coco", "recap") to every flag of `cmd` the user did not give.
// Returns false for an unknown name.
bool apply_preset(const std::string& name, CLI::App* cmd, CaptionerCli& c);

}  // namespace capforge::cli
