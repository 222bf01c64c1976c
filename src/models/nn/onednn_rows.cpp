#include "models/nn/onednn_rows.h"

#ifdef CAPFORGE_HAVE_ONEDNN

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "core/log.h"

namespace capforge::nn::onednn {

namespace {

using dt = dnnl::memory::data_type;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// oneDNN's types for a product against weights of `type`: inputs, weights, results.
struct ProductTypes {
  dt a, b, c;
};
ProductTypes product_types(ggml_type type) {
  if (type == GGML_TYPE_I8) return {dt::u8, dt::s8, dt::s32};
  if (type == GGML_TYPE_BF16) return {dt::bf16, dt::bf16, dt::f32};
  return {dt::f32, dt::f32, dt::f32};
}

// y [M, N] (rows ldc apart) = a [M, K] (rows lda apart) x b [K, N] (columns ldw apart).
dnnl::matmul::primitive_desc product(ggml_type type, int64_t M, int64_t K, int64_t N, int64_t lda,
                                     int64_t ldw, int64_t ldc) {
  const ProductTypes t = product_types(type);
  const dnnl::memory::desc a({M, K}, t.a, {lda, 1}), b({K, N}, t.b, {1, ldw}), c({M, N}, t.c, {ldc, 1});
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), engine());
}

std::atomic<bool> g_failed{false};

}  // namespace

bool failed() { return g_failed; }

void note_failure(const char* what) {
  if (!g_failed.exchange(true)) warn("oneDNN matmul failed ({}); products fall back to a plain loop", what);
}

ThreadState& thread_state() {
  static thread_local ThreadState s;
  return s;
}

WeightCols columns(const ggml_tensor* w) {
  return {
      (const char*)w->data,     w->ne[0], w->ne[1], (int64_t)(w->nb[1] / ggml_type_size(w->type)), w->type,
      w->type == GGML_TYPE_BF16};
}

namespace {

// One oneDNN call: y [mm, w.n] (rows ldc apart; f32, int32 for int8) = a [mm, K] (rows lda
// elements apart; w's input type) x w. Throws dnnl::error.
void product_call(const void* a, int64_t lda, const WeightCols& w, int64_t mm, void* y, int64_t ldc,
                  ThreadState& ts) {
  const auto pd = product(w.type, mm, w.K, w.n, lda, w.ldw, ldc);
  dnnl::memory am(pd.src_desc(), engine(), const_cast<void*>(a));
  dnnl::memory bm(pd.weights_desc(), engine(), const_cast<char*>(w.data));
  dnnl::memory cm(pd.dst_desc(), engine(), y);
  if (!ts.stream) ts.stream.emplace(engine());
  dnnl::matmul(pd).execute(*ts.stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
  ts.stream->wait();
}

}  // namespace

void plain_row(const float* x, const WeightCols& w, float* y, const RowEpilogue& e) {
  for (int64_t n = 0; n < w.n; ++n) {
    float s = 0;
    for (int64_t k = 0; k < w.K; ++k) {
      const float xv = w.bf16 ? ggml_bf16_to_fp32(ggml_fp32_to_bf16(x[k])) : x[k];
      const float wv = w.bf16 ? ggml_bf16_to_fp32(((const ggml_bf16_t*)w.data)[n * w.ldw + k])
                              : ((const float*)w.data)[n * w.ldw + k];
      s += xv * wv;
    }
    y[n] = s;
  }
  finish_rows(y, 1, w.n, w.n, e);
}

void product_rows(const void* a, int64_t lda, const WeightCols& w, int64_t mm, void* y_, int64_t ldc,
                  ThreadState& ts, const RowEpilogue& e) {
  const size_t es = w.in_size();
  auto* y = (float*)y_;  // 4-byte elements either way
  for (int64_t b = 0; b < mm; b += kBlockRows) {
    const int64_t rb = std::min(kBlockRows, mm - b);
    const char* ab = (const char*)a + (size_t)(b * lda) * es;
    if (rb % kRowQuantum == 0) {
      product_call(ab, lda, w, rb, y + b * ldc, ldc, ts);
      finish_rows(y + b * ldc, rb, ldc, w.n, e.from_row(b));
      continue;
    }
    const int64_t rp = (rb + kRowQuantum - 1) / kRowQuantum * kRowQuantum;
    ts.pad_a.assign((size_t)(rp * w.K) * es, 0);
    for (int64_t r = 0; r < rb; ++r)
      std::memcpy(ts.pad_a.data() + (size_t)(r * w.K) * es, ab + (size_t)(r * lda) * es, (size_t)w.K * es);
    ts.pad_y.resize((size_t)(rp * w.n) * sizeof(float));
    product_call(ts.pad_a.data(), w.K, w, rp, (float*)ts.pad_y.data(), w.n, ts);
    for (int64_t r = 0; r < rb; ++r)
      std::memcpy(y + (b + r) * ldc, (const float*)ts.pad_y.data() + r * w.n, (size_t)w.n * sizeof(float));
    finish_rows(y + b * ldc, rb, ldc, w.n, e.from_row(b));
  }
}

namespace {

// Sizes v to at least n (never shrinks: a thread's buffers keep their pages between ops).
template <class V>
void grow(V& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// int8 weights: y [mm, w.n] (rows ldc apart) = x [mm, K] (f32 rows ldx bytes apart) x w, each row
// quantised on its own (int8.h), the integer products on oneDNN, or with `plain` in plain loops
// (the same integers, so the same bits).
void int8_rows(const char* x, int64_t ldx, const WeightCols& w, int64_t mm, float* y, int64_t ldc,
               const RowEpilogue& e, ThreadState& ts, bool plain) {
  const auto* wq = (const int8_t*)w.data;
  grow(ts.scale, (size_t)w.n);
  grow(ts.sum, (size_t)w.n);
  int8_channel_terms(wq, w.K, w.n, w.ldw, ts.scale.data(), ts.sum.data());
  for (int64_t b = 0; b < mm; b += kBlockRows) {
    const int64_t rb = std::min(kBlockRows, mm - b);
    grow(ts.q, (size_t)(rb * w.K));
    grow(ts.rq, (size_t)rb);
    grow(ts.acc, (size_t)(rb * w.n));
    for (int64_t r = 0; r < rb; ++r)
      ts.rq[(size_t)r] = quantize_row_u8((const float*)(x + (b + r) * ldx), w.K, ts.q.data() + r * w.K);
    if (plain)
      for (int64_t r = 0; r < rb; ++r)
        int8_row_product(ts.q.data() + r * w.K, wq, w.K, w.n, w.ldw, ts.acc.data() + r * w.n);
    else
      product_rows(ts.q.data(), w.K, w, rb, ts.acc.data(), w.n, ts);
    for (int64_t r = 0; r < rb; ++r)
      int8_rescale_row(ts.acc.data() + r * w.n, ts.rq[(size_t)r], ts.scale.data(), ts.sum.data(), e.bias, w.n,
                       y + (b + r) * ldc);
    finish_rows(y + b * ldc, rb, ldc, w.n, e.without_bias().from_row(b));
  }
}

}  // namespace

void int8_rows_any(const char* x, int64_t ldx, const WeightCols& w, int64_t mm, float* y, int64_t ldc,
                   const RowEpilogue& ep) {
  ThreadState& ts = thread_state();
  if (!g_failed) try {
      return int8_rows(x, ldx, w, mm, y, ldc, ep, ts, false);
    } catch (const std::exception& e) {
      note_failure(e.what());
    }
  int8_rows(x, ldx, w, mm, y, ldc, ep, ts, true);
}

namespace {

// Whether oneDNN's int8 product is exact at the extremes the scheme produces (u8 255 x s8 127):
// kernels without VNNI sum u8 x s8 pairs into int16 and saturate, whatever the CPU flags say
// (ONEDNN_MAX_CPU_ISA can cap the ISA). Weights laid out as packed int8 rows (K + tail apart).
bool int8_exact(const dnnl::matmul::primitive_desc& pd) {
  const int64_t M = 16, K = 64, N = 64, ldw = K + kInt8Tail;
  std::vector<uint8_t> a((size_t)(M * K), 255);
  std::vector<int8_t> w((size_t)(N * ldw), 127);
  std::vector<int32_t> y((size_t)(M * N), 0);
  dnnl::stream s(engine());
  dnnl::memory am(pd.src_desc(), engine(), a.data()), bm(pd.weights_desc(), engine(), w.data()),
      cm(pd.dst_desc(), engine(), y.data());
  dnnl::matmul(pd).execute(s, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
  s.wait();
  return std::all_of(y.begin(), y.end(), [](int32_t v) { return v == 255 * 127 * 64; });
}

}  // namespace

bool probe(ggml_type type) {
  const char* env = std::getenv("CAPFORGE_ONEDNN");
  if (env && std::strcmp(env, "0") == 0) return false;
  try {
    // reference kernels are slower than ggml's: only oneDNN's JIT ones are worth it
    const auto pd = product(type, 16, 64, 64, 64, type == GGML_TYPE_I8 ? 64 + kInt8Tail : 64, 64);
    if (std::strncmp(pd.impl_info_str(), "ref", 3) == 0) return false;
    return type != GGML_TYPE_I8 || int8_exact(pd);
  } catch (const dnnl::error&) {
    return false;
  }
}

}  // namespace capforge::nn::onednn

#endif
