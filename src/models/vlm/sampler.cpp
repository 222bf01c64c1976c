#include "models/vlm/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace capforge::vlm {

namespace {
uint64_t splitmix(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

constexpr float kBanned = -std::numeric_limits<float>::infinity();

// Token order for sampling: higher logit first, lower id on ties (deterministic).
struct ByLogit {
  const std::vector<float>& l;
  bool operator()(int a, int b) const { return l[a] > l[b] || (l[a] == l[b] && a < b); }
};
}  // namespace

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) s = splitmix(seed);
}

uint64_t Rng::next() {
  uint64_t r = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
  s_[2] ^= s_[0], s_[3] ^= s_[1], s_[1] ^= s_[2], s_[0] ^= s_[3], s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return r;
}

double Rng::uniform() { return (double)(next() >> 11) * 0x1.0p-53; }

uint64_t candidate_seed(uint64_t seed, const std::string& key, int index) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the key
  for (unsigned char c : key) h = (h ^ c) * 1099511628211ull;
  uint64_t x = seed ^ h;
  uint64_t a = splitmix(x);
  x = a ^ (uint64_t)index;
  return splitmix(x);
}

Choice choose(const float* logits, int n, const std::vector<int>& generated, int n_new,
              const std::vector<int>& eog, const SamplingParams& p, Rng& rng) {
  Choice c;
  float mx = *std::max_element(logits, logits + n);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp((double)logits[i] - mx);
  const double lse = mx + std::log(sum);
  for (int e : eog) c.p_eos += std::exp((double)logits[e] - lse);

  std::vector<float> l(logits, logits + n);
  if (p.repetition_penalty != 1.0f) {
    std::vector<int> seen(generated);
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int t : seen)
      if (t >= 0 && t < n) l[t] = l[t] > 0 ? l[t] / p.repetition_penalty : l[t] * p.repetition_penalty;
  }
  const int ng = p.no_repeat_ngram;
  if (ng > 0 && (int)generated.size() >= ng - 1) {
    const size_t m = generated.size();
    for (size_t i = 0; i + ng <= m; ++i) {
      bool same = true;
      for (int k = 0; k < ng - 1 && same; ++k) same = generated[i + k] == generated[m - (ng - 1) + k];
      if (same) l[generated[i + ng - 1]] = kBanned;
    }
  }
  if (n_new < p.min_new_tokens)
    for (int e : eog) l[e] = kBanned;

  int pick = -1;
  if (p.greedy || p.temperature <= 0) {
    pick = (int)(std::max_element(l.begin(), l.end()) - l.begin());
  } else {
    for (auto& v : l) v /= p.temperature;
    // Candidate set, best first where an order matters.
    std::vector<int> ids;
    ByLogit order{l};
    if (p.top_k > 0 && p.top_k < n) {
      ids.resize((size_t)n);
      for (int i = 0; i < n; ++i) ids[(size_t)i] = i;
      std::nth_element(ids.begin(), ids.begin() + p.top_k, ids.end(), order);
      ids.resize((size_t)p.top_k);
      std::sort(ids.begin(), ids.end(), order);
    } else if (p.top_p < 1.0f || p.min_p > 0.0f) {
      // Sort only as much of the vocabulary as the nucleus needs.
      std::vector<int> all((size_t)n);
      for (int i = 0; i < n; ++i) all[(size_t)i] = i;
      float top = *std::max_element(l.begin(), l.end());
      double z = 0;
      for (float v : l) z += std::exp((double)v - top);
      for (size_t m = 256;; m *= 8) {
        m = std::min(m, all.size());
        std::partial_sort(all.begin(), all.begin() + (long)m, all.end(), order);
        double cum = 0;
        for (size_t i = 0; i < m; ++i) cum += std::exp((double)l[all[i]] - top) / z;
        bool below_min_p = p.min_p > 0 && std::exp((double)l[all[m - 1]] - top) < p.min_p;
        if ((p.top_p < 1.0f && cum >= p.top_p) || below_min_p || m == all.size()) {
          all.resize(m);
          break;
        }
      }
      ids.swap(all);
    } else {
      ids.resize((size_t)n);
      for (int i = 0; i < n; ++i) ids[(size_t)i] = i;
    }
    float top = kBanned;
    for (int i : ids) top = std::max(top, l[i]);
    std::vector<double> pr(ids.size());
    double z = 0;
    for (size_t i = 0; i < ids.size(); ++i) z += pr[i] = std::exp((double)l[ids[i]] - top);
    size_t keep = ids.size();
    if (p.min_p > 0) {  // ids are best-first here and pr[0] == 1: keep p >= min_p * p_max
      keep = 0;
      while (keep < ids.size() && pr[keep] >= p.min_p) ++keep;
      keep = std::max<size_t>(keep, 1);
    }
    if (p.top_p < 1.0f) {
      double cum = 0, zk = 0;
      for (size_t i = 0; i < keep; ++i) zk += pr[i];
      size_t k = 0;
      while (k < keep && cum < p.top_p) cum += pr[k++] / zk;
      keep = std::max<size_t>(k, 1);
    }
    double zk = 0;
    for (size_t i = 0; i < keep; ++i) zk += pr[i];
    double u = rng.uniform() * zk, acc = 0;
    pick = ids[keep - 1];
    for (size_t i = 0; i < keep; ++i) {
      acc += pr[i];
      if (u < acc) {
        pick = ids[i];
        break;
      }
    }
  }
  c.token = pick;
  c.logprob = (double)logits[pick] - lse;
  return c;
}

}  // namespace capforge::vlm
