#include "pipeline/model_stages.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "core/text.h"
#include "models/repair/rules.h"

namespace capforge {

namespace {

// No caption, an empty one or only whitespace: nothing to score (org_clip_score stays null).
bool has_caption(const Sample& s) { return s.caption && word_count(*s.caption) > 0; }

class CaptionStage : public Stage {
 public:
  CaptionStage(std::shared_ptr<const CaptionModel> model, const CaptionerParams& p, size_t batch)
      : captioner_(std::move(model), p), batch_(batch) {}
  std::string name() const override { return "caption"; }
  size_t max_batch() const override { return batch_; }

  void process(std::vector<Sample*>& batch) override {
    std::vector<CaptionRequest> reqs;
    std::vector<Sample*> who;
    for (Sample* s : batch)
      if (s->ok() && !s->pixels.empty()) {
        reqs.push_back({s->key, &s->pixels});
        who.push_back(s);
      }
    if (reqs.empty()) return;
    auto results = captioner_.caption(reqs);
    for (size_t i = 0; i < who.size(); ++i) {
      Sample& s = *who[i];
      if (!results[i].error.empty()) {
        s.fail(Status::failed_to_caption, results[i].error);
        continue;
      }
      s.candidates = std::move(results[i].captions);
      for (auto& c : s.candidates)
        if (!c.text.empty()) {
          s.re_caption = c.text;
          break;
        }
      if (!s.re_caption) s.fail(Status::failed_to_caption, "every candidate was empty");
    }
  }

 private:
  Captioner captioner_;
  size_t batch_;
};

class RankStage : public Stage {
 public:
  RankStage(std::vector<RankerSpec> rankers, size_t batch, const std::atomic<bool>* cancel)
      : rankers_(std::move(rankers)), batch_(batch), cancel_(cancel) {
    for (auto& r : rankers_) contexts_.push_back(std::make_unique<ClipContext>(r.model));
    for (auto& r : rankers_) label_ += (label_.empty() ? "" : ">") + r.name;
  }
  std::string name() const override { return "rank"; }
  size_t max_batch() const override { return batch_; }

  void process(std::vector<Sample*>& batch) override {
    std::vector<Sample*> live;
    for (Sample* s : batch)
      if (s->ok() && !s->pixels.empty()) live.push_back(s);
    if (live.empty()) return;
    // per sample: indices of the candidates still in the running, and their current scores
    std::vector<std::vector<size_t>> alive(live.size());
    for (size_t i = 0; i < live.size(); ++i)
      for (size_t k = 0; k < live[i]->candidates.size(); ++k)
        if (!live[i]->candidates[k].text.empty()) alive[i].push_back(k);
    std::vector<std::vector<float>> score(live.size());
    for (size_t r = 0; r < rankers_.size(); ++r) {
      ClipContext& ctx = *contexts_[r];
      // One forward pass per image and one per sample's distinct texts: what a sample gets never
      // depends on which other samples share the batch, so outputs are byte-identical at any
      // --batch-size.
      for (size_t i = 0; i < live.size(); ++i) {
        if (cancel_ && cancel_->load()) return;  // interrupted: the batch is given back whole
        Sample& s = *live[i];
        auto ie = ctx.embed_images({&s.pixels});
        std::map<std::string, size_t> text_index;  // each distinct text once
        std::vector<std::string> texts;
        auto add = [&](const std::string& t) {
          auto [it, fresh] = text_index.emplace(t, texts.size());
          if (fresh) texts.push_back(t);
        };
        for (size_t k : alive[i]) add(s.candidates[k].text);
        const bool score_org = r == 0 && has_caption(s);
        if (score_org) add(*s.caption);
        if (texts.empty()) continue;
        auto te = ctx.embed_texts(texts);
        if (score_org) s.org_clip_score = 100.0 * clip_cosine(ie[0], te[text_index[*s.caption]]);
        std::vector<std::pair<float, size_t>> ranked;
        for (size_t k : alive[i])
          ranked.push_back({clip_cosine(ie[0], te[text_index[s.candidates[k].text]]), k});
        std::stable_sort(ranked.begin(), ranked.end(), [](auto& a, auto& b) { return a.first > b.first; });
        int keep = rankers_[r].keep;
        for (size_t j = 0; j < ranked.size(); ++j)
          if (keep > 0 && (int)j >= keep)
            s.candidates[ranked[j].second].flags.push_back(fmt::format("ranked_out_{}", r + 1));
        if (keep > 0 && (int)ranked.size() > keep) ranked.resize((size_t)keep);
        alive[i].clear();
        score[i].clear();
        for (auto& [sc, k] : ranked) {
          alive[i].push_back(k);
          score[i].push_back(sc);
        }
      }
    }
    for (size_t i = 0; i < live.size(); ++i) finish(*live[i], alive[i], score[i]);
  }

 private:
  // Survivors first, best first, with the last ranker's scores; the others after, unscored.
  void finish(Sample& s, const std::vector<size_t>& alive, const std::vector<float>& scores) {
    std::vector<Candidate> out;
    std::vector<bool> used(s.candidates.size(), false);
    for (size_t j = 0; j < alive.size(); ++j) {
      Candidate c = s.candidates[alive[j]];
      c.score = scores[j];
      out.push_back(std::move(c));
      used[alive[j]] = true;
    }
    for (size_t k = 0; k < s.candidates.size(); ++k)
      if (!used[k]) out.push_back(s.candidates[k]);
    s.candidates = std::move(out);
    s.ranker = label_;
    if (!alive.empty()) {
      s.re_caption = s.candidates[0].text;
      s.re_clip_score = 100.0 * scores[0];
    }
  }

  std::vector<RankerSpec> rankers_;
  std::vector<std::unique_ptr<ClipContext>> contexts_;
  std::string label_;
  size_t batch_;
  const std::atomic<bool>* cancel_;
};

class RepairStage : public Stage {
 public:
  std::string name() const override { return "repair"; }
  size_t max_batch() const override { return 64; }
  void process(std::vector<Sample*>& batch) override {
    for (Sample* s : batch)
      if (s->ok() && s->re_caption) s->re_caption = repair::repair_caption(*s->re_caption);
  }
};

}  // namespace

std::unique_ptr<Stage> make_caption_stage(std::shared_ptr<const CaptionModel> model,
                                          const CaptionerParams& params, size_t batch) {
  return std::make_unique<CaptionStage>(std::move(model), params, batch);
}

std::unique_ptr<Stage> make_rank_stage(std::vector<RankerSpec> rankers, size_t batch,
                                       const std::atomic<bool>* cancel) {
  return std::make_unique<RankStage>(std::move(rankers), batch, cancel);
}

std::unique_ptr<Stage> make_repair_stage() { return std::make_unique<RepairStage>(); }

}  // namespace capforge
