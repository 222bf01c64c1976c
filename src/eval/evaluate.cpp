#include "eval/evaluate.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <unordered_map>

#include "capforge/image.h"
#include "capforge/io.h"
#include "core/log.h"
#include "core/text.h"

namespace capforge::eval {

namespace {

void clip_scores(std::vector<EvalRow>& rows, const std::unordered_map<std::string, std::string>& images,
                 const EvalParams& p) {
  ClipContext clip(load_clip(p.clip_dir, p.clip));
  DecodeParams dp;
  dp.short_edge = clip.image_size();
  for (auto& r : rows) {
    r.re_clip.reset();
    r.org_clip.reset();
    auto it = images.find(r.key);
    if (it == images.end()) continue;
    DecodedImage d;
    if (!decode_image(it->second, dp, d).empty()) continue;
    auto ie = clip.embed_images({&d.pixels});
    std::vector<std::string> texts;
    if (!r.pred.empty()) texts.push_back(r.pred);
    if (!r.org.empty()) texts.push_back(r.org);
    if (texts.empty()) continue;
    auto te = clip.embed_texts(texts);
    size_t k = 0;
    if (!r.pred.empty()) r.re_clip = 100.0 * clip_cosine(ie[0], te[k++]);
    if (!r.org.empty()) r.org_clip = 100.0 * clip_cosine(ie[0], te[k]);
  }
}

std::optional<double> mean_of(const std::vector<double>& v) {
  if (v.empty()) return std::nullopt;
  return std::accumulate(v.begin(), v.end(), 0.0) / (double)v.size();
}

void fill_report(const std::vector<EvalRow>& rows, const EvalResult& res, const std::vector<size_t>& scored,
                 const std::unordered_map<std::string, std::string>& images, const EvalParams& p,
                 ReportData& rep) {
  rep.table = summary_table(res);
  Series rc{"re", "#e15759", {}}, oc{"org", "#4e79a7", {}}, rl{"re", "#e15759", {}}, ol{"org", "#4e79a7", {}};
  for (auto& r : rows) {
    if (r.status == "success") {  // a filtered or failed row's scores are not the run's
      if (r.re_clip) rc.values.push_back(*r.re_clip);
      if (r.org_clip) oc.values.push_back(*r.org_clip);
      rl.values.push_back(word_count(r.pred));
    }
    ol.values.push_back(word_count(r.org));
  }
  rep.clip = {oc, rc};
  rep.length = {ol, rl};
  for (auto& [s, n] : res.statuses) rep.statuses.emplace_back(s, (double)n);
  std::sort(rep.statuses.begin(), rep.statuses.end(), [](auto& a, auto& b) { return a.second > b.second; });
  std::unordered_map<size_t, double> cider;
  for (size_t i = 0; i < scored.size() && res.re; ++i) cider[scored[i]] = res.re->image_cider_d[i];
  size_t max_fail = std::max<size_t>(1, p.gallery / 5), fails = 0;
  for (size_t i = 0; i < rows.size() && rep.gallery.size() < p.gallery; ++i) {
    auto& r = rows[i];
    bool ok = r.status == "success";
    if (!ok && fails >= max_fail) continue;
    fails += !ok;
    GalleryItem g{r.key,  r.url, r.status,  r.error,    r.pred,      r.org,
                  r.refs, "",    r.re_clip, r.org_clip, std::nullopt};
    if (auto it = images.find(r.key); it != images.end()) g.thumb_jpeg = thumbnail_jpeg(it->second, 192);
    if (auto it = cider.find(i); it != cider.end()) g.cider_d = it->second;
    rep.gallery.push_back(std::move(g));
  }
}

}  // namespace

std::vector<std::tuple<std::string, std::string, std::string>> summary_table(const EvalResult& res) {
  std::vector<std::tuple<std::string, std::string, std::string>> t;
  auto fmt4 = [](double v) { return fmt::format("{:.4f}", v); };
  auto both = [&](const std::string& name, auto get) {
    t.emplace_back(name, res.re ? fmt4(get(*res.re)) : "-", res.org ? fmt4(get(*res.org)) : "-");
  };
  t.emplace_back("samples", std::to_string(res.samples), "");
  t.emplace_back("scored against references", std::to_string(res.scored), "");
  for (int k = 0; k < 4; ++k)
    both("BLEU-" + std::to_string(k + 1), [k](const CaptionMetrics& m) { return m.bleu[(size_t)k]; });
  both("ROUGE-L", [](const CaptionMetrics& m) { return m.rouge_l; });
  both("CIDEr-D", [](const CaptionMetrics& m) { return m.cider_d; });
  auto opt = [](const std::optional<double>& v) { return v ? fmt::format("{:.2f}", *v) : std::string("-"); };
  t.emplace_back("CLIP score (mean)", opt(res.re_clip_mean), opt(res.org_clip_mean));
  t.emplace_back("words (mean)", fmt::format("{:.2f}", res.re_text.mean_words),
                 fmt::format("{:.2f}", res.org_text.mean_words));
  t.emplace_back("words (median / p95)",
                 fmt::format("{:g} / {:g}", res.re_text.median_words, res.re_text.p95_words),
                 fmt::format("{:g} / {:g}", res.org_text.median_words, res.org_text.p95_words));
  t.emplace_back("vocabulary", std::to_string(res.re_text.vocabulary),
                 std::to_string(res.org_text.vocabulary));
  t.emplace_back("distinct bigrams", fmt::format("{:.3f}", res.re_text.distinct_bigrams),
                 fmt::format("{:.3f}", res.org_text.distinct_bigrams));
  return t;
}

EvalResult evaluate(std::vector<EvalRow>& rows, const EvalParams& p, ReportData* report) {
  EvalResult res;
  res.samples = rows.size();
  std::set<std::string> wanted;
  for (size_t i = 0; i < rows.size(); ++i)
    if (!p.clip_dir.empty() || (report && i < p.gallery * 2)) wanted.insert(rows[i].key);
  auto images = p.image_paths.empty() ? std::unordered_map<std::string, std::string>{}
                                      : load_images(p.image_paths, wanted);
  res.images_found = images.size();
  if (!p.clip_dir.empty()) {
    clip_scores(rows, images, p);
    res.clip_source = p.clip_dir;
  }
  std::vector<std::string> preds, orgs, re_texts, org_texts;
  std::vector<std::vector<std::string>> refs;
  std::vector<size_t> scored;
  std::vector<double> rc, oc;
  bool have_org = false;
  for (size_t i = 0; i < rows.size(); ++i) {
    auto& r = rows[i];
    ++res.statuses[r.status];
    res.with_refs += !r.refs.empty();
    have_org |= !r.org.empty();
    org_texts.push_back(r.org);
    if (r.status != "success") continue;  // filtered and failed rows' CLIP scores are not counted
    if (r.re_clip) rc.push_back(*r.re_clip);
    if (r.org_clip) oc.push_back(*r.org_clip);
    re_texts.push_back(r.pred);
    if (r.refs.empty()) continue;
    preds.push_back(r.pred);
    orgs.push_back(r.org);
    refs.push_back(r.refs);
    scored.push_back(i);
  }
  if (res.clip_source.empty() && (!rc.empty() || !oc.empty())) res.clip_source = "table";
  res.scored = scored.size();
  if (!scored.empty()) {
    res.re = score_captions(preds, refs);
    if (have_org) res.org = score_captions(orgs, refs);
  }
  res.re_text = text_stats(re_texts);
  res.org_text = text_stats(org_texts);
  res.re_clip_mean = mean_of(rc);
  res.org_clip_mean = mean_of(oc);
  res.re_clip_n = rc.size();
  res.org_clip_n = oc.size();
  if (report) fill_report(rows, res, scored, images, p, *report);
  return res;
}

Json EvalResult::to_json() const {
  auto metrics = [](const std::optional<CaptionMetrics>& m) -> Json {
    if (!m) return nullptr;
    return {{"bleu_1", m->bleu[0]}, {"bleu_2", m->bleu[1]},  {"bleu_3", m->bleu[2]},
            {"bleu_4", m->bleu[3]}, {"rouge_l", m->rouge_l}, {"cider_d", m->cider_d}};
  };
  auto text = [](const TextStats& t) -> Json {
    return {{"captions", t.captions},
            {"empty", t.empty},
            {"mean_words", t.mean_words},
            {"median_words", t.median_words},
            {"p95_words", t.p95_words},
            {"vocabulary", t.vocabulary},
            {"distinct_bigrams", t.distinct_bigrams}};
  };
  auto opt = [](const std::optional<double>& v) { return v ? Json(*v) : Json(nullptr); };
  return {{"samples", samples},
          {"with_references", with_refs},
          {"scored", scored},
          {"metrics", {{"re", metrics(re)}, {"org", metrics(org)}}},
          {"clip",
           {{"source", clip_source.empty() ? Json(nullptr) : Json(clip_source)},
            {"re_mean", opt(re_clip_mean)},
            {"re_n", re_clip_n},
            {"org_mean", opt(org_clip_mean)},
            {"org_n", org_clip_n}}},
          {"text", {{"re", text(re_text)}, {"org", text(org_text)}}},
          {"status", statuses}};
}

}  // namespace capforge::eval
