#include "models/nn/attention_cpu.h"

#include "models/nn/simd.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace capforge::nn {

namespace {

constexpr int64_t kLanes = 16;

// One (batch, head) pair's keys and values, laid out for its queries.
struct PairBlock {
  std::vector<float> kt;  // [hd][tp]: K transposed, keys tk..tp zero
  std::vector<float> v;   // [tk][hd]
  std::vector<float> s;   // [tp]: one query's scores, then its weights
  int64_t hd = 0, tk = 0, tp = 0;
};

const float* row_at(const ggml_tensor* t, int64_t h, int64_t j, int64_t b) {
  return (const float*)((const char*)t->data + h * t->nb[1] + j * t->nb[2] + b * t->nb[3]);
}

// out [hd] = softmax(scale * q . K + mask) V for one query over its first `keys` keys (the rest
// masked out); mask null or its f16 row [tk].
void query_plain(const float* q, const PairBlock& p, int64_t keys, const ggml_fp16_t* mask, float scale,
                 float* s, float* out) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < keys; ++j) {
    float acc = 0;
    for (int64_t d = 0; d < p.hd; ++d) acc += q[d] * p.kt[(size_t)(d * p.tp + j)];
    s[j] = acc * scale + (mask ? ggml_fp16_to_fp32(mask[j]) : 0.f);
    m = std::max(m, s[j]);
  }
  if (m == -std::numeric_limits<float>::infinity()) return (void)std::fill(out, out + p.hd, 0.f);
  float l = 0;
  for (int64_t j = 0; j < keys; ++j) l += (s[j] = std::exp(s[j] - m));
  for (int64_t d = 0; d < p.hd; ++d) {
    float acc = 0;
    for (int64_t j = 0; j < keys; ++j) acc += s[j] * p.v[(size_t)(j * p.hd + d)];
    out[d] = acc / l;
  }
}

#if defined(__x86_64__)
#pragma GCC diagnostic push  // GCC 12's AVX-512 intrinsics: false alarms on _mm512_undefined_*
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define CF_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

// acc[i] = sum_d q[d] * kt[d][16i .. 16i + 15] for NV vectors of keys side by side (independent FMA
// chains: one chain would wait on each FMA's latency).
template <int NV>
CF_AVX512 inline void scores(const float* q, const float* kt, int64_t hd, int64_t tp, __m512* acc) {
  for (int i = 0; i < NV; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t d = 0; d < hd; ++d) {
    const __m512 qd = _mm512_set1_ps(q[d]);
    for (int i = 0; i < NV; ++i)
      acc[i] = _mm512_fmadd_ps(qd, _mm512_loadu_ps(kt + d * tp + i * kLanes), acc[i]);
  }
}

// out[16i ..] = inv * sum_j w[j] * v[j][16i ..] for NV vectors of dimensions side by side, the last
// one `last` lanes wide.
template <int NV>
CF_AVX512 inline void weighted(const float* w, const float* v, int64_t tk, int64_t hd, __mmask16 last,
                               __m512 inv, float* out) {
  __m512 acc[NV];
  for (int i = 0; i < NV; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t j = 0; j < tk; ++j) {
    const __m512 wj = _mm512_set1_ps(w[j]);
    for (int i = 0; i < NV; ++i)
      acc[i] = _mm512_fmadd_ps(
          wj, _mm512_maskz_loadu_ps(i == NV - 1 ? last : 0xffff, v + j * hd + i * kLanes), acc[i]);
  }
  for (int i = 0; i < NV; ++i)
    _mm512_mask_storeu_ps(out + i * kLanes, i == NV - 1 ? last : 0xffff, _mm512_mul_ps(acc[i], inv));
}

CF_AVX512 void query_avx512(const float* q, const PairBlock& p, int64_t keys, const ggml_fp16_t* mask,
                            float scale, float* s, float* out) {
  const __m512 vscale = _mm512_set1_ps(scale), ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 vmax = ninf;
  for (int64_t jb = 0; jb < p.tp;) {
    __m512 acc[4];
    const int64_t nv = std::min<int64_t>(4, (p.tp - jb) / kLanes);
    const float* kt = p.kt.data() + jb;
    switch (nv) {
      case 4:
        scores<4>(q, kt, p.hd, p.tp, acc);
        break;
      case 3:
        scores<3>(q, kt, p.hd, p.tp, acc);
        break;
      case 2:
        scores<2>(q, kt, p.hd, p.tp, acc);
        break;
      default:
        scores<1>(q, kt, p.hd, p.tp, acc);
        break;
    }
    for (int64_t i = 0; i < nv; ++i, jb += kLanes) {
      __m512 a = _mm512_mul_ps(acc[i], vscale);
      const __mmask16 live = first_lanes(keys - jb);
      if (mask)
        a = _mm512_add_ps(a, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(live, (const void*)(mask + jb))));
      a = _mm512_mask_mov_ps(ninf, live, a);  // keys past tk: -inf
      _mm512_storeu_ps(s + jb, a);
      vmax = _mm512_max_ps(vmax, a);
    }
  }
  const float m = _mm512_reduce_max_ps(vmax);
  if (m == -std::numeric_limits<float>::infinity()) return (void)std::fill(out, out + p.hd, 0.f);
  const __m512 vm = _mm512_set1_ps(m);
  __m512 vsum = _mm512_setzero_ps();
  for (int64_t jb = 0; jb < p.tp; jb += kLanes) {
    const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(s + jb), vm));
    _mm512_storeu_ps(s + jb, e);
    vsum = _mm512_add_ps(vsum, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
  for (int64_t d = 0; d < p.hd;) {
    const int64_t nv = std::min<int64_t>(4, (p.hd - d + kLanes - 1) / kLanes);
    const int64_t rest = p.hd - d - (nv - 1) * kLanes;  // lanes of the last vector, 1..16
    const __mmask16 last = first_lanes(rest);
    const float* v = p.v.data() + d;
    switch (nv) {
      case 4:
        weighted<4>(s, v, keys, p.hd, last, inv, out + d);
        break;
      case 3:
        weighted<3>(s, v, keys, p.hd, last, inv, out + d);
        break;
      case 2:
        weighted<2>(s, v, keys, p.hd, last, inv, out + d);
        break;
      default:
        weighted<1>(s, v, keys, p.hd, last, inv, out + d);
        break;
    }
    d += nv * kLanes;
  }
}
#pragma GCC diagnostic pop

#endif

// ggml custom op: dst [hd*H, Tq, B] from src q, k, v (and mask); thread ith takes the (batch, head)
// pairs [BH*ith/nth, BH*(ith+1)/nth).
void compute(ggml_tensor* dst, int ith, int nth, void* userdata) {
  const ggml_tensor *q = dst->src[0], *k = dst->src[1], *v = dst->src[2], *mask = dst->src[3];
  // userdata: the scale's bits, and bit 32 for causal (query i sees keys 0..i)
  static_assert(sizeof(void*) >= 8, "attention_cpu packs two fields into a 64-bit userdata");
  const auto bits = (uint64_t)(uintptr_t)userdata;
  const auto scale_bits = (uint32_t)bits;
  const bool causal = (bits >> 32) & 1;
  float scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  const int64_t hd = q->ne[0], H = q->ne[1], Tq = q->ne[2], B = q->ne[3], Tk = k->ne[2];
  const int64_t pairs = B * H, p0 = pairs * ith / nth, p1 = pairs * (ith + 1) / nth;
  static thread_local PairBlock p;
  p.hd = hd;
  p.tk = Tk;
  p.tp = (Tk + kLanes - 1) / kLanes * kLanes;
  p.kt.assign((size_t)(hd * p.tp), 0.f);
  p.v.resize((size_t)(Tk * hd));
  p.s.resize((size_t)p.tp);
#if defined(__x86_64__)
  const auto query = has_avx512() ? query_avx512 : query_plain;
#else
  const auto query = query_plain;
#endif
  for (int64_t pair = p0; pair < p1; ++pair) {
    const int64_t b = pair / H, h = pair % H;
    for (int64_t j = 0; j < Tk; ++j) {
      const float* kr = row_at(k, h, j, b);
      for (int64_t d = 0; d < hd; ++d) p.kt[(size_t)(d * p.tp + j)] = kr[d];
      std::memcpy(p.v.data() + j * hd, row_at(v, h, j, b), (size_t)hd * sizeof(float));
    }
    for (int64_t i = 0; i < Tq; ++i) {
      const auto* mrow = mask ? (const ggml_fp16_t*)((const char*)mask->data + i * mask->nb[1]) : nullptr;
      float* out = (float*)dst->data + ((b * Tq + i) * H + h) * hd;
      query(row_at(q, h, i, b), p, causal ? std::min(Tk, i + 1) : Tk, mrow, scale, p.s.data(), out);
    }
  }
}

}  // namespace

bool attention_cpu_supports(const ggml_tensor* q, const ggml_tensor* k, const ggml_tensor* v,
                            const ggml_tensor* mask) {
  for (const ggml_tensor* t : {q, k, v})
    if (t->type != GGML_TYPE_F32 || t->nb[0] != sizeof(float)) return false;
  if (k->ne[0] != q->ne[0] || v->ne[0] != q->ne[0] || k->ne[1] != q->ne[1] || v->ne[1] != q->ne[1] ||
      v->ne[2] != k->ne[2] || k->ne[3] != q->ne[3] || v->ne[3] != q->ne[3])
    return false;
  if (mask && (mask->type != GGML_TYPE_F16 || mask->ne[0] < k->ne[2] || mask->ne[1] < q->ne[2] ||
               mask->ne[2] != 1 || mask->ne[3] != 1 || mask->nb[0] != sizeof(ggml_fp16_t)))
    return false;
  return true;
}

ggml_tensor* attention_cpu(ggml_context* ctx, ggml_tensor* q, ggml_tensor* k, ggml_tensor* v,
                           ggml_tensor* mask, float scale, bool causal) {
  ggml_tensor* args[] = {q, k, v, mask};
  uint32_t scale_bits;
  std::memcpy(&scale_bits, &scale, sizeof scale);
  void* userdata = (void*)(uintptr_t)((uint64_t)scale_bits | (causal ? uint64_t{1} << 32 : 0));
  return ggml_custom_4d(ctx, GGML_TYPE_F32, q->ne[0] * q->ne[1], q->ne[2], q->ne[3], 1, args, mask ? 4 : 3,
                        compute, GGML_N_TASKS_MAX, userdata);
}

}  // namespace capforge::nn
