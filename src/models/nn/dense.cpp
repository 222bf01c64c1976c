#include "models/nn/dense.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "core/log.h"
#include "ggml-backend.h"

#ifdef CAPFORGE_HAVE_ONEDNN
#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>

#include "ggml-cpu.h"
#endif

namespace capforge::nn {

namespace {

// dense_gathered with ggml's ops: the table with its zero row appended, the rows gathered into the
// [G*C, P] matrix, one product.
ggml_tensor* gathered_on_ggml(ggml_context* ctx, ggml_tensor* w, ggml_tensor* table, ggml_tensor* idx,
                              int groups) {
  const int64_t C = table->ne[0], T = ggml_nelements(table) / C;
  ggml_tensor* padded = ggml_pad(ctx, ggml_reshape_2d(ctx, table, C, T), 0, 1, 0, 0);
  ggml_tensor* cols = ggml_reshape_2d(ctx, ggml_get_rows(ctx, padded, idx), C * groups, idx->ne[0] / groups);
  return ggml_mul_mat(ctx, w, cols);
}

}  // namespace

#ifdef CAPFORGE_HAVE_ONEDNN
namespace {

using dt = dnnl::memory::data_type;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::matmul::primitive_desc product(dt type, int64_t M, int64_t K, int64_t N, int64_t lda, int64_t ldw) {
  const dnnl::memory::desc a({M, K}, type, {lda, 1}), b({K, N}, type, {1, ldw}), c({M, N}, dt::f32, {N, 1});
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), engine());
}

// Per compute thread: its stream and its block of product inputs (rows rounded to bf16, or
// gathered rows).
struct ThreadState {
  dnnl::stream stream{engine()};
  std::vector<char> buf;
  std::vector<char> pad_a, pad_y;            // a last block rounded up to kRowQuantum rows, and its result
  ThreadState() { omp_set_num_threads(1); }  // oneDNN runs inside ggml's threads, never spawns its own
  void* scratch(size_t bytes) {
    if (buf.size() < bytes) buf.resize(bytes);
    return buf.data();
  }
};

ThreadState& thread_state() {
  static thread_local ThreadState s;
  return s;
}

// Columns [n0, n0 + n) of a weight matrix: n rows of K in ggml's layout, ldw elements apart.
struct WeightCols {
  const char* data;
  int64_t K, n, ldw;
  bool bf16;
};

WeightCols columns(const ggml_tensor* w, int64_t n0, int64_t n1) {
  return {(const char*)w->data + n0 * w->nb[1], w->ne[0], n1 - n0,
          (int64_t)(w->nb[1] / ggml_type_size(w->type)), w->type == GGML_TYPE_BF16};
}

// The plain product, for the (never expected) case of oneDNN failing at run time: same inputs,
// f32 accumulation.
void fallback(const void* a, int64_t lda, const WeightCols& w, int64_t mm, float* y, int64_t ldc) {
  const auto val = [&](const void* base, int64_t i) {
    return w.bf16 ? ggml_bf16_to_fp32(((const ggml_bf16_t*)base)[i]) : ((const float*)base)[i];
  };
  for (int64_t r = 0; r < mm; ++r)
    for (int64_t n = 0; n < w.n; ++n) {
      const char* wr = w.data + n * w.ldw * (w.bf16 ? 2 : 4);
      float s = 0;
      for (int64_t k = 0; k < w.K; ++k) s += val(a, r * lda + k) * val(wr, k);
      y[r * ldc + n] = s;
    }
}

// One oneDNN call: y [mm, w.n] (rows ldc apart) = a [mm, K] (rows lda elements apart; w's type) x w.
void product_call(const void* a, int64_t lda, const WeightCols& w, int64_t mm, float* y, int64_t ldc,
                  ThreadState& ts) {
  try {
    const dt type = w.bf16 ? dt::bf16 : dt::f32;
    const dnnl::memory::desc ad({mm, w.K}, type, {lda, 1}), bd({w.K, w.n}, type, {1, w.ldw}),
        cd({mm, w.n}, dt::f32, {ldc, 1});
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(ad, bd, cd), engine());
    dnnl::memory am(ad, engine(), const_cast<void*>(a));
    dnnl::memory bm(bd, engine(), const_cast<char*>(w.data));
    dnnl::memory cm(cd, engine(), y);
    dnnl::matmul(pd).execute(ts.stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    ts.stream.wait();
  } catch (const dnnl::error& e) {
    static std::once_flag warned;
    std::call_once(warned, [&] { warn("oneDNN matmul failed ({}); using a plain product", e.what()); });
    fallback(a, lda, w, mm, y, ldc);
  }
}

// oneDNN compiles a kernel for each new shape (0.5-2 ms; then cached): rows go in blocks of
// kBlockRows, and a last partial block is rounded up to kRowQuantum rows (zero rows, results
// dropped), so that a weight meets at most kBlockRows / kRowQuantum + 1 shapes whatever the batch.
constexpr int64_t kBlockRows = 256, kRowQuantum = 8;

// y [mm, w.n] (rows ldc apart) = a [mm, K] (rows lda elements apart; w's type) x w.
void product_rows(const void* a, int64_t lda, const WeightCols& w, int64_t mm, float* y, int64_t ldc,
                  ThreadState& ts) {
  const size_t es = w.bf16 ? 2 : 4;
  for (int64_t b = 0; b < mm; b += kBlockRows) {
    const int64_t rb = std::min(kBlockRows, mm - b);
    const char* ab = (const char*)a + (size_t)(b * lda) * es;
    if (rb % kRowQuantum == 0) {
      product_call(ab, lda, w, rb, y + b * ldc, ldc, ts);
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
  }
}

// ggml custom op: dst [N, M...] = src[0] [K, N] x src[1] [K, M...]; thread ith takes rows
// [M*ith/nth, M*(ith+1)/nth). (Not columns: oneDNN's result for an element depends on how many
// columns a call has, so a column split would make it depend on the thread count.)
void compute(ggml_tensor* dst, int ith, int nth, void*) {
  const ggml_tensor* w = dst->src[0];
  const ggml_tensor* x = dst->src[1];
  const int64_t K = w->ne[0], N = w->ne[1], M = ggml_nrows(x);
  const int64_t m0 = M * ith / nth, m1 = M * (ith + 1) / nth;
  const int64_t mm = m1 - m0;
  if (mm <= 0) return;
  const WeightCols wc = columns(w, 0, N);
  const char* xa = (const char*)x->data + m0 * x->nb[1];
  float* y = (float*)dst->data + m0 * N;
  ThreadState& ts = thread_state();
  if (!wc.bf16) {
    product_rows(xa, x->nb[1] / sizeof(float), wc, mm, y, N, ts);
    return;
  }
  auto* a = (ggml_bf16_t*)ts.scratch((size_t)(mm * K) * sizeof(ggml_bf16_t));
  for (int64_t r = 0; r < mm; ++r) ggml_cpu_fp32_to_bf16((const float*)(xa + r * x->nb[1]), a + r * K, K);
  product_rows(a, K, wc, mm, y, N, ts);
}

// Rows gathered per block in dense_gathered: the block stays in cache, and oneDNN reaches its
// one-call rate from 256 rows on (measured at the ResNet's shapes).
constexpr int64_t kGatherRows = kBlockRows;

// ggml custom op: dst [N, P] = src[0] [G*C, N] x (row p: the G rows src[1][src[2][p*G + g]], each
// [C] of src[0]'s type; an index outside src[1]'s rows is a zero row); thread ith takes output
// rows [P*ith/nth, P*(ith+1)/nth), gathered and multiplied kGatherRows at a time.
void compute_gathered(ggml_tensor* dst, int ith, int nth, void* groups) {
  const ggml_tensor* w = dst->src[0];
  const ggml_tensor* table = dst->src[1];
  const auto* idx = (const int32_t*)dst->src[2]->data;
  const int64_t G = (int64_t)(intptr_t)groups, K = w->ne[0], N = w->ne[1], P = dst->ne[1];
  const int64_t rows = table->ne[1];
  const size_t row_bytes = (size_t)table->nb[1];  // C elements of w's type, contiguous
  const int64_t p0 = P * ith / nth, p1 = P * (ith + 1) / nth;
  ThreadState& ts = thread_state();
  for (int64_t b = p0; b < p1; b += kGatherRows) {
    const int64_t rb = std::min(kGatherRows, p1 - b);
    char* a = (char*)ts.scratch((size_t)rb * G * row_bytes);
    for (int64_t r = 0; r < rb; ++r)
      for (int64_t g = 0; g < G; ++g) {
        const int32_t i = idx[(b + r) * G + g];
        char* to = a + (size_t)(r * G + g) * row_bytes;
        if (i >= 0 && i < rows)
          std::memcpy(to, (const char*)table->data + (size_t)i * row_bytes, row_bytes);
        else
          std::memset(to, 0, row_bytes);
      }
    product_rows(a, K, columns(w, 0, N), rb, (float*)dst->data + b * N, N, ts);
  }
}

bool probe(ggml_type type) {
  const char* env = std::getenv("CAPFORGE_ONEDNN");
  if (env && std::strcmp(env, "0") == 0) return false;
  try {
    // reference kernels are slower than ggml's: only oneDNN's JIT ones are worth it
    const auto pd = product(type == GGML_TYPE_BF16 ? dt::bf16 : dt::f32, 16, 64, 64, 64, 64);
    return std::strncmp(pd.impl_info_str(), "ref", 3) != 0;
  } catch (const dnnl::error&) {
    return false;
  }
}

}  // namespace

bool dense_uses_onednn(ggml_type type) {
  static const bool bf16 = probe(GGML_TYPE_BF16), f32 = probe(GGML_TYPE_F32);
  return type == GGML_TYPE_BF16 ? bf16 : type == GGML_TYPE_F32 ? f32 : false;
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

// ... and x f32 rows at one stride.
bool eligible(const ggml_tensor* w, const ggml_tensor* x) {
  if (!eligible_weights(w)) return false;
  return x->type == GGML_TYPE_F32 && x->ne[0] == w->ne[0] && x->nb[0] == sizeof(float) &&
         x->nb[1] % sizeof(float) == 0 && x->nb[2] == x->nb[1] * x->ne[1] && x->nb[3] == x->nb[2] * x->ne[2];
}

}  // namespace

ggml_tensor* dense(ggml_context* ctx, ggml_tensor* w, ggml_tensor* x, bool f32_on_ggml) {
  if ((f32_on_ggml && w->type == GGML_TYPE_F32) || !eligible(w, x)) return ggml_mul_mat(ctx, w, x);
  ggml_tensor* args[] = {w, x};
  return ggml_custom_4d(ctx, GGML_TYPE_F32, w->ne[1], x->ne[1], x->ne[2], x->ne[3], args, 2, compute,
                        GGML_N_TASKS_MAX, nullptr);
}

ggml_tensor* dense_gathered(ggml_context* ctx, ggml_tensor* w, ggml_tensor* table, ggml_tensor* idx,
                            int groups) {
  const int64_t C = table->ne[0], P = idx->ne[0] / groups;
  if (!eligible_weights(w) || table->type != GGML_TYPE_F32 || !ggml_is_contiguous(table) ||
      C * groups != w->ne[0] || idx->type != GGML_TYPE_I32 || !ggml_is_contiguous(idx) ||
      P * groups != ggml_nelements(idx))
    return gathered_on_ggml(ctx, w, table, idx, groups);
  // the table in the product's type once, so that each gathered row is a plain copy
  if (w->type != GGML_TYPE_F32) table = ggml_cast(ctx, table, w->type);
  ggml_tensor* args[] = {w, table, idx};
  return ggml_custom_4d(ctx, GGML_TYPE_F32, w->ne[1], P, 1, 1, args, 3, compute_gathered, GGML_N_TASKS_MAX,
                        (void*)(intptr_t)groups);
}

#else

bool dense_uses_onednn(ggml_type) { return false; }
ggml_tensor* dense_gathered(ggml_context* ctx, ggml_tensor* w, ggml_tensor* table, ggml_tensor* idx,
                            int groups) {
  return gathered_on_ggml(ctx, w, table, idx, groups);
}
ggml_tensor* dense(ggml_context* ctx, ggml_tensor* w, ggml_tensor* x, bool) {
  return ggml_mul_mat(ctx, w, x);
}

#endif

}  // namespace capforge::nn
