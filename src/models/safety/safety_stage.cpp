#include "models/safety/safety_stage.h"

#include <algorithm>
#include <cmath>

namespace capforge {

ConceptSafety embed_concepts(std::vector<Concept> concepts, std::shared_ptr<const ClipModel> model) {
  ClipContext ctx(std::move(model));
  std::vector<std::string> prompts;
  for (auto& c : concepts) prompts.push_back(c.prompt);
  auto embeddings = ctx.embed_texts(prompts);
  return ConceptSafety(std::move(concepts), std::move(embeddings));
}

namespace {

class SafetyStage : public Stage {
 public:
  SafetyStage(std::shared_ptr<const NsfwHead> head, std::shared_ptr<const ConceptSafety> concepts)
      : head_(std::move(head)), concepts_(std::move(concepts)) {}
  std::string name() const override { return "safety"; }
  size_t max_batch() const override { return 64; }
  void process(std::vector<Sample*>& batch) override {
    for (Sample* s : batch) {
      // not finite (NaN or infinity): unscored, not a NaN margin read as a verdict
      if (s->img_emb.empty() ||
          !std::all_of(s->img_emb.begin(), s->img_emb.end(), [](float v) { return std::isfinite(v); }))
        continue;
      if (head_ && (int)s->img_emb.size() == head_->input_dim()) s->punsafe = head_->predict(s->img_emb);
      if (concepts_) {
        auto v = concepts_->judge(s->img_emb);
        s->unsafe_margin = v.margin;
        s->unsafe_concept = v.concept_;
      }
    }
  }

 private:
  std::shared_ptr<const NsfwHead> head_;
  std::shared_ptr<const ConceptSafety> concepts_;
};

}  // namespace

std::unique_ptr<Stage> make_safety_stage(std::shared_ptr<const NsfwHead> head,
                                         std::shared_ptr<const ConceptSafety> concepts) {
  return std::make_unique<SafetyStage>(std::move(head), std::move(concepts));
}

}  // namespace capforge
