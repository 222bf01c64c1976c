// The model stages of `capforge caption`: caption (VLM, N candidates), rank (CLIP cascade),
// repair (rules). Each batches across samples and never throws for a single sample's problem.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "capforge/captioner.h"
#include "capforge/clip.h"
#include "capforge/pipeline.h"

namespace capforge {

// Fills Sample::candidates (and re_caption with the first non-empty one) for every decoded
// sample, and for a multi-prompt `params` one Sample::more_outputs entry per prompt after the
// first (all_prompts(params)[1..], same order, named after the prompt; re_caption likewise the
// first non-empty candidate, or null with a note when every candidate was empty). The sample is
// passed to the captioner for the prompts' placeholders. A sample whose first prompt gave only
// empty candidates fails (failed_to_caption) and, like any failed sample, gets no more_outputs.
std::unique_ptr<Stage> make_caption_stage(std::shared_ptr<const CaptionModel> model,
                                          const CaptionerParams& params, size_t batch);

struct RankerSpec {
  std::string name;  // as given on the command line (for the `ranker` column)
  std::shared_ptr<const ClipModel> model;
  int keep = 0;  // candidates kept for the next ranker (0: all)
};

// CLIP cascade, run on every ranked prompt's candidates separately: ranker i scores the
// candidates ranker i-1 kept of that prompt and keeps its top `keep` (the others get the flag
// ranked_out_{i+1}). The last ranker's scores are reported: its survivors come first, best
// first, with their scores, then the others in their previous order, unscored; the best one
// becomes the prompt's re_caption and its score re_clip_score (prompt 0: the Sample's own
// fields; prompt i: Sample::more_outputs[i - 1]). The first ranker also scores the original
// caption (org_clip_score). Scores are cosine x 100 in re/org_clip_score and plain cosine in the
// candidates. Each image is encoded once per ranker per sample (shared by all prompts) and each
// distinct text of a prompt once per ranker, in one forward pass per prompt of that sample alone
// (prompt 0's also holds the original caption). So results do not depend on batching, a prompt's
// scores do not depend on the other prompts' candidates, and prompt 0's are those of a
// single-prompt run. rank_prompt[i] says whether prompt i is ranked (empty: all; an index past
// its end: ranked); an unranked prompt keeps the captioner's order and no scores. Once `cancel` is
// set it stops between samples, leaving the rest of the batch unranked (the pipeline then gives
// their shards back).
// The first ranker's image embedding and original-caption embedding are kept on the sample
// (Sample::img_emb / text_emb) whenever it computes them; with `embed_images` it embeds every
// ranked sample's image even when there is no text to score (--save-embeddings, safety).
std::unique_ptr<Stage> make_rank_stage(std::vector<RankerSpec> rankers, size_t batch,
                                       const std::atomic<bool>* cancel = nullptr,
                                       std::vector<bool> rank_prompt = {}, bool embed_images = false);

// Rule-based repair of re_caption and of every PromptOutput::re_caption.
std::unique_ptr<Stage> make_repair_stage();

}  // namespace capforge
