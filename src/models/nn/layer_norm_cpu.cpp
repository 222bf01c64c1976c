#include "models/nn/layer_norm_cpu.h"

#include "models/ggml_util.h"
#include "models/nn/simd.h"

#include <cmath>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace capforge::nn {

namespace {

void row_plain(const float* x, const float* w, const float* b, int64_t D, float eps, float* y) {
  double sum = 0;
  for (int64_t i = 0; i < D; ++i) sum += x[i];
  const float mean = (float)(sum / (double)D);
  double var = 0;
  for (int64_t i = 0; i < D; ++i) var += (double)(x[i] - mean) * (x[i] - mean);
  const float inv = 1.0f / std::sqrt((float)(var / (double)D) + eps);
  for (int64_t i = 0; i < D; ++i) y[i] = (x[i] - mean) * inv * w[i] + b[i];
}

#if defined(__x86_64__)
#pragma GCC diagnostic push  // GCC 12's AVX-512 intrinsics: false alarms on _mm512_undefined_*
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"))) void row_avx512(const float* x, const float* w, const float* b, int64_t D,
                                                   float eps, float* y) {
  __m512 s = _mm512_setzero_ps();
  for (int64_t i = 0; i < D; i += 16) {
    const __mmask16 live = first_lanes(D - i);
    s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(live, x + i));
  }
  const float mean = _mm512_reduce_add_ps(s) / (float)D;
  const __m512 vm = _mm512_set1_ps(mean);
  __m512 v = _mm512_setzero_ps();
  for (int64_t i = 0; i < D; i += 16) {
    const __mmask16 live = first_lanes(D - i);
    const __m512 d = _mm512_maskz_sub_ps(live, _mm512_maskz_loadu_ps(live, x + i), vm);
    v = _mm512_fmadd_ps(d, d, v);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / std::sqrt(_mm512_reduce_add_ps(v) / (float)D + eps));
  for (int64_t i = 0; i < D; i += 16) {
    const __mmask16 live = first_lanes(D - i);
    const __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(live, x + i), vm), inv);
    _mm512_mask_storeu_ps(
        y + i, live,
        _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(live, w + i), _mm512_maskz_loadu_ps(live, b + i)));
  }
}
#pragma GCC diagnostic pop
#endif

// ggml custom op: dst = layer_norm(src[0]) * src[1] + src[2]; thread ith takes rows
// [R*ith/nth, R*(ith+1)/nth).
void compute(ggml_tensor* dst, int ith, int nth, void* userdata) {
  const ggml_tensor *x = dst->src[0], *w = dst->src[1], *b = dst->src[2];
  float eps;
  std::memcpy(&eps, &userdata, sizeof eps);
  const int64_t D = x->ne[0], R = ggml_nrows(x), stride = row_stride(x);
  const int64_t r0 = R * ith / nth, r1 = R * (ith + 1) / nth;
#if defined(__x86_64__)
  const auto row = has_avx512() ? row_avx512 : row_plain;
#else
  const auto row = row_plain;
#endif
  for (int64_t r = r0; r < r1; ++r)
    row((const float*)((const char*)x->data + r * stride), (const float*)w->data, (const float*)b->data, D,
        eps, (float*)dst->data + r * D);
}

}  // namespace

bool layer_norm_cpu_supports(const ggml_tensor* x, const ggml_tensor* w, const ggml_tensor* b) {
  for (const ggml_tensor* t : {x, w, b})
    if (!t || t->type != GGML_TYPE_F32 || t->nb[0] != sizeof(float)) return false;
  return ggml_is_contiguous(w) && ggml_is_contiguous(b) && ggml_nelements(w) == x->ne[0] &&
         ggml_nelements(b) == x->ne[0] && row_stride(x) > 0;
}

ggml_tensor* layer_norm_cpu(ggml_context* ctx, ggml_tensor* x, ggml_tensor* w, ggml_tensor* b, float eps) {
  ggml_tensor* args[] = {x, w, b};
  void* userdata = nullptr;
  std::memcpy(&userdata, &eps, sizeof eps);
  return ggml_custom_4d(ctx, GGML_TYPE_F32, x->ne[0], x->ne[1], x->ne[2], x->ne[3], args, 3, compute,
                        GGML_N_TASKS_MAX, userdata);
}

}  // namespace capforge::nn
