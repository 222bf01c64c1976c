#include "pipeline/repair_stage.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>

#include "capforge/clip.h"

namespace capforge {

namespace {
bool is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
bool is_punct(unsigned char c) {
  return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') || (c >= '{' && c <= '~');
}
}  // namespace

std::vector<std::string_view> edit_tokens(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = (unsigned char)text[i];
    if (is_space(c)) {
      ++i;
    } else if (is_punct(c)) {
      out.push_back(text.substr(i, 1));
      ++i;
    } else {
      size_t j = i;
      while (j < text.size() && !is_space((unsigned char)text[j]) && !is_punct((unsigned char)text[j])) ++j;
      out.push_back(text.substr(i, j - i));
      i = j;
    }
  }
  return out;
}

size_t token_edit_distance(std::string_view a, std::string_view b) {
  auto x = edit_tokens(a), y = edit_tokens(b);
  if (x.size() < y.size()) std::swap(x, y);  // y: the shorter, one DP row of it
  std::vector<size_t> row(y.size() + 1);
  for (size_t j = 0; j <= y.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= x.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= y.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (x[i - 1] == y[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[y.size()];
}

double token_edit_similarity(std::string_view a, std::string_view b) {
  size_t n = std::max(edit_tokens(a).size(), edit_tokens(b).size());
  return n == 0 ? 1.0 : 1.0 - (double)token_edit_distance(a, b) / (double)n;
}

namespace {
// judge_repair without the blank-caption and truncation rules.
RepairVerdict judge_edit(const std::string& before, const RepairOutput& out, const RepairGuard& guard) {
  if (!out.error.empty()) return {kRepairFailed, out.error};
  if (out.text == before) return {kUnchanged, ""};
  if (edit_tokens(out.text).empty()) return {kRepairFailed, "the model returned an empty caption"};
  // The distance is at least the difference of the token counts: a long caption against a short
  // output is refused without the quadratic table.
  size_t n = edit_tokens(before).size(), m = edit_tokens(out.text).size();
  double changed = (double)(std::max(n, m) - std::min(n, m)) / (double)std::max(n, m);
  if (changed <= guard.max_change) changed = 1.0 - token_edit_similarity(before, out.text);
  if (changed > guard.max_change)
    return {kRejectedDrift, fmt::format("edit guard: {:.3f} of word tokens changed > --repair-max-change {}",
                                        changed, guard.max_change)};
  return {kRepaired, ""};
}
}  // namespace

RepairVerdict judge_repair(const std::string& before, const RepairOutput& out, const RepairGuard& guard) {
  if (edit_tokens(before).empty()) return {kSkipped, "empty caption: not repaired"};
  RepairVerdict v = judge_edit(before, out, guard);
  if (out.truncated && v.status != kRepairFailed)
    v.note = "caption cut to fit the repair model's context" + (v.note.empty() ? "" : "; " + v.note);
  return v;
}

namespace {

class ModelRepairStage : public Stage {
 public:
  ModelRepairStage(std::shared_ptr<const RepairModel> model, const RepairParams& params,
                   const RepairGuard& guard, std::vector<RankerSpec> rankers, size_t batch)
      : repairer_(std::move(model), params), cancel_(params.cancel), guard_(guard), batch_(batch) {
    if (!rankers.empty()) {
      first_ = std::make_unique<ClipContext>(rankers.front().model);
      if (rankers.size() > 1 && rankers.back().model != rankers.front().model)
        last_ = std::make_unique<ClipContext>(rankers.back().model);
    }
  }
  std::string name() const override { return "repair"; }
  size_t max_batch() const override { return batch_; }

  void process(std::vector<Sample*>& batch) override {
    std::vector<Item> items;
    for (Sample* s : batch) {
      if (!s->ok()) continue;
      if (s->re_caption)
        items.push_back(
            {s, "", &s->re_caption, &s->re_clip_score, &s->re_caption_unrepaired, &s->repair_status, {}});
      for (auto& o : s->more_outputs)
        if (o.re_caption)
          items.push_back(
              {s, o.name, &o.re_caption, &o.re_clip_score, &o.re_caption_unrepaired, &o.repair_status, {}});
    }
    if (items.empty()) return;
    std::vector<std::string> captions;
    for (auto& it : items) captions.push_back(**it.caption);
    std::vector<RepairOutput> outs;
    try {
      outs = repairer_.repair(captions);
    } catch (const std::exception& e) {  // the engine broke: every caption keeps its text, flagged
      outs.assign(captions.size(), RepairOutput{});
      for (auto& o : outs) o.error = e.what();
    }
    if (cancel_ && cancel_->load()) return;  // interrupted: the pipeline gives the batch back
    outs.resize(captions.size());
    std::map<Sample*, std::vector<size_t>> pending;  // per sample: items awaiting the CLIP guard
    std::vector<Sample*> order;                      // samples in batch order
    for (size_t i = 0; i < items.size(); ++i) {
      Item& it = items[i];
      *it.unrepaired = captions[i];
      RepairVerdict v = judge_repair(captions[i], outs[i], guard_);
      *it.status = v.status;
      it.repaired = std::move(outs[i].text);
      if (!v.note.empty()) note(it, v.status + " (" + v.note + ")");
      if (v.status != kRepaired) continue;
      if (first_ && !it.s->img_emb.empty()) {
        if (pending.find(it.s) == pending.end()) order.push_back(it.s);
        pending[it.s].push_back(i);
      } else {
        keep(it);
      }
    }
    for (Sample* s : order) clip_guard(*s, items, pending[s]);
    for (Sample* s : order) rescore_with_last(*s, items, pending[s]);
  }

 private:
  struct Item {
    Sample* s;
    std::string prompt;  // "" for prompt 0
    std::optional<std::string>* caption;
    std::optional<double>* score;
    std::optional<std::string>* unrepaired;
    std::string* status;
    std::string repaired;  // the model's text
    bool rescore = false;  // kept and ranked: the last ranker scores it
  };

  void note(Item& it, const std::string& what) {
    it.s->note(it.prompt.empty() ? "repair: " + what
                                 : fmt::format("repair of prompt {}: {}", it.prompt, what));
  }
  void keep(Item& it) {
    *it.caption = it.repaired;
    *it.status = kRepaired;
  }

  // The first ranker's scores of the unrepaired and repaired texts of one sample's candidates for
  // the guard, in one text pass; single ranker: the kept ones' re_clip_score is the new score.
  void clip_guard(Sample& s, std::vector<Item>& items, const std::vector<size_t>& idx) {
    std::vector<std::string> texts;
    std::map<std::string, size_t> at;
    auto add = [&](const std::string& t) {
      if (at.emplace(t, texts.size()).second) texts.push_back(t);
    };
    for (size_t i : idx) add(**items[i].unrepaired), add(items[i].repaired);
    auto emb = first_->embed_texts(texts);
    for (size_t i : idx) {
      Item& it = items[i];
      double before = 100.0 * clip_cosine(s.img_emb, emb[at[**it.unrepaired]]);
      double after = 100.0 * clip_cosine(s.img_emb, emb[at[it.repaired]]);
      if (before - after > guard_.max_clip_drop) {
        *it.status = kRejectedDrift;
        note(it, fmt::format("rejected_drift (CLIP guard: score {:.2f} -> {:.2f}, a drop of {:.2f} > "
                             "--repair-max-clip-drop {})",
                             before, after, before - after, guard_.max_clip_drop));
        continue;
      }
      keep(it);
      if (it.score->has_value()) {
        if (last_)
          it.rescore = true;
        else
          *it.score = after;
      }
    }
  }

  // Several rankers of different models: the kept repairs of ranked captions get the last ranker's
  // score (re_clip_score is the last ranker's), the image embedded again by it.
  void rescore_with_last(Sample& s, std::vector<Item>& items, const std::vector<size_t>& idx) {
    if (!last_) return;
    std::vector<std::string> texts;
    for (size_t i : idx)
      if (items[i].rescore && std::find(texts.begin(), texts.end(), items[i].repaired) == texts.end())
        texts.push_back(items[i].repaired);
    if (texts.empty() || s.pixels.empty()) return;
    auto img = last_->embed_images({&s.pixels})[0];
    auto emb = last_->embed_texts(texts);
    for (size_t i : idx)
      if (items[i].rescore) {
        size_t k = std::find(texts.begin(), texts.end(), items[i].repaired) - texts.begin();
        *items[i].score = 100.0 * clip_cosine(img, emb[k]);
      }
  }

  Repairer repairer_;
  const std::atomic<bool>* cancel_;
  RepairGuard guard_;
  size_t batch_;
  std::unique_ptr<ClipContext> first_, last_;  // last_: only when it is another model than first_
};

}  // namespace

std::unique_ptr<Stage> make_model_repair_stage(std::shared_ptr<const RepairModel> model,
                                               const RepairParams& params, const RepairGuard& guard,
                                               std::vector<RankerSpec> rankers, size_t batch) {
  return std::make_unique<ModelRepairStage>(std::move(model), params, guard, std::move(rankers), batch);
}

}  // namespace capforge
