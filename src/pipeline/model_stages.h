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

// Fills Sample::candidates (and re_caption with the first one) for every decoded sample.
std::unique_ptr<Stage> make_caption_stage(std::shared_ptr<const CaptionModel> model,
                                          const CaptionerParams& params, size_t batch);

struct RankerSpec {
  std::string name;  // as given on the command line (for the `ranker` column)
  std::shared_ptr<const ClipModel> model;
  int keep = 0;  // candidates kept for the next ranker (0: all)
};

// CLIP cascade: ranker i scores the candidates ranker i-1 kept and keeps its top `keep`. The last
// ranker's scores are reported; its best candidate becomes re_caption. The first ranker also
// scores the original caption (org_clip_score). Scores are cosine x 100 in re/org_clip_score and
// plain cosine in the candidates. Each image is encoded once per ranker and each distinct text of
// a sample once, in forward passes of that sample alone, so results do not depend on batching.
// Once `cancel` is set it stops between samples, leaving the rest of the batch unranked (the
// pipeline then gives their shards back).
std::unique_ptr<Stage> make_rank_stage(std::vector<RankerSpec> rankers, size_t batch,
                                       const std::atomic<bool>* cancel = nullptr);

// Rule-based repair of re_caption.
std::unique_ptr<Stage> make_repair_stage();

}  // namespace capforge
