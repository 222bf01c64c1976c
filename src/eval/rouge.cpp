// ROUGE-L as pycocoevalcap's Rouge computes it: tokens are the caption split on single spaces (so an
// empty caption is one empty token), LCS against each reference, then F with beta 1.2 from the
// maximum precision and the maximum recall over the references (not from one reference).
#include <algorithm>

#include "eval/scorers.h"

namespace capforge::eval {

namespace {

std::vector<std::string> split_space(const std::string& s) {  // Python's s.split(" ")
  std::vector<std::string> out;
  size_t i = 0;
  for (;;) {
    size_t j = s.find(' ', i);
    out.push_back(s.substr(i, j == std::string::npos ? std::string::npos : j - i));
    if (j == std::string::npos) return out;
    i = j + 1;
  }
}

size_t lcs(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<size_t> prev(b.size() + 1, 0), cur(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

std::vector<double> rouge_l(const std::vector<std::string>& preds,
                            const std::vector<std::vector<std::string>>& refs) {
  constexpr double kBeta = 1.2;
  std::vector<double> out;
  for (size_t i = 0; i < preds.size(); ++i) {
    auto c = split_space(preds[i]);
    double pmax = 0, rmax = 0;
    for (auto& ref : refs[i]) {
      auto r = split_space(ref);
      double l = (double)lcs(r, c);
      pmax = std::max(pmax, l / (double)c.size());
      rmax = std::max(rmax, l / (double)r.size());
    }
    out.push_back(pmax != 0 && rmax != 0 ? (1 + kBeta * kBeta) * pmax * rmax / (rmax + kBeta * kBeta * pmax)
                                         : 0.0);
  }
  return out;
}

}  // namespace capforge::eval
