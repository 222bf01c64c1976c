// Matrix products against a weight matrix, y [N, M...] = W [K, N] x [K, M...], for every tower
// (ViT, ResNet, text, T5). On a CPU backend with bf16 or f32 weights they run on oneDNN's matmul
// (its brgemm kernels reach 2-20x ggml's bf16/f32 products at the towers' shapes); anything else
// (other weight types, weights off the host, a build without oneDNN, a CPU oneDNN cannot serve)
// takes ggml_mul_mat.
//
// Contract on the oneDNN path: each output row depends only on its input row and W, never on how
// many rows run together or on the thread count. ggml's threads split the rows (never the
// columns: oneDNN's bits depend on a call's column count, not on its row count); each thread
// calls oneDNN on one thread, in blocks of 256 rows with a last block zero-padded to a multiple
// of 8 rows (tests/models/dense_test.cpp holds it to that). ggml's own product differs for a lone
// row. If oneDNN ever fails at run time (out of memory), that and every later product is a plain
// loop, with a warning.
// bf16 weights take their input rounded to bf16 (as ggml's product does), f32 weights take it as is.
// int8 weights (GGML_TYPE_I8 views of packed rows, see int8.h; nn::WeightSet makes them) take each
// input row quantised to u8 on its own, with integer products: oneDNN's on CPUs with VNNI (the only
// place they are loaded; dense_uses_onednn(GGML_TYPE_I8)), never ggml's, which has none.
#pragma once

#include "ggml.h"

namespace capforge::nn {

// `bias` (f32 [N], or null) is added to every row, inside the op where it can be (in cache, no
// pass of its own). `f32_on_ggml`: f32 weights keep ggml's product, for a graph whose f32 results
// must equal another ggml program's bit for bit (the T5 engine against llama.cpp's).
ggml_tensor* dense(ggml_context* ctx, ggml_tensor* w, ggml_tensor* x, ggml_tensor* bias = nullptr,
                   bool f32_on_ggml = false);

// dense() with more of what follows it done inside the op, on the rows while they are in cache:
// y = W x + bias, then x * sigmoid(1.702 x) with `quick_gelu` (a vectorised exp: for the fast
// path), then + residual (shaped like y). Where the op cannot run these become ggml ops.
struct DenseFused {
  ggml_tensor* bias = nullptr;
  bool quick_gelu = false;
  ggml_tensor* residual = nullptr;
};
ggml_tensor* dense(ggml_context* ctx, ggml_tensor* w, ggml_tensor* x, const DenseFused& f);

// x * sigmoid(1.702 x) as ggml ops (exact to float rounding).
ggml_tensor* quick_gelu_ops(ggml_context* ctx, ggml_tensor* x);

// y [N, P] = W [G*C, N] x cols, where column p of cols is the G rows ([C] each) of `table` (f32,
// contiguous, viewed as rows of C) at idx[p*G .. p*G+G-1] (i32) side by side, an index outside the
// table standing for a zero row: a convolution's taps gathered and multiplied in one op. On
// oneDNN the [G*C, P] matrix never exists whole (each thread gathers a block of rows at a time, in
// W's type); otherwise ggml_get_rows over the table with a zero row appended (the index of the
// padding must then be exactly the table's row count) and ggml_mul_mat. Same contract as dense().
ggml_tensor* dense_gathered(ggml_context* ctx, ggml_tensor* w, ggml_tensor* table, ggml_tensor* idx,
                            int groups, ggml_tensor* bias = nullptr);

// f32 -> bf16 rounding to nearest even, 16 at a time on CPUs with AVX512-BF16 (which flush
// subnormal inputs to zero; ggml's own conversion goes one element at a time).
void to_bf16(const float* x, ggml_bf16_t* y, int64_t n);

// Whether w's data lives in host memory (a graph over it then runs on ggml's CPU backend).
bool weights_on_host(const ggml_tensor* w);

// Whether dense() may use oneDNN for this weight type on this build and CPU. CAPFORGE_ONEDNN=0 in
// the environment turns it off (read once), for A/B runs and for bisecting numeric differences.
bool dense_uses_onednn(ggml_type weight_type);

}  // namespace capforge::nn
