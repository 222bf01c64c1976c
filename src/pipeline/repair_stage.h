// Model-based caption repair as a pipeline stage (--repair-model, docs/repair.md), with the guard
// against meaning drift that `caption`, `tune` and `capforge repair` share.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "capforge/pipeline.h"
#include "capforge/repair.h"
#include "pipeline/model_stages.h"

namespace capforge {

// The drift guard's edit measure, over word tokens: maximal runs of characters that are neither
// ASCII whitespace nor ASCII punctuation, and each ASCII punctuation character as a token of its
// own ("a dog,running." -> a | dog | , | running | .). Tokens compare exactly (case-sensitive:
// "dog" -> "Dog" is a changed token); other bytes (UTF-8 letters, non-ASCII punctuation) are word
// characters.
std::vector<std::string_view> edit_tokens(std::string_view text);
// Token-level Levenshtein distance between a and b (insert, delete, substitute: cost 1 each).
size_t token_edit_distance(std::string_view a, std::string_view b);
// 1 - token_edit_distance / max(token counts): 1 for the same tokens (two empty texts included),
// 0 when every token changed. The fraction of changed tokens is 1 - similarity.
double token_edit_similarity(std::string_view a, std::string_view b);

// Repair statuses, as written to the repair_status columns.
inline constexpr const char* kRepaired = "repaired";             // kept; the text changed
inline constexpr const char* kUnchanged = "unchanged";           // the model returned the same text
inline constexpr const char* kRejectedDrift = "rejected_drift";  // a guard fired; unrepaired kept
inline constexpr const char* kRepairFailed = "repair_failed";    // the engine's error; unrepaired kept
inline constexpr const char* kSkipped = "skipped";               // a blank caption: nothing to repair

struct RepairGuard {
  // The largest fraction of word tokens a repair may change (1 - token_edit_similarity). 0.5: a
  // grammar and punctuation fix of a caption changes a few tokens (articles, a period, a
  // capital), well under half of them, while a rewrite to other words changes most of them.
  double max_change = 0.5;
  // The largest drop of the CLIP score (cosine x 100, the re_clip_score unit) from the unrepaired to
  // the repaired caption, under the first ranker; checked when the sample's image was embedded.
  double max_clip_drop = 2.0;
};

// What repair made of one caption, the edit guard applied (not the CLIP guard): status is
// kRepaired (a changed text within guard.max_change: a candidate for the CLIP guard), kUnchanged,
// kRejectedDrift or kRepairFailed; `note` says why for the last two ("edit guard: 0.600 of word
// tokens changed > --repair-max-change 0.5", the engine's error, "the model returned an empty
// caption"). A blank caption (no word tokens) is kSkipped with the note "empty caption: not
// repaired", whatever the engine returned. A caption the engine cut to fit the model's context
// (RepairOutput::truncated) keeps its status and gets the note "caption cut to fit the repair
// model's context" (with any other note after it).
struct RepairVerdict {
  std::string status, note;
};
RepairVerdict judge_repair(const std::string& before, const RepairOutput& out, const RepairGuard& guard);

// Repairs every ok sample's re_caption and each PromptOutput's re_caption, the captions of the whole
// batch in one Repairer::repair call (one Repairer per stage; a caption's output does not depend on
// the batch). Each repaired caption records its text before repair (re_caption_unrepaired) and a
// repair_status; a rejected or failed repair keeps the unrepaired text, with a note on the sample
// ("repair[ of prompt NAME]: rejected_drift (GUARD ...)"). With rankers, the CLIP guard compares
// the first ranker's scores of both texts against the sample's img_emb, in one text pass per sample;
// a kept repair of a ranked caption (re_clip_score set) is re-scored with the last ranker (its image
// embedded again when the last is another model), so re_clip_score is the score of re_caption.
// Candidates keep their texts and scores. Once `params.cancel` is set it leaves the batch untouched.
// Throws std::invalid_argument for repair settings that cannot work (from Repairer).
std::unique_ptr<Stage> make_model_repair_stage(std::shared_ptr<const RepairModel> model,
                                               const RepairParams& params, const RepairGuard& guard,
                                               std::vector<RankerSpec> rankers, size_t batch);

}  // namespace capforge
