#include "models/nn/dense.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/log.h"
#include "ggml-backend.h"
#include "models/ggml_util.h"
#include "models/nn/epilogue.h"
#include "models/nn/int8.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#ifdef CAPFORGE_HAVE_ONEDNN
#include <omp.h>

#include <atomic>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#endif

namespace capforge::nn {

#if defined(__x86_64__)
namespace {
__attribute__((target("avx512f,avx512bf16"))) void to_bf16_avx512(const float* x, ggml_bf16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256((__m256i*)(y + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
  for (; i < n; ++i) y[i] = ggml_fp32_to_bf16(x[i]);
}
}  // namespace
#endif

bool weights_on_host(const ggml_tensor* w) {
  const ggml_tensor* base = w->view_src ? w->view_src : w;
  return base->buffer && ggml_backend_buffer_is_host(base->buffer);
}

void to_bf16(const float* x, ggml_bf16_t* y, int64_t n) {
#if defined(__x86_64__)
  static const bool avx512bf16 = __builtin_cpu_supports("avx512bf16");
  if (avx512bf16) return to_bf16_avx512(x, y, n);
#endif
  for (int64_t i = 0; i < n; ++i) y[i] = ggml_fp32_to_bf16(x[i]);
}

ggml_tensor* quick_gelu_ops(ggml_context* ctx, ggml_tensor* x) {
  // silu(1.702 x) / 1.702: ggml's silu is vectorised (its exp within 2 ulp), where ggml_gelu_quick
  // reads an f16 table one element at a time and ggml_sigmoid calls expf per element
  return ggml_scale(ctx, ggml_silu(ctx, ggml_scale(ctx, x, 1.702f)), 1.0f / 1.702f);
}

namespace {

ggml_tensor* with_bias(ggml_context* ctx, ggml_tensor* y, ggml_tensor* bias) {
  return bias ? ggml_add(ctx, y, bias) : y;
}

// DenseFused's steps after the biased product y, as ggml ops (where the op cannot run).
ggml_tensor* fused_on_ggml(ggml_context* ctx, ggml_tensor* y, const DenseFused& f) {
  if (f.quick_gelu) y = quick_gelu_ops(ctx, y);
  return f.residual ? ggml_add(ctx, y, f.residual) : y;
}

// dense_gathered with ggml's ops: the table with its zero row appended, the rows gathered into the
// [G*C, P] matrix, one product.
ggml_tensor* gathered_on_ggml(ggml_context* ctx, ggml_tensor* w, ggml_tensor* table, ggml_tensor* idx,
                              int groups) {
  const int64_t C = table->ne[0], T = ggml_nrows(table);
  ggml_tensor* padded = ggml_pad(ctx, ggml_reshape_2d(ctx, table, C, T), 0, 1, 0, 0);
  ggml_tensor* cols = ggml_reshape_2d(ctx, ggml_get_rows(ctx, padded, idx), C * groups, idx->ne[0] / groups);
  return w->type == GGML_TYPE_I8 ? dense(ctx, w, cols) : ggml_mul_mat(ctx, w, cols);
}

}  // namespace

#ifdef CAPFORGE_HAVE_ONEDNN
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

// Per compute thread: its stream and its block of product inputs (rows rounded to bf16, or
// gathered rows).
struct ThreadState {
  std::optional<dnnl::stream> stream;  // made on first use (inside the op's try)
  std::vector<char> buf;
  std::vector<char> pad_a, pad_y;  // a last block rounded up to kRowQuantum rows, and its result
  // int8: a block's quantised rows, their quantisation and integer products; the weights' terms
  std::vector<uint8_t> q;
  std::vector<RowQuant> rq;
  std::vector<int32_t> acc, sum;
  std::vector<float> scale;
  void* scratch(size_t bytes) {
    if (buf.size() < bytes) buf.resize(bytes);
    return buf.data();
  }
};

// For the op's duration, OpenMP regions this thread opens get one thread: oneDNN then runs on the
// calling ggml thread alone (inside ggml's parallel region it would anyway; in a one-thread
// compute, which ggml runs outside any region, it would start its own team and could split K).
struct OneOmpThread {
  int saved = omp_get_max_threads();
  OneOmpThread() { omp_set_num_threads(1); }
  ~OneOmpThread() { omp_set_num_threads(saved); }
};

// Set once oneDNN failed at run time (never expected: out of memory): every later product is
// the plain one, so results do not depend on which calls failed.
std::atomic<bool> g_failed{false};

void note_failure(const char* what) {
  if (!g_failed.exchange(true)) warn("oneDNN matmul failed ({}); products fall back to a plain loop", what);
}

ThreadState& thread_state() {
  static thread_local ThreadState s;
  return s;
}

// A weight matrix as oneDNN takes it: n columns of K (ggml's rows), ldw elements apart (int8: K
// values and the row's tail, see int8.h).
struct WeightCols {
  const char* data;
  int64_t K, n, ldw;
  ggml_type type;
  bool bf16;
  size_t in_size() const { return type == GGML_TYPE_I8 ? 1 : bf16 ? 2 : 4; }  // an input element's bytes
};

WeightCols columns(const ggml_tensor* w) {
  return {
      (const char*)w->data,     w->ne[0], w->ne[1], (int64_t)(w->nb[1] / ggml_type_size(w->type)), w->type,
      w->type == GGML_TYPE_BF16};
}

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

// The plain product of one row, for after a failure: y [w.n] = round(x) [K] x w, then e's steps, x
// in f32 (rounded to bf16 for bf16 weights, as the oneDNN path does).
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

// oneDNN compiles a kernel for each new shape (0.5-2 ms; then cached): rows go in blocks of
// kBlockRows, and a last partial block is rounded up to kRowQuantum rows (zero rows, results
// dropped), so that a weight meets at most kBlockRows / kRowQuantum + 1 shapes whatever the batch.
constexpr int64_t kBlockRows = 256, kRowQuantum = 8;

// y [mm, w.n] (rows ldc apart; f32, int32 for int8) = a [mm, K] (rows lda elements apart; w's input
// type) x w, then (f32 results only) e's steps on each block while it is in cache.
void product_rows(const void* a, int64_t lda, const WeightCols& w, int64_t mm, void* y_, int64_t ldc,
                  ThreadState& ts, const RowEpilogue& e = {}) {
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

// int8_rows on oneDNN, or in plain loops once it failed.
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

// src[i] as a bias vector, or null when the op has no such source.
const float* bias_of(const ggml_tensor* dst, int i) {
  return dst->src[i] ? (const float*)dst->src[i]->data : nullptr;
}

// The dense op's epilogue flags (its userdata) and sources.
enum : intptr_t { kBias = 1, kQuickGelu = 2, kResidual = 4 };

// The dense op's epilogue for its rows from m0 on: src[2] the bias if kBias, then the residual if
// kResidual.
RowEpilogue epilogue_of(const ggml_tensor* dst, intptr_t flags, int64_t m0) {
  RowEpilogue e;
  int next = 2;
  if (flags & kBias) e.bias = (const float*)dst->src[next++]->data;
  e.quick_gelu = flags & kQuickGelu;
  if (flags & kResidual) {
    const ggml_tensor* r = dst->src[next];
    e.residual_stride = row_stride(r);
    e.residual = (const char*)r->data + m0 * e.residual_stride;
  }
  return e;
}

// ggml custom op: dst [N, M...] = src[0] [K, N] x src[1] [K, M...], then the epilogue its userdata
// names (epilogue_of); thread ith takes rows
// [M*ith/nth, M*(ith+1)/nth). (Not columns: oneDNN's result for an element depends on how many
// columns a call has, so a column split would make it depend on the thread count.)
void compute(ggml_tensor* dst, int ith, int nth, void* flags) {
  const ggml_tensor* w = dst->src[0];
  const ggml_tensor* x = dst->src[1];
  const int64_t K = w->ne[0], N = w->ne[1], M = ggml_nrows(x), ldx = row_stride(x);
  const int64_t m0 = M * ith / nth, m1 = M * (ith + 1) / nth, mm = m1 - m0;
  if (mm <= 0) return;
  const WeightCols wc = columns(w);
  const char* xa = (const char*)x->data + m0 * ldx;
  float* y = (float*)dst->data + m0 * N;
  const RowEpilogue ep = epilogue_of(dst, (intptr_t)flags, m0);
  const OneOmpThread one;
  if (wc.type == GGML_TYPE_I8) return int8_rows_any(xa, ldx, wc, mm, y, N, ep);
  if (!g_failed) try {
      ThreadState& ts = thread_state();
      if (!wc.bf16) return product_rows(xa, ldx / (int64_t)sizeof(float), wc, mm, y, N, ts, ep);
      auto* a = (ggml_bf16_t*)ts.scratch((size_t)(mm * K) * sizeof(ggml_bf16_t));
      for (int64_t r = 0; r < mm; ++r) to_bf16((const float*)(xa + r * ldx), a + r * K, K);
      return product_rows(a, K, wc, mm, y, N, ts, ep);
    } catch (const std::exception& e) {
      note_failure(e.what());
    }
  for (int64_t r = 0; r < mm; ++r) plain_row((const float*)(xa + r * ldx), wc, y + r * N, ep.from_row(r));
}

// Rows gathered per block in dense_gathered: the block stays in cache, and oneDNN reaches its
// one-call rate from 256 rows on (measured at the ResNet's shapes).
constexpr int64_t kGatherRows = kBlockRows;

// ggml custom op: dst [N, P] = src[0] [G*C, N] x (row p: the G rows src[1][src[2][p*G + g]], each
// [C] of src[0]'s type, f32 for int8 weights; an index outside src[1]'s rows is a zero row) (+ src[3] [N]);
// thread ith takes output rows [P*ith/nth, P*(ith+1)/nth), gathered and multiplied kGatherRows at a time.
void compute_gathered(ggml_tensor* dst, int ith, int nth, void* groups) {
  const ggml_tensor* w = dst->src[0];
  const ggml_tensor* table = dst->src[1];
  const auto* idx = (const int32_t*)dst->src[2]->data;
  const int64_t G = (int64_t)(intptr_t)groups, K = w->ne[0], N = w->ne[1], P = dst->ne[1];
  const int64_t rows = ggml_nrows(table);
  const size_t row_bytes = (size_t)table->nb[1];  // C elements of w's type, contiguous
  const int64_t p0 = P * ith / nth, p1 = P * (ith + 1) / nth;
  const WeightCols wc = columns(w);
  RowEpilogue ep;
  ep.bias = bias_of(dst, 3);
  // rows [b, b + rb) gathered into `a` (rb x K, w's type)
  const auto gather = [&](int64_t b, int64_t rb, char* a) {
    for (int64_t r = 0; r < rb; ++r)
      for (int64_t g = 0; g < G; ++g) {
        const int32_t i = idx[(b + r) * G + g];
        char* to = a + (size_t)(r * G + g) * row_bytes;
        if (i >= 0 && i < rows)
          std::memcpy(to, (const char*)table->data + (size_t)i * row_bytes, row_bytes);
        else
          std::memset(to, 0, row_bytes);
      }
  };
  const OneOmpThread one;
  if (wc.type == GGML_TYPE_I8) {  // the table is f32: gathered rows are quantised as dense()'s
    for (int64_t b = p0; b < p1; b += kGatherRows) {
      const int64_t rb = std::min(kGatherRows, p1 - b);
      char* a = (char*)thread_state().scratch((size_t)rb * G * row_bytes);
      gather(b, rb, a);
      int8_rows_any(a, K * (int64_t)sizeof(float), wc, rb, (float*)dst->data + b * N, N, ep);
    }
    return;
  }
  if (!g_failed) try {
      ThreadState& ts = thread_state();
      for (int64_t b = p0; b < p1; b += kGatherRows) {
        const int64_t rb = std::min(kGatherRows, p1 - b);
        char* a = (char*)ts.scratch((size_t)rb * G * row_bytes);
        gather(b, rb, a);
        product_rows(a, K, wc, rb, (float*)dst->data + b * N, N, ts, ep);
      }
      return;
    } catch (const std::exception& e) {
      note_failure(e.what());
    }
  std::vector<char> a((size_t)G * row_bytes);
  std::vector<float> row((size_t)K);
  for (int64_t p = p0; p < p1; ++p) {
    gather(p, 1, a.data());
    for (int64_t k = 0; k < K; ++k)
      row[(size_t)k] =
          wc.bf16 ? ggml_bf16_to_fp32(((const ggml_bf16_t*)a.data())[k]) : ((const float*)a.data())[k];
    plain_row(row.data(), wc, (float*)dst->data + p * N, ep);
  }
}

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

}  // namespace

bool dense_uses_onednn(ggml_type type) {
  static const bool bf16 = probe(GGML_TYPE_BF16), f32 = probe(GGML_TYPE_F32), i8 = probe(GGML_TYPE_I8);
  return type == GGML_TYPE_BF16 ? bf16 : type == GGML_TYPE_F32 ? f32 : type == GGML_TYPE_I8 ? i8 : false;
}

namespace {

// Weights in host memory as a plain 2-D matrix of a type oneDNN takes.
bool eligible_weights(const ggml_tensor* w) {
  const ggml_tensor* base = w->view_src ? w->view_src : w;
  if (!dense_uses_onednn(w->type) || !base->buffer || !ggml_backend_buffer_is_host(base->buffer) ||
      base->extra)
    return false;
  return w->ne[2] == 1 && w->ne[3] == 1 && w->nb[0] == ggml_type_size(w->type) && w->nb[1] % w->nb[0] == 0;
}

// A bias the ops can add: f32 [n] in host memory.
bool eligible_bias(const ggml_tensor* b, int64_t n) {
  return b->type == GGML_TYPE_F32 && ggml_is_contiguous(b) && b->ne[0] == n && ggml_nelements(b) == n &&
         weights_on_host(b);
}

// ... and x f32 rows at one stride.
bool eligible(const ggml_tensor* w, const ggml_tensor* x) {
  if (!eligible_weights(w)) return false;
  return x->type == GGML_TYPE_F32 && x->ne[0] == w->ne[0] && x->nb[0] == sizeof(float) && row_stride(x) > 0 &&
         row_stride(x) % (int64_t)sizeof(float) == 0;
}

}  // namespace

namespace {

// A residual the op can add: f32 shaped like the output [n, x's rows...], rows at one stride.
bool eligible_residual(const ggml_tensor* r, int64_t n, const ggml_tensor* x) {
  return r->type == GGML_TYPE_F32 && r->ne[0] == n && r->ne[1] == x->ne[1] && r->ne[2] == x->ne[2] &&
         r->ne[3] == x->ne[3] && r->nb[0] == sizeof(float) && row_stride(r) > 0;
}

// The dense op, its epilogue's pieces already checked (bias and residual may be null).
ggml_tensor* dense_op(ggml_context* ctx, ggml_tensor* w, ggml_tensor* x, ggml_tensor* bias, bool quick_gelu,
                      ggml_tensor* residual) {
  ggml_tensor* args[4] = {w, x, nullptr, nullptr};
  int n = 2;
  intptr_t flags = quick_gelu ? kQuickGelu : 0;
  if (bias) args[n++] = bias, flags |= kBias;
  if (residual) args[n++] = residual, flags |= kResidual;
  return ggml_custom_4d(ctx, GGML_TYPE_F32, w->ne[1], x->ne[1], x->ne[2], x->ne[3], args, n, compute,
                        GGML_N_TASKS_MAX, (void*)flags);
}

// int8 weights go to the op whatever x is (ggml has no product for them): x made f32 and contiguous.
ggml_tensor* int8_input(ggml_context* ctx, ggml_tensor* w, ggml_tensor* x) {
  if (!eligible_weights(w)) throw std::logic_error("int8 weights need oneDNN's int8 kernels on the CPU");
  if (eligible(w, x)) return x;
  x = x->type == GGML_TYPE_F32 ? ggml_cont(ctx, x) : ggml_cast(ctx, x, GGML_TYPE_F32);
  if (!eligible(w, x)) throw std::logic_error("dense: int8 weights and an input they cannot take");
  return x;
}

}  // namespace

ggml_tensor* dense(ggml_context* ctx, ggml_tensor* w, ggml_tensor* x, ggml_tensor* bias, bool f32_on_ggml) {
  if (w->type == GGML_TYPE_I8) x = int8_input(ctx, w, x);
  if ((f32_on_ggml && w->type == GGML_TYPE_F32) || !eligible(w, x))
    return with_bias(ctx, ggml_mul_mat(ctx, w, x), bias);
  if (bias && !eligible_bias(bias, w->ne[1]))
    return with_bias(ctx, dense_op(ctx, w, x, nullptr, false, nullptr), bias);
  return dense_op(ctx, w, x, bias, false, nullptr);
}

ggml_tensor* dense(ggml_context* ctx, ggml_tensor* w, ggml_tensor* x, const DenseFused& f) {
  if (w->type == GGML_TYPE_I8) x = int8_input(ctx, w, x);
  const int64_t N = w->ne[1];
  if (!eligible(w, x) || (f.bias && !eligible_bias(f.bias, N)) ||
      (f.residual && !eligible_residual(f.residual, N, x))) {
    return fused_on_ggml(ctx, dense(ctx, w, x, f.bias), f);
  }
  return dense_op(ctx, w, x, f.bias, f.quick_gelu, f.residual);
}

ggml_tensor* dense_gathered(ggml_context* ctx, ggml_tensor* w, ggml_tensor* table, ggml_tensor* idx,
                            int groups, ggml_tensor* bias) {
  if (groups <= 0 || idx->ne[0] % groups) throw std::invalid_argument("dense_gathered: bad groups");
  const int64_t C = table->ne[0], P = idx->ne[0] / groups;
  if (!eligible_weights(w) || table->type != GGML_TYPE_F32 || !ggml_is_contiguous(table) ||
      C * groups != w->ne[0] || idx->type != GGML_TYPE_I32 || !ggml_is_contiguous(idx) ||
      P * groups != ggml_nelements(idx) || (bias && !eligible_bias(bias, w->ne[1])))
    return with_bias(ctx, gathered_on_ggml(ctx, w, table, idx, groups), bias);
  // the table in the product's type once, so that each gathered row is a plain copy (int8: rows
  // are quantised after the gather, each as a whole)
  if (w->type != GGML_TYPE_F32 && w->type != GGML_TYPE_I8) table = ggml_cast(ctx, table, w->type);
  ggml_tensor* args[] = {w, table, idx, bias};
  return ggml_custom_4d(ctx, GGML_TYPE_F32, w->ne[1], P, 1, 1, args, bias ? 4 : 3, compute_gathered,
                        GGML_N_TASKS_MAX, (void*)(intptr_t)groups);
}

#else

bool dense_uses_onednn(ggml_type) { return false; }
ggml_tensor* dense_gathered(ggml_context* ctx, ggml_tensor* w, ggml_tensor* table, ggml_tensor* idx,
                            int groups, ggml_tensor* bias) {
  return with_bias(ctx, gathered_on_ggml(ctx, w, table, idx, groups), bias);
}
ggml_tensor* dense(ggml_context* ctx, ggml_tensor* w, ggml_tensor* x, ggml_tensor* bias, bool) {
  if (w->type == GGML_TYPE_I8) throw std::logic_error("int8 weights need a build with oneDNN");
  return with_bias(ctx, ggml_mul_mat(ctx, w, x), bias);
}
ggml_tensor* dense(ggml_context* ctx, ggml_tensor* w, ggml_tensor* x, const DenseFused& f) {
  return fused_on_ggml(ctx, dense(ctx, w, x, f.bias), f);
}

#endif

}  // namespace capforge::nn
