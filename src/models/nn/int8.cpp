#include "models/nn/int8.h"

#include "models/nn/simd.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace capforge::nn {

namespace {

// A bound on K under which int32 sums cannot overflow (255 * 127 * K < 2^31 up to K = 66311).
constexpr int64_t kMaxK = 65536;

// The row's range with 0 in it; NaN ignored (min(x, lo) keeps lo), as the AVX-512 code does.
RowQuant row_quant(float lo, float hi) {
  RowQuant r;
  const float s = (hi - lo) / 255.f;  // 0 (a constant row, or a subnormal range) or inf: scale 1
  r.scale = s > 0 && std::isfinite(s) ? s : 1.f;
  const float z = std::min(std::max(-lo / r.scale, 0.f), 255.f);
  r.zero = (int32_t)std::nearbyint(z);
  return r;
}

// One element: round(x / scale) + zero in [0, 255]; NaN -> the low end, as the AVX-512 code does.
inline uint8_t quant(float x, float inv, int32_t zero) {
  float v = x * inv;
  v = v > -256.f ? v : -256.f;
  v = v < 256.f ? v : 256.f;
  const int32_t i = (int32_t)std::nearbyint(v) + zero;
  return (uint8_t)std::min(std::max(i, 0), 255);
}

RowQuant quantize_scalar(const float* x, int64_t K, uint8_t* q) {
  float lo = 0, hi = 0;
  bool nan = false;
  for (int64_t k = 0; k < K; ++k) {
    lo = x[k] < lo ? x[k] : lo;
    hi = x[k] > hi ? x[k] : hi;
    nan |= std::isnan(x[k]);
  }
  RowQuant r = row_quant(lo, hi);
  const float inv = 1.f / r.scale;
  for (int64_t k = 0; k < K; ++k) q[k] = quant(x[k], inv, r.zero);
  if (nan || !std::isfinite(lo) || !std::isfinite(hi)) r.scale = NAN;  // every output NaN
  return r;
}

void rescale_scalar(const int32_t* acc, RowQuant a, const float* scale, const int32_t* sum, const float* bias,
                    int64_t N, float* y) {
  for (int64_t n = 0; n < N; ++n) {
    const float v = (float)(acc[n] - a.zero * sum[n]) * (a.scale * scale[n]);
    y[n] = bias ? v + bias[n] : v;
  }
}

#if defined(__x86_64__)
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_* to their masked forms: false alarms
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define CF_AVX512 __attribute__((target("avx512f,avx512bw")))

CF_AVX512 RowQuant quantize_avx512(const float* x, int64_t K, uint8_t* q) {
  __m512 vlo = _mm512_setzero_ps(), vhi = _mm512_setzero_ps();
  __mmask16 nan = 0;
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m512 v = _mm512_loadu_ps(x + k);
    vlo = _mm512_min_ps(v, vlo);  // NaN in v: keeps vlo
    vhi = _mm512_max_ps(v, vhi);
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  }
  float lo = _mm512_reduce_min_ps(vlo), hi = _mm512_reduce_max_ps(vhi);
  for (int64_t t = k; t < K; ++t) {
    lo = x[t] < lo ? x[t] : lo;
    hi = x[t] > hi ? x[t] : hi;
    nan |= std::isnan(x[t]) ? 1 : 0;
  }
  RowQuant r = row_quant(lo, hi);
  const float inv = 1.f / r.scale;
  const __m512 vinv = _mm512_set1_ps(inv), vmin = _mm512_set1_ps(-256.f), vmax = _mm512_set1_ps(256.f);
  const __m512i vzero = _mm512_set1_epi32(r.zero), v0 = _mm512_setzero_si512(), v255 = _mm512_set1_epi32(255);
  k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + k), vinv);
    v = _mm512_min_ps(_mm512_max_ps(v, vmin), vmax);  // NaN -> -256, as quant()
    __m512i i = _mm512_add_epi32(_mm512_cvtps_epi32(v), vzero);
    i = _mm512_min_epi32(_mm512_max_epi32(i, v0), v255);
    _mm_storeu_si128((__m128i*)(q + k), _mm512_cvtepi32_epi8(i));
  }
  for (; k < K; ++k) q[k] = quant(x[k], inv, r.zero);
  if (nan || !std::isfinite(lo) || !std::isfinite(hi)) r.scale = NAN;  // every output NaN
  return r;
}

CF_AVX512 void rescale_avx512(const int32_t* acc, RowQuant a, const float* scale, const int32_t* sum,
                              const float* bias, int64_t N, float* y) {
  const __m512i vz = _mm512_set1_epi32(a.zero);
  const __m512 vs = _mm512_set1_ps(a.scale);
  int64_t n = 0;
  for (; n + 16 <= N; n += 16) {
    const __m512i d =
        _mm512_sub_epi32(_mm512_loadu_si512(acc + n), _mm512_mullo_epi32(vz, _mm512_loadu_si512(sum + n)));
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(vs, _mm512_loadu_ps(scale + n)));
    if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + n));
    _mm512_storeu_ps(y + n, v);
  }
  rescale_scalar(acc + n, a, scale + n, sum + n, bias ? bias + n : nullptr, N - n, y + n);
}

// pack_row's AVX-512 form: the same q and scale (division and round-to-nearest-even as the scalar
// code; NaN ignored by the maximum, quantised to 0, and the scale NaN).
CF_AVX512 int32_t pack_row_avx512(const float* row, int64_t K, int8_t* q, float* scale_out) {
  __m512 vmax = _mm512_setzero_ps();
  __mmask16 nan = 0;
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m512 v = _mm512_loadu_ps(row + k);
    vmax = _mm512_max_ps(_mm512_abs_ps(v), vmax);
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  }
  float amax = _mm512_reduce_max_ps(vmax);
  for (int64_t t = k; t < K; ++t) {
    amax = std::fabs(row[t]) > amax ? std::fabs(row[t]) : amax;
    nan |= std::isnan(row[t]) ? 1 : 0;
  }
  const float scale = amax > 0 && std::isfinite(amax) ? amax / 127.f : 1.f;
  const __m512 vs = _mm512_set1_ps(scale), lo = _mm512_set1_ps(-127.f), hi = _mm512_set1_ps(127.f);
  __m512i vsum = _mm512_setzero_si512();
  for (k = 0; k + 16 <= K; k += 16) {
    const __m512 x = _mm512_div_ps(_mm512_loadu_ps(row + k), vs);
    __m512 v = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, x, _CMP_ORD_Q), v);  // NaN -> 0
    const __m512i i = _mm512_cvtps_epi32(v);
    vsum = _mm512_add_epi32(vsum, i);
    _mm_storeu_si128((__m128i*)(q + k), _mm512_cvtepi32_epi8(i));
  }
  int32_t sum = _mm512_reduce_add_epi32(vsum);
  for (; k < K; ++k) {
    const float v = std::min(std::max(std::nearbyint(row[k] / scale), -127.f), 127.f);
    q[k] = (int8_t)(std::isnan(v) ? 0.f : v);
    sum += q[k];
  }
  *scale_out = nan || !std::isfinite(amax) ? NAN : scale;
  return sum;
}

#pragma GCC diagnostic pop

#endif

// One row of pack_int8_rows: q[0..K) and its scale; returns the sum of q.
int32_t pack_row(const float* row, int64_t K, int8_t* q, float* scale_out) {
#if defined(__x86_64__)
  if (has_avx512()) return pack_row_avx512(row, K, q, scale_out);
#endif
  float amax = 0;
  bool nan = false;
  for (int64_t k = 0; k < K; ++k) {
    amax = std::fabs(row[k]) > amax ? std::fabs(row[k]) : amax;
    nan |= std::isnan(row[k]);
  }
  const float scale = amax > 0 && std::isfinite(amax) ? amax / 127.f : 1.f;
  int32_t sum = 0;
  for (int64_t k = 0; k < K; ++k) {
    const float v = std::min(std::max(std::nearbyint(row[k] / scale), -127.f), 127.f);
    q[k] = (int8_t)(std::isnan(v) ? 0.f : v);
    sum += q[k];
  }
  *scale_out = nan || !std::isfinite(amax) ? NAN : scale;  // the channel's outputs NaN
  return sum;
}

}  // namespace

void pack_int8_rows(const float* w, int64_t K, int64_t N, int8_t* out) {
  if (K > kMaxK) throw std::invalid_argument("int8 weights: rows longer than 65536 values");
  for (int64_t n = 0; n < N; ++n) {
    int8_t* q = out + n * (K + kInt8Tail);
    float scale;
    const int32_t sum = pack_row(w + n * K, K, q, &scale);
    std::memcpy(q + K, &scale, sizeof scale);
    std::memcpy(q + K + 4, &sum, sizeof sum);
  }
}

RowQuant quantize_row_u8(const float* x, int64_t K, uint8_t* q) {
#if defined(__x86_64__)
  if (has_avx512()) return quantize_avx512(x, K, q);
#endif
  return quantize_scalar(x, K, q);
}

void int8_row_product(const uint8_t* q, const int8_t* w, int64_t K, int64_t N, int64_t ldw, int32_t* acc) {
  for (int64_t n = 0; n < N; ++n) {
    const int8_t* wn = w + n * ldw;
    int32_t s = 0;
    for (int64_t k = 0; k < K; ++k) s += (int32_t)q[k] * wn[k];
    acc[n] = s;
  }
}

void int8_channel_terms(const int8_t* w, int64_t K, int64_t N, int64_t ldw, float* scale, int32_t* sum) {
  for (int64_t n = 0; n < N; ++n) {
    std::memcpy(scale + n, w + n * ldw + K, sizeof(float));
    std::memcpy(sum + n, w + n * ldw + K + 4, sizeof(int32_t));
  }
}

void int8_rescale_row(const int32_t* acc, RowQuant a, const float* scale, const int32_t* sum,
                      const float* bias, int64_t N, float* y) {
#if defined(__x86_64__)
  if (has_avx512()) return rescale_avx512(acc, a, scale, sum, bias, N, y);
#endif
  rescale_scalar(acc, a, scale, sum, bias, N, y);
}

}  // namespace capforge::nn
