#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <stdexcept>

#include "capforge/eval.h"
#include "core/text.h"
#include "eval/scorers.h"

namespace capforge {

namespace {

std::string join(const std::vector<std::string>& toks) {
  std::string s;
  for (size_t i = 0; i < toks.size(); ++i) s += (i ? " " : "") + toks[i];
  return s;
}

double mean(const std::vector<double>& v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / (double)v.size();
}

}  // namespace

CaptionMetrics score_tokenized(const std::vector<std::string>& preds,
                               const std::vector<std::vector<std::string>>& refs) {
  if (preds.size() != refs.size())
    throw std::invalid_argument("caption metrics need one set of references per prediction");
  for (size_t i = 0; i < refs.size(); ++i)
    if (refs[i].empty())
      throw std::invalid_argument("image " + std::to_string(i) + " has no reference caption");
  CaptionMetrics m;
  m.images = preds.size();
  if (preds.empty()) return m;
  std::vector<std::array<double, 4>> per;
  m.bleu = eval::bleu(preds, refs, per);
  for (auto& b : per) m.image_bleu4.push_back(b[3]);
  m.image_rouge_l = eval::rouge_l(preds, refs);
  m.image_cider_d = eval::cider_d(preds, refs);
  m.rouge_l = mean(m.image_rouge_l);
  m.cider_d = mean(m.image_cider_d);
  return m;
}

CaptionMetrics score_captions(const std::vector<std::string>& preds,
                              const std::vector<std::vector<std::string>>& refs) {
  std::vector<std::string> p;
  std::vector<std::vector<std::string>> r(refs.size());
  for (auto& x : preds) p.push_back(join(coco_tokenize(x)));
  for (size_t i = 0; i < refs.size(); ++i)
    for (auto& x : refs[i]) r[i].push_back(join(coco_tokenize(x)));
  return score_tokenized(p, r);
}

const std::vector<std::string>& metric_names() {
  static const std::vector<std::string> n = {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider_d"};
  return n;
}

double metric_value(const CaptionMetrics& m, const std::string& name) {
  for (int k = 0; k < 4; ++k)
    if (name == "bleu_" + std::to_string(k + 1)) return m.bleu[(size_t)k];
  if (name == "rouge_l") return m.rouge_l;
  if (name == "cider_d" || name == "cider") return m.cider_d;
  throw std::invalid_argument("unknown metric " + name + " (bleu_1..bleu_4, rouge_l, cider_d)");
}

TextStats text_stats(const std::vector<std::string>& captions) {
  TextStats s;
  s.captions = captions.size();
  std::vector<int> lens;
  std::set<std::string> vocab, bigrams;
  size_t total_bigrams = 0;
  for (auto& c : captions) {
    int n = word_count(c);
    s.empty += n == 0;
    lens.push_back(n);
    ++s.length_histogram[n];
    auto toks = coco_tokenize(c);
    vocab.insert(toks.begin(), toks.end());
    for (size_t i = 0; i + 1 < toks.size(); ++i, ++total_bigrams) bigrams.insert(toks[i] + ' ' + toks[i + 1]);
  }
  s.vocabulary = vocab.size();
  s.distinct_bigrams = total_bigrams ? (double)bigrams.size() / (double)total_bigrams : 0.0;
  if (!lens.empty()) {
    std::sort(lens.begin(), lens.end());
    s.mean_words = std::accumulate(lens.begin(), lens.end(), 0.0) / (double)lens.size();
    size_t m = lens.size() / 2;
    s.median_words = lens.size() % 2 ? lens[m] : (lens[m - 1] + lens[m]) / 2.0;
    s.p95_words = lens[std::min(lens.size() - 1, (size_t)std::ceil(0.95 * (double)lens.size()) - 1)];
  }
  return s;
}

}  // namespace capforge
