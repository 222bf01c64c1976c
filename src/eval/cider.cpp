// CIDEr-D as pycocoevalcap's CiderScorer computes it: tf-idf vectors of 1..4-grams with document
// frequencies over the evaluated images' references and log(#images) as the reference length,
// clipped cosine (min(hyp, ref) * ref), a Gaussian length penalty with sigma 6, the mean over
// n and over references, times 10. Its "length" is the number of bigrams (the toolkit counts
// term frequencies of n-gram index 1), and that is kept.
#include <cmath>
#include <set>

#include "eval/scorers.h"

namespace capforge::eval {

namespace {

struct Vec {
  std::array<std::unordered_map<std::string, double>, 4> w;
  std::array<double, 4> norm{};
  double length = 0;
};

}  // namespace

std::vector<double> cider_d(const std::vector<std::string>& preds,
                            const std::vector<std::vector<std::string>>& refs) {
  constexpr double kSigma = 6.0;
  std::vector<std::vector<NgramCounts>> ref_counts(refs.size());
  std::unordered_map<std::string, double> df;  // key: n-gram index + key
  for (size_t i = 0; i < refs.size(); ++i) {
    std::set<std::string> seen;
    for (auto& r : refs[i]) {
      ref_counts[i].push_back(ngram_counts(split_ws(r)));
      for (size_t n = 0; n < 4; ++n)
        for (auto& [g, k] : ref_counts[i].back()[n]) seen.insert(std::to_string(n) + g);
    }
    for (auto& g : seen) df[g] += 1;
  }
  const double ref_len = std::log((double)refs.size());
  auto to_vec = [&](const NgramCounts& c) {
    Vec v;
    for (size_t n = 0; n < 4; ++n) {
      for (auto& [g, tf] : c[n]) {
        auto it = df.find(std::to_string(n) + g);
        double w = (double)tf * (ref_len - std::log(std::max(1.0, it == df.end() ? 0.0 : it->second)));
        v.w[n][g] = w;
        v.norm[n] += w * w;
        if (n == 1) v.length += tf;
      }
      v.norm[n] = std::sqrt(v.norm[n]);
    }
    return v;
  };
  std::vector<double> out;
  for (size_t i = 0; i < preds.size(); ++i) {
    Vec hyp = to_vec(ngram_counts(split_ws(preds[i])));
    std::array<double, 4> score{};
    for (auto& rc : ref_counts[i]) {
      Vec ref = to_vec(rc);
      double delta = hyp.length - ref.length;
      for (size_t n = 0; n < 4; ++n) {
        double val = 0;
        for (auto& [g, wh] : hyp.w[n]) {
          auto it = ref.w[n].find(g);
          double wr = it == ref.w[n].end() ? 0.0 : it->second;
          val += std::min(wh, wr) * wr;
        }
        if (hyp.norm[n] != 0 && ref.norm[n] != 0) val /= hyp.norm[n] * ref.norm[n];
        score[n] += val * std::exp(-(delta * delta) / (2 * kSigma * kSigma));
      }
    }
    double mean = (score[0] + score[1] + score[2] + score[3]) / 4;
    out.push_back(mean / (double)refs[i].size() * 10.0);
  }
  return out;
}

}  // namespace capforge::eval
