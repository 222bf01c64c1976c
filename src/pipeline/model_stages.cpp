#include "pipeline/model_stages.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>

#include "core/text.h"
#include "models/repair/rules.h"

namespace capforge {

namespace {

// No caption, an empty one or only whitespace: nothing to score (org_clip_score stays null).
bool has_caption(const Sample& s) { return s.caption && word_count(*s.caption) > 0; }

// The first non-empty candidate text; nullopt when there is none.
std::optional<std::string> first_text(const std::vector<Candidate>& candidates) {
  for (auto& c : candidates)
    if (!c.text.empty()) return c.text;
  return std::nullopt;
}

class CaptionStage : public Stage {
 public:
  CaptionStage(std::shared_ptr<const CaptionModel> model, const CaptionerParams& p, size_t batch)
      : captioner_(std::move(model), p), batch_(batch) {
    auto prompts = all_prompts(p);
    for (size_t i = 1; i < prompts.size(); ++i) more_names_.push_back(prompts[i].name);
  }
  std::string name() const override { return "caption"; }
  size_t max_batch() const override { return batch_; }

  void process(std::vector<Sample*>& batch) override {
    std::vector<CaptionRequest> reqs;
    std::vector<Sample*> who;
    for (Sample* s : batch)
      if (s->ok() && !s->pixels.empty()) {
        reqs.push_back({s->key, &s->pixels, s});
        who.push_back(s);
      }
    if (reqs.empty()) return;
    auto results = captioner_.caption(reqs);
    for (size_t i = 0; i < who.size(); ++i) {
      Sample& s = *who[i];
      CaptionResult& r = results[i];
      if (!r.error.empty()) {
        s.fail(Status::failed_to_caption, r.error);
        continue;
      }
      s.candidates = std::move(r.captions);
      s.re_caption = first_text(s.candidates);
      if (!s.re_caption) {
        s.fail(Status::failed_to_caption, "every candidate was empty");
        continue;
      }
      s.more_outputs.clear();
      for (size_t j = 0; j < more_names_.size(); ++j) {
        PromptOutput o;
        o.name = more_names_[j];
        if (j < r.more.size()) o.candidates = std::move(r.more[j]);
        o.re_caption = first_text(o.candidates);
        if (!o.re_caption) s.note(fmt::format("prompt {}: every candidate was empty", o.name));
        s.more_outputs.push_back(std::move(o));
      }
    }
  }

 private:
  Captioner captioner_;
  std::vector<std::string> more_names_;  // prompts 2.., in order
  size_t batch_;
};

class RankStage : public Stage {
 public:
  RankStage(std::vector<RankerSpec> rankers, size_t batch, const std::atomic<bool>* cancel,
            std::vector<bool> rank_prompt, bool embed_images)
      : rankers_(std::move(rankers)),
        batch_(batch),
        cancel_(cancel),
        rank_prompt_(std::move(rank_prompt)),
        embed_images_(embed_images) {
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
    // per sample, per ranked prompt: the candidates still in the running and their current scores
    std::vector<std::vector<Track>> tracks(live.size());
    for (size_t i = 0; i < live.size(); ++i) {
      Sample& s = *live[i];
      for (size_t p = 0; p <= s.more_outputs.size(); ++p) {
        if (!ranked(p)) continue;
        Track t{p, p == 0 ? s.candidates : s.more_outputs[p - 1].candidates, {}, {}};
        for (size_t k = 0; k < t.candidates.size(); ++k)
          if (!t.candidates[k].text.empty()) t.alive.push_back(k);
        tracks[i].push_back(std::move(t));
      }
    }
    for (size_t r = 0; r < rankers_.size(); ++r) {
      // One forward pass per image and one per prompt group of a sample's distinct texts: what a
      // sample gets never depends on which other samples share the batch, so outputs are
      // byte-identical at any --batch-size.
      for (size_t i = 0; i < live.size(); ++i) {
        if (cancel_ && cancel_->load()) return;  // interrupted: the batch is given back whole
        rank_sample(r, *live[i], tracks[i]);
      }
    }
    for (size_t i = 0; i < live.size(); ++i) finish(*live[i], tracks[i]);
  }

 private:
  struct Track {
    size_t prompt;                       // 0: the sample's own candidates; i: more_outputs[i - 1]
    std::vector<Candidate>& candidates;  // that prompt's
    std::vector<size_t> alive;           // indices into candidates, best first once ranked
    std::vector<float> score;            // the current ranker's cosine of each alive one
  };

  bool ranked(size_t prompt) const { return prompt >= rank_prompt_.size() || rank_prompt_[prompt]; }

  // Ranker r on one sample: embeds the image (once, for every prompt) and, in one forward pass
  // per prompt, that prompt's distinct texts (prompt 0's pass also holds the original caption for
  // the first ranker, alone when prompt 0 is not ranked), then ranks each track and keeps the
  // ranker's top `keep`. A prompt's scores thus depend only on the image and its own candidates,
  // never on the other prompts' (a text two prompts share is embedded once for each).
  void rank_sample(size_t r, Sample& s, std::vector<Track>& tracks) {
    ClipContext& ctx = *contexts_[r];
    std::optional<std::vector<float>> image;
    auto image_embedding = [&]() -> const std::vector<float>& {
      if (!image) image = std::move(ctx.embed_images({&s.pixels})[0]);
      return *image;
    };
    // One forward pass for the distinct texts of `group`, in first-occurrence order.
    auto embed = [&](const std::vector<std::string>& group) {
      std::map<std::string, std::vector<float>> out;
      std::vector<std::string> texts;
      for (auto& t : group)
        if (out.emplace(t, std::vector<float>{}).second) texts.push_back(t);
      if (texts.empty()) return out;
      auto te = ctx.embed_texts(texts);
      for (size_t j = 0; j < texts.size(); ++j) out[texts[j]] = std::move(te[j]);
      return out;
    };
    const bool score_org = r == 0 && has_caption(s);
    auto score_org_with = [&](const std::map<std::string, std::vector<float>>& embedded) {
      s.org_clip_score = 100.0 * clip_cosine(image_embedding(), embedded.at(*s.caption));
      s.text_emb = embedded.at(*s.caption);  // the first ranker's, kept for --save-embeddings
    };
    // tracks are in prompt order: prompt 0's, when ranked, is the first
    if (score_org && (tracks.empty() || tracks[0].prompt != 0)) score_org_with(embed({*s.caption}));
    const int keep = rankers_[r].keep;
    for (Track& t : tracks) {
      std::vector<std::string> group;
      for (size_t k : t.alive) group.push_back(t.candidates[k].text);
      const bool with_org = t.prompt == 0 && score_org;
      if (with_org) group.push_back(*s.caption);
      if (group.empty()) continue;
      auto embedded = embed(group);
      if (with_org) score_org_with(embedded);
      std::vector<std::pair<float, size_t>> ranked;
      for (size_t k : t.alive)
        ranked.push_back({clip_cosine(image_embedding(), embedded.at(t.candidates[k].text)), k});
      std::stable_sort(ranked.begin(), ranked.end(), [](auto& a, auto& b) { return a.first > b.first; });
      for (size_t j = 0; j < ranked.size(); ++j)
        if (keep > 0 && (int)j >= keep)
          t.candidates[ranked[j].second].flags.push_back(fmt::format("ranked_out_{}", r + 1));
      if (keep > 0 && (int)ranked.size() > keep) ranked.resize((size_t)keep);
      t.alive.clear();
      t.score.clear();
      for (auto& [sc, k] : ranked) {
        t.alive.push_back(k);
        t.score.push_back(sc);
      }
    }
    if (r == 0 && embed_images_) image_embedding();
    if (r == 0 && image) s.img_emb = std::move(*image);
  }

  // Per track: survivors first, best first, with the last ranker's scores; the others after,
  // unscored. The best survivor becomes the prompt's re_caption / re_clip_score.
  void finish(Sample& s, std::vector<Track>& tracks) {
    s.ranker = label_;
    for (Track& t : tracks) {
      std::vector<Candidate> out;
      std::vector<bool> used(t.candidates.size(), false);
      for (size_t j = 0; j < t.alive.size(); ++j) {
        Candidate c = t.candidates[t.alive[j]];
        c.score = t.score[j];
        out.push_back(std::move(c));
        used[t.alive[j]] = true;
      }
      for (size_t k = 0; k < t.candidates.size(); ++k)
        if (!used[k]) out.push_back(t.candidates[k]);
      t.candidates = std::move(out);
      if (t.alive.empty()) continue;
      auto& caption = t.prompt == 0 ? s.re_caption : s.more_outputs[t.prompt - 1].re_caption;
      auto& score = t.prompt == 0 ? s.re_clip_score : s.more_outputs[t.prompt - 1].re_clip_score;
      caption = t.candidates[0].text;
      score = 100.0 * t.score[0];
    }
  }

  std::vector<RankerSpec> rankers_;
  std::vector<std::unique_ptr<ClipContext>> contexts_;
  std::string label_;
  size_t batch_;
  const std::atomic<bool>* cancel_;
  std::vector<bool> rank_prompt_;  // empty: every prompt
  bool embed_images_;              // the first ranker embeds every image (see make_rank_stage)
};

class RepairStage : public Stage {
 public:
  std::string name() const override { return "repair"; }
  size_t max_batch() const override { return 64; }
  void process(std::vector<Sample*>& batch) override {
    for (Sample* s : batch)
      if (s->ok()) {
        if (s->re_caption) s->re_caption = repair::repair_caption(*s->re_caption);
        for (auto& o : s->more_outputs)
          if (o.re_caption) o.re_caption = repair::repair_caption(*o.re_caption);
      }
  }
};

}  // namespace

std::unique_ptr<Stage> make_caption_stage(std::shared_ptr<const CaptionModel> model,
                                          const CaptionerParams& params, size_t batch) {
  return std::make_unique<CaptionStage>(std::move(model), params, batch);
}

std::unique_ptr<Stage> make_rank_stage(std::vector<RankerSpec> rankers, size_t batch,
                                       const std::atomic<bool>* cancel, std::vector<bool> rank_prompt,
                                       bool embed_images) {
  return std::make_unique<RankStage>(std::move(rankers), batch, cancel, std::move(rank_prompt), embed_images);
}

std::unique_ptr<Stage> make_repair_stage() { return std::make_unique<RepairStage>(); }

}  // namespace capforge
