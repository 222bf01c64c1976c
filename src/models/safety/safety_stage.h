// The safety stage of `capforge caption` / `embed-shards`: runs after the rank stage on the first
// ranker's image embedding (Sample::img_emb) and fills Sample::punsafe (NSFW head) and
// Sample::unsafe_concept / unsafe_margin (zero-shot concepts). A sample without an image
// embedding (failed, or not ranked), or with a non-finite one (NaN or infinity), gets neither.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "capforge/clip.h"
#include "capforge/pipeline.h"
#include "models/safety/concepts.h"
#include "models/safety/nsfw_head.h"

namespace capforge {

// Embeds the concepts' prompts with `model`'s text tower (L2-normalised).
ConceptSafety embed_concepts(std::vector<Concept> concepts, std::shared_ptr<const ClipModel> model);

// Either may be null (then that part does not run).
std::unique_ptr<Stage> make_safety_stage(std::shared_ptr<const NsfwHead> head,
                                         std::shared_ptr<const ConceptSafety> concepts);

}  // namespace capforge
