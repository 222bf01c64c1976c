#include "models/vlm/lm_cache.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <utility>

#include <unistd.h>

#include "models/nn/simd.h"

namespace capforge::vlm {

namespace {

constexpr int kGroup = 16;  // key positions per transposed block

// Scores s[j] = scale q . k_j for j < n (the keys transposed in blocks, see lm_cache.h), -inf up
// to the block's end; returns their maximum.
float scores_plain(const float* keys, const float* q, int hd, int n, float scale, float* s) {
  const int blocks = (n + kGroup - 1) / kGroup;
  float mx = -INFINITY;
  for (int b = 0; b < blocks; ++b) {
    const float* kb = keys + (size_t)b * (size_t)hd * kGroup;
    for (int t = 0; t < kGroup; ++t) {
      float acc = 0;
      for (int d = 0; d < hd; ++d) acc += q[d] * kb[d * kGroup + t];
      const int j = b * kGroup + t;
      s[j] = j < n ? acc * scale : -INFINITY;
      mx = std::max(mx, s[j]);
    }
  }
  return mx;
}

#if defined(__x86_64__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"))) float scores_avx512(const float* keys, const float* q, int hd, int n,
                                                       float scale, float* s) {
  const int blocks = (n + kGroup - 1) / kGroup;
  __m512 vmax = _mm512_set1_ps(-INFINITY);
  for (int b = 0; b < blocks; ++b) {
    const float* kb = keys + (size_t)b * (size_t)hd * kGroup;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int d = 0;
    for (; d + 2 <= hd; d += 2) {  // two chains: the adds of one key's sum in a fixed order
      a0 = _mm512_fmadd_ps(_mm512_set1_ps(q[d]), _mm512_loadu_ps(kb + d * kGroup), a0);
      a1 = _mm512_fmadd_ps(_mm512_set1_ps(q[d + 1]), _mm512_loadu_ps(kb + (d + 1) * kGroup), a1);
    }
    if (d < hd) a0 = _mm512_fmadd_ps(_mm512_set1_ps(q[d]), _mm512_loadu_ps(kb + d * kGroup), a0);
    __m512 v = _mm512_mul_ps(_mm512_add_ps(a0, a1), _mm512_set1_ps(scale));
    const int left = n - b * kGroup;
    if (left < kGroup) v = _mm512_mask_blend_ps((__mmask16)((1u << left) - 1), _mm512_set1_ps(-INFINITY), v);
    _mm512_storeu_ps(s + b * kGroup, v);
    vmax = _mm512_max_ps(vmax, v);
  }
  return _mm512_reduce_max_ps(vmax);
}

__attribute__((target("avx512f"))) void exp_avx512(float* s, int n, float max) {
  for (int i = 0; i < n; i += kGroup)  // n is a multiple of kGroup here
    _mm512_storeu_ps(s + i, nn::exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(s + i), _mm512_set1_ps(max))));
}

// out [16 C] = sum_j p[j] v_j: each value row read once, the sums in registers.
template <int C>
__attribute__((target("avx512f"))) void weigh_rows(const float* values, int64_t ldv, int n, const float* p,
                                                   float* out) {
  __m512 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
  for (int j = 0; j < n; ++j) {
    const __m512 pj = _mm512_set1_ps(p[j]);
    const float* v = values + (size_t)j * (size_t)ldv;
    for (int c = 0; c < C; ++c) acc[c] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(v + 16 * c), acc[c]);
  }
  for (int c = 0; c < C; ++c) _mm512_storeu_ps(out + 16 * c, acc[c]);
}

template <int... Cs>
bool weigh_any(std::integer_sequence<int, Cs...>, int chunks, const float* values, int64_t ldv, int n,
               const float* p, float* out) {
  return ((chunks == Cs + 1 ? (weigh_rows<Cs + 1>(values, ldv, n, p, out), true) : false) || ...);
}

// weigh_plain's sum with AVX-512 (head sizes up to 256 in registers; beyond, 256 at a time).
__attribute__((target("avx512f"))) void weigh_avx512(const float* values, int64_t ldv, int hd, int n,
                                                     const float* p, float* out) {
  for (int c0 = 0; c0 < hd; c0 += 256) {
    const int chunks = std::min(hd - c0, 256) / 16;
    weigh_any(std::make_integer_sequence<int, 16>{}, chunks, values + c0, ldv, n, p, out + c0);
  }
}
#pragma GCC diagnostic pop
#endif

void weigh_plain(const float* values, int64_t ldv, int hd, int n, const float* p, float* out) {
  std::fill(out, out + hd, 0.f);
  for (int j = 0; j < n; ++j)
    for (int c = 0; c < hd; ++c) out[c] += p[j] * values[(size_t)j * (size_t)ldv + c];
}

}  // namespace

LmCache::LmCache(int layers, int slots, int cells, int kv_heads, int head_dim)
    : layers_(layers),
      slots_(slots),
      cells_((cells + kGroup - 1) / kGroup * kGroup),
      kv_heads_(kv_heads),
      hd_(head_dim) {
  slot_floats_ = (size_t)cells_ * (size_t)kv_heads_ * (size_t)hd_;
  const size_t n = slot_floats_ * (size_t)slots_;
  // the pages are only touched as positions are written, but a cache larger than the machine
  // would end in an out-of-memory kill mid-run: refuse it now
  const double bytes = 2.0 * layers_ * (double)n * sizeof(float);
  const double ram = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGE_SIZE);
  if (ram > 0 && bytes > 0.8 * ram)
    throw std::invalid_argument(fmt::format(
        "--lm-engine int8: the caches for {} sequences of {} cells need {:.1f} GiB of the machine's "
        "{:.1f}; lower --ctx-size or --parallel",
        slots_, cells_, bytes / (1 << 30), ram / (1 << 30)));
  for (int l = 0; l < layers_; ++l) {  // calloc: fresh zero pages, faulted in when written
    k_.emplace_back((float*)std::calloc(n, sizeof(float)));
    v_.emplace_back((float*)std::calloc(n, sizeof(float)));
    if (!k_.back() || !v_.back())
      throw std::runtime_error(fmt::format("cannot allocate the int8 decoder's caches ({} MiB)",
                                           2 * (size_t)layers_ * n * 4 >> 20));
  }
}

float* LmCache::keys(int layer, int slot, int kh) const {
  return k_[(size_t)layer].get() + (size_t)slot * slot_floats_ + (size_t)kh * (size_t)cells_ * (size_t)hd_;
}

float* LmCache::values(int layer, int slot) const {
  return v_[(size_t)layer].get() + (size_t)slot * slot_floats_;
}

void LmCache::store(int layer, int slot, int pos, const float* k, int64_t k_stride, const float* v) {
  for (int h = 0; h < kv_heads_; ++h) {
    float* kb = keys(layer, slot, h) + (size_t)(pos / kGroup) * (size_t)hd_ * kGroup + pos % kGroup;
    for (int d = 0; d < hd_; ++d) kb[d * kGroup] = k[h * k_stride + d];
  }
  const size_t row = (size_t)kv_heads_ * (size_t)hd_;
  std::memcpy(values(layer, slot) + (size_t)pos * row, v, row * sizeof(float));
}

void LmCache::copy(int src, int dst, int n) {
  const size_t key_floats = (size_t)((n + kGroup - 1) / kGroup) * kGroup * (size_t)hd_;
  const size_t row = (size_t)kv_heads_ * (size_t)hd_;
  for (int l = 0; l < layers_; ++l) {
    for (int h = 0; h < kv_heads_; ++h)
      std::memcpy(keys(l, dst, h), keys(l, src, h), key_floats * sizeof(float));
    std::memcpy(values(l, dst), values(l, src), (size_t)n * row * sizeof(float));
  }
}

void LmCache::attend(int layer, int slot, int kh, int n, const float* q, int64_t q_stride, int group,
                     float scale, float* out) const {
  thread_local std::vector<float> s;
  const int padded = (n + kGroup - 1) / kGroup * kGroup;
  if (s.size() < (size_t)padded) s.resize((size_t)padded);
  const float* K = keys(layer, slot, kh);
  const float* V = values(layer, slot) + (size_t)kh * (size_t)hd_;
  const int64_t ldv = (int64_t)kv_heads_ * hd_;
#if defined(__x86_64__)
  const bool wide = hd_ % 16 == 0 && nn::has_avx512();
#else
  const bool wide = false;
#endif
  for (int g = 0; g < group; ++g) {
    const float* qg = q + g * q_stride;
    float* og = out + (size_t)g * (size_t)hd_;
    float mx;
#if defined(__x86_64__)
    if (wide) {
      mx = scores_avx512(K, qg, hd_, n, scale, s.data());
      exp_avx512(s.data(), padded, mx);
    } else
#endif
    {
      mx = scores_plain(K, qg, hd_, n, scale, s.data());
      for (int j = 0; j < padded; ++j) s[(size_t)j] = j < n ? std::exp(s[(size_t)j] - mx) : 0.f;
    }
    float sum = 0;
    for (int j = 0; j < n; ++j) sum += s[(size_t)j];
    const float inv = 1.f / sum;
    for (int j = 0; j < n; ++j) s[(size_t)j] *= inv;
#if defined(__x86_64__)
    if (wide) {
      weigh_avx512(V, ldv, hd_, n, s.data(), og);
      continue;
    }
#endif
    weigh_plain(V, ldv, hd_, n, s.data(), og);
  }
}

}  // namespace capforge::vlm
