#include "models/nn/epilogue.h"

#include <cmath>

#include "models/nn/simd.h"

namespace capforge::nn {

namespace {

void finish_row_plain(float* y, int64_t n, const RowEpilogue& e, const float* res) {
  for (int64_t i = 0; i < n; ++i) {
    float v = e.bias ? y[i] + e.bias[i] : y[i];
    if (e.quick_gelu) v = v / (1.0f + std::exp(-1.702f * v));
    y[i] = res ? v + res[i] : v;
  }
}

#if defined(__x86_64__)
#pragma GCC diagnostic push  // GCC 12's AVX-512 intrinsics: false alarms on _mm512_undefined_*
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"))) void finish_row_avx512(float* y, int64_t n, const RowEpilogue& e,
                                                          const float* res) {
  const __m512 k = _mm512_set1_ps(-1.702f), one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 live = first_lanes(n - i);
    __m512 v = _mm512_maskz_loadu_ps(live, y + i);
    if (e.bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(live, e.bias + i));
    if (e.quick_gelu) v = _mm512_div_ps(v, _mm512_add_ps(one, exp_avx512(_mm512_mul_ps(k, v))));
    if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(live, res + i));
    _mm512_mask_storeu_ps(y + i, live, v);
  }
}
#pragma GCC diagnostic pop
#endif

}  // namespace

void finish_rows(float* y, int64_t rows, int64_t ldc, int64_t n, const RowEpilogue& e) {
  if (e.empty()) return;
  for (int64_t r = 0; r < rows; ++r) {
    const float* res = e.residual ? (const float*)(e.residual + r * e.residual_stride) : nullptr;
#if defined(__x86_64__)
    if (has_avx512()) {
      finish_row_avx512(y + r * ldc, n, e, res);
      continue;
    }
#endif
    finish_row_plain(y + r * ldc, n, e, res);
  }
}

}  // namespace capforge::nn
