#include "models/repair/t5_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "models/nn/simd.h"

namespace capforge::repair {

namespace {

struct Task {
  const float* q;     // [hd]
  const float* k;     // the sequence's first key row's head slice; rows `stride` floats apart
  const float* v;     // likewise
  const float* bias;  // [keys], or null (no bias)
  int64_t keys, hd, stride;
  float* out;  // [hd]
};

void attend_plain(const Task& t, float* s) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < t.keys; ++j) {
    const float* k = t.k + j * t.stride;
    float acc = 0;
    for (int64_t d = 0; d < t.hd; ++d) acc += t.q[d] * k[d];
    s[j] = t.bias ? acc + t.bias[j] : acc;
    m = std::max(m, s[j]);
  }
  float l = 0;
  for (int64_t j = 0; j < t.keys; ++j) l += (s[j] = std::exp(s[j] - m));
  for (int64_t d = 0; d < t.hd; ++d) t.out[d] = 0;
  for (int64_t j = 0; j < t.keys; ++j) {
    const float* v = t.v + j * t.stride;
    for (int64_t d = 0; d < t.hd; ++d) t.out[d] += s[j] * v[d];
  }
  for (int64_t d = 0; d < t.hd; ++d) t.out[d] /= l;
}

#if defined(__x86_64__)
#pragma GCC diagnostic push  // GCC 12's AVX-512 intrinsics: false alarms on _mm512_undefined_*
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// hd a multiple of 16 (64 for every published T5): q in registers, 16 lanes per partial sum.
__attribute__((target("avx512f,avx512dq"))) void attend_avx512(const Task& t, float* s) {
  constexpr int kMaxVec = 16;  // hd <= 256
  const int64_t nv = t.hd / 16;
  __m512 q[kMaxVec];
  for (int64_t c = 0; c < nv; ++c) q[c] = _mm512_loadu_ps(t.q + c * 16);
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < t.keys; ++j) {
    const float* k = t.k + j * t.stride;
    __m512 acc = _mm512_mul_ps(q[0], _mm512_loadu_ps(k));
    for (int64_t c = 1; c < nv; ++c) acc = _mm512_fmadd_ps(q[c], _mm512_loadu_ps(k + c * 16), acc);
    s[j] = t.bias ? _mm512_reduce_add_ps(acc) + t.bias[j] : _mm512_reduce_add_ps(acc);
    m = std::max(m, s[j]);
  }
  const __m512 mv = _mm512_set1_ps(m);
  __m512 lv = _mm512_setzero_ps();
  for (int64_t j = 0; j < t.keys; j += 16) {
    const __mmask16 live = (__mmask16)(t.keys - j >= 16 ? 0xffff : (1u << (t.keys - j)) - 1);
    const __m512 e = nn::exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(live, s + j), mv));
    _mm512_mask_storeu_ps(s + j, live, e);
    lv = _mm512_add_ps(lv, _mm512_maskz_mov_ps(live, e));
  }
  const float l = _mm512_reduce_add_ps(lv);
  __m512 o[kMaxVec];
  for (int64_t c = 0; c < nv; ++c) o[c] = _mm512_setzero_ps();
  for (int64_t j = 0; j < t.keys; ++j) {
    const float* v = t.v + j * t.stride;
    const __m512 w = _mm512_set1_ps(s[j]);
    for (int64_t c = 0; c < nv; ++c) o[c] = _mm512_fmadd_ps(w, _mm512_loadu_ps(v + c * 16), o[c]);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / l);
  for (int64_t c = 0; c < nv; ++c) _mm512_storeu_ps(t.out + c * 16, _mm512_mul_ps(o[c], inv));
}
#pragma GCC diagnostic pop
#endif

bool use_avx512(int64_t hd) {
#if defined(__x86_64__)
  return nn::has_avx512() && hd % 16 == 0 && hd <= 256;
#else
  (void)hd;
  return false;
#endif
}

void attend(const Task& t, bool vec, float* s) {
#if defined(__x86_64__)
  if (vec) return attend_avx512(t, s);
#endif
  (void)vec;
  attend_plain(t, s);
}

const float* at(const ggml_tensor* t, int64_t i1, int64_t i2 = 0, int64_t i3 = 0) {
  return (const float*)((const char*)t->data + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3]);
}

void decoder_op(ggml_tensor* dst, int ith, int nth, void* userdata) {
  const ggml_tensor *q = dst->src[0], *kc = dst->src[1], *vc = dst->src[2], *rows = dst->src[3],
                    *bias = dst->src[4];
  const int64_t max_len = (int64_t)(intptr_t)userdata;
  const int64_t A = q->ne[0], n = q->ne[1], H = bias->ne[2], hd = A / H, span = bias->ne[0];
  const bool vec = use_avx512(hd);
  std::vector<float> s((size_t)span + 16);
  for (int64_t task = ith; task < n * H; task += nth) {
    const int64_t i = task / H, h = task % H;
    const int64_t row = ((const int64_t*)rows->data)[i], pos = row % max_len, first = row - pos;
    Task t;
    t.q = at(q, i) + h * hd;
    t.k = at(kc, first) + h * hd;
    t.v = at(vc, first) + h * hd;
    t.stride = (int64_t)(kc->nb[1] / sizeof(float));
    t.bias = at(bias, 0, h, i);
    t.keys = std::min(pos + 1, span);
    t.hd = hd;
    t.out = (float*)at(dst, i) + h * hd;
    attend(t, vec, s.data());
  }
}

void encoder_op(ggml_tensor* dst, int ith, int nth, void*) {
  const ggml_tensor *q = dst->src[0], *k = dst->src[1], *v = dst->src[2], *bias = dst->src[3],
                    *lens = dst->src[4];
  const int64_t A = q->ne[0], Le = q->ne[1], B = q->ne[2], H = bias->ne[2], hd = A / H;
  const bool vec = use_avx512(hd);
  std::vector<float> s((size_t)Le + 16);
  for (int64_t task = ith; task < B * H * Le; task += nth) {
    const int64_t b = task / (H * Le), h = task / Le % H, i = task % Le;
    Task t;
    t.q = at(q, i, b) + h * hd;
    t.k = at(k, 0, b) + h * hd;
    t.v = at(v, 0, b) + h * hd;
    t.stride = (int64_t)(k->nb[1] / sizeof(float));
    t.bias = at(bias, i, h);
    t.keys = std::clamp<int64_t>(((const int32_t*)lens->data)[b], 1, Le);
    t.hd = hd;
    t.out = (float*)at(dst, i, b) + h * hd;
    attend(t, vec, s.data());
  }
}

void cross_op(ggml_tensor* dst, int ith, int nth, void*) {
  const ggml_tensor *q = dst->src[0], *ck = dst->src[1], *cv = dst->src[2], *idx = dst->src[3];
  const int64_t A = q->ne[0], n = q->ne[1], hd = ck->ne[0], H = ck->ne[2], Np = ck->ne[1];
  (void)A;
  const bool vec = use_avx512(hd);
  std::vector<float> s((size_t)Np + 16);
  for (int64_t task = ith; task < n * H; task += nth) {
    const int64_t i = task / H, h = task % H;
    const int32_t* e = (const int32_t*)idx->data + 2 * i;  // caption slot, keys
    Task t;
    t.q = at(q, i) + h * hd;
    t.k = at(ck, 0, h, e[0]);
    t.v = at(cv, 0, h, e[0]);
    t.stride = (int64_t)(ck->nb[1] / sizeof(float));
    t.bias = nullptr;
    t.keys = std::clamp<int64_t>(e[1], 1, Np);
    t.hd = hd;
    t.out = (float*)at(dst, i) + h * hd;
    attend(t, vec, s.data());
  }
}

}  // namespace

ggml_tensor* t5_cached_attention(ggml_context* ctx, ggml_tensor* q, ggml_tensor* kc, ggml_tensor* vc,
                                 ggml_tensor* rows, ggml_tensor* bias, int max_len) {
  GGML_ASSERT(q->type == GGML_TYPE_F32 && kc->type == GGML_TYPE_F32 && vc->type == GGML_TYPE_F32);
  GGML_ASSERT(ggml_is_contiguous(q) && kc->ne[0] == q->ne[0] && vc->ne[0] == q->ne[0]);
  GGML_ASSERT(kc->nb[1] == vc->nb[1] && kc->nb[0] == sizeof(float));
  GGML_ASSERT(rows->type == GGML_TYPE_I64 && rows->ne[0] == q->ne[1]);
  GGML_ASSERT(bias->type == GGML_TYPE_F32 && bias->ne[3] == q->ne[1] && q->ne[0] % bias->ne[2] == 0);
  ggml_tensor* args[5] = {q, kc, vc, rows, bias};
  return ggml_custom_4d(ctx, GGML_TYPE_F32, q->ne[0], q->ne[1], 1, 1, args, 5, decoder_op, GGML_N_TASKS_MAX,
                        (void*)(intptr_t)max_len);
}

ggml_tensor* t5_cross_attention(ggml_context* ctx, ggml_tensor* q, ggml_tensor* ck, ggml_tensor* cv,
                                ggml_tensor* idx) {
  GGML_ASSERT(q->type == GGML_TYPE_F32 && ck->type == GGML_TYPE_F32 && cv->type == GGML_TYPE_F32);
  GGML_ASSERT(q->nb[0] == sizeof(float) && q->ne[0] == ck->ne[0] * ck->ne[2]);
  GGML_ASSERT(ggml_are_same_shape(ck, cv) && ck->nb[1] == cv->nb[1] && ck->nb[2] == cv->nb[2] &&
              ck->nb[3] == cv->nb[3] && ck->nb[0] == sizeof(float));
  GGML_ASSERT(idx->type == GGML_TYPE_I32 && idx->ne[0] == 2 * q->ne[1] && ggml_is_contiguous(idx));
  ggml_tensor* args[4] = {q, ck, cv, idx};
  return ggml_custom_4d(ctx, GGML_TYPE_F32, q->ne[0], q->ne[1], 1, 1, args, 4, cross_op, GGML_N_TASKS_MAX,
                        nullptr);
}

ggml_tensor* t5_encoder_attention(ggml_context* ctx, ggml_tensor* q, ggml_tensor* k, ggml_tensor* v,
                                  ggml_tensor* bias, ggml_tensor* lens) {
  for (ggml_tensor* t : {q, k, v}) {
    GGML_ASSERT(t->type == GGML_TYPE_F32 && ggml_is_contiguous(t));
    GGML_ASSERT(t->ne[0] == q->ne[0] && t->ne[1] == q->ne[1] && t->ne[2] == q->ne[2] && t->ne[3] == 1);
  }
  GGML_ASSERT(bias->type == GGML_TYPE_F32 && bias->ne[0] >= q->ne[1] && bias->ne[1] == q->ne[1]);
  GGML_ASSERT(q->ne[0] % bias->ne[2] == 0);
  GGML_ASSERT(lens->type == GGML_TYPE_I32 && lens->ne[0] == q->ne[2]);
  ggml_tensor* args[5] = {q, k, v, bias, lens};
  return ggml_custom_4d(ctx, GGML_TYPE_F32, q->ne[0], q->ne[1], q->ne[2], 1, args, 5, encoder_op,
                        GGML_N_TASKS_MAX, nullptr);
}

}  // namespace capforge::repair
