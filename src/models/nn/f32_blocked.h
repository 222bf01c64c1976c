// f32 products for few rows at a time (a decoder's steps: one token per live sequence) with f32
// weights, where ggml's kernels reach about half the machine's f32 peak and oneDNN would re-lay
// the weights out at every call. The weights are laid out once, at load, in panels of 32 output
// channels ([K][32] floats each), so a step streams each weight once, from the thread that owns
// its panel, and a tile of up to 12 input rows x 32 channels stays in registers for the whole of K.
//
// Contract: each output is one f32 fused multiply-add chain over k = 0..K-1 in order (then + the
// residual), so a row's result depends only on that row and the weights: never on the batch, the
// tiling or the thread count (threads split the panels). CPUs without AVX-512 get plain loops with
// std::fma in the same order (the same bits).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "ggml.h"

namespace capforge::nn {

struct F32Blocked {
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  int64_t K = 0, N = 0;            // input width, output channels
  int64_t panels = 0;              // ceil(N / 32) (zero channels past N)
  std::unique_ptr<float, Free> w;  // [panels][K][32], 64-byte aligned
  size_t bytes() const { return (size_t)(panels * K * 32) * sizeof(float); }
};

// A 2-D f32 ggml matrix in host memory, [K, N] in ggml's order (ne0 = K inputs per row) -> the
// panels (on every core). std::invalid_argument for any other type.
F32Blocked pack_f32_blocked(const ggml_tensor* w);

// y [N, M] = w x [K, M] (f32, contiguous), plus `residual` ([N, M] f32, or null), as one ggml
// op (the panels split between threads, every row). `w` must outlive the graph.
ggml_tensor* dense_f32_blocked(ggml_context* ctx, const F32Blocked& w, ggml_tensor* x,
                               ggml_tensor* residual = nullptr);

}  // namespace capforge::nn
