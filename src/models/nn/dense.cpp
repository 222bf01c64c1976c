#include "models/nn/dense.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "ggml-backend.h"
#include "models/ggml_util.h"
#include "models/nn/epilogue.h"
#include "models/nn/onednn_rows.h"

#if defined(__x86_64__)
#include <immintrin.h>
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
using namespace onednn;

namespace {

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
  if (!failed()) try {
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
  if (!failed()) try {
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
  intptr_t flags = quick_gelu ? (intptr_t)kQuickGelu : 0;
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
