// The model-repair flags (--repair-model and --repair-*) that `caption`, `tune`, `queue init` and
// `repair` share, their checks, the laion-coco preset's repair defaults, and the fingerprint
// (docs/repair.md).
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "capforge/repair.h"
#include "capforge/sample.h"
#include "pipeline/repair_stage.h"

namespace capforge::cli {

struct RepairCli {
  RepairParams params;  // params.model: --repair-model ("" when not given)
  RepairGuard guard;
  // set by resolve_repair_options: whether the family-specific text flags were given
  bool prompt_given = false, prefix_given = false, template_given = false;
  bool given() const { return !params.model.empty(); }
};

// Registers --repair-model (unless `with_model`: `repair` registers its own, required) and the
// --repair-* flags, in group `group`. `with_clip_guard`: also --repair-max-clip-drop (not for
// `repair`, which has no images).
void add_repair_model_options(CLI::App* cmd, RepairCli& r, const char* group, bool with_model = true,
                              bool with_clip_guard = true);

// After parsing: applies `preset`'s repair defaults to the flags not given (laion-coco with a repair
// model: LAION-COCO's repairer, 2 beams and repetition penalty 2.5), then checks the settings:
// a --repair-* flag without --repair-model, a missing --repair-model file, a --repair-prompt
// without {caption} are UsageErrors (exit 2). Sets params.threads from `threads`.
void resolve_repair_options(RepairCli& r, CLI::App* cmd, const std::string& preset, int threads);

// The repair settings a setting of `tune --grid` may vary checked again (the prompt's {caption}).
void check_repair_settings(const RepairCli& r);

// Loads --repair-model; a file that does not load, or a family flag the model does not take
// (--repair-prompt or --repair-chat-template on a T5, --repair-prefix on a decoder-only model), is a
// UsageError naming it.
std::shared_ptr<const RepairModel> load_repair_model_checked(const RepairCli& r);

// Everything in the repair settings that changes outputs (not the resources: --repair-parallel,
// threads), as recorded in a run's fingerprint under "repair_model".
Json repair_fingerprint(const RepairCli& r);

}  // namespace capforge::cli
