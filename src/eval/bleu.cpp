// BLEU as pycocoevalcap's BleuScorer computes it: clipped n-gram matches against the per-n-gram
// maximum over references, "closest" reference length (ties to the shorter), the 1e-15 / 1e-9
// smoothing constants, and a brevity penalty when the candidate is shorter.
#include <algorithm>
#include <cctype>
#include <cmath>

#include "eval/scorers.h"

namespace capforge::eval {

std::vector<std::string> split_ws(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace((unsigned char)s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !std::isspace((unsigned char)s[j])) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

NgramCounts ngram_counts(const std::vector<std::string>& w) {
  NgramCounts c;
  for (size_t n = 1; n <= 4; ++n)
    for (size_t i = 0; i + n <= w.size(); ++i) {
      std::string key = w[i];
      for (size_t k = 1; k < n; ++k) key += '\x1f' + w[i + k];
      ++c[n - 1][key];
    }
  return c;
}

std::array<double, 4> bleu(const std::vector<std::string>& preds,
                           const std::vector<std::vector<std::string>>& refs,
                           std::vector<std::array<double, 4>>& per_image) {
  constexpr double kTiny = 1e-15, kSmall = 1e-9;
  std::array<double, 4> guess_total{}, correct_total{};
  double testlen_total = 0, reflen_total = 0;
  per_image.assign(preds.size(), {});
  for (size_t i = 0; i < preds.size(); ++i) {
    std::array<std::unordered_map<std::string, int>, 4> maxref;
    std::vector<size_t> reflens;
    for (auto& r : refs[i]) {
      auto words = split_ws(r);
      reflens.push_back(words.size());
      auto c = ngram_counts(words);
      for (size_t n = 0; n < 4; ++n)
        for (auto& [g, k] : c[n]) maxref[n][g] = std::max(maxref[n][g], k);
    }
    auto words = split_ws(preds[i]);
    double testlen = (double)words.size();
    size_t reflen = reflens[0];
    for (size_t l : reflens) {
      double d = std::fabs((double)l - testlen), best = std::fabs((double)reflen - testlen);
      if (d < best || (d == best && l < reflen)) reflen = l;
    }
    auto c = ngram_counts(words);
    double b = 1;
    for (size_t n = 0; n < 4; ++n) {
      double guess = std::max(0.0, testlen - (double)n), correct = 0;
      for (auto& [g, k] : c[n]) {
        auto it = maxref[n].find(g);
        correct += std::min(k, it == maxref[n].end() ? 0 : it->second);
      }
      guess_total[n] += guess;
      correct_total[n] += correct;
      b *= (correct + kTiny) / (guess + kSmall);
      per_image[i][n] = std::pow(b, 1.0 / (double)(n + 1));
    }
    double ratio = (testlen + kTiny) / ((double)reflen + kSmall);
    if (ratio < 1)
      for (auto& v : per_image[i]) v *= std::exp(1 - 1 / ratio);
    testlen_total += testlen;
    reflen_total += (double)reflen;
  }
  std::array<double, 4> out{};
  double b = 1;
  for (size_t n = 0; n < 4; ++n) {
    b *= (correct_total[n] + kTiny) / (guess_total[n] + kSmall);
    out[n] = std::pow(b, 1.0 / (double)(n + 1));
  }
  double ratio = (testlen_total + kTiny) / (reflen_total + kSmall);
  if (ratio < 1)
    for (auto& v : out) v *= std::exp(1 - 1 / ratio);
  return out;
}

}  // namespace capforge::eval
