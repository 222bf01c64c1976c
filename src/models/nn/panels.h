// Products with f32, f16 or bf16 weights in f32 arithmetic, at a decoder step's few rows (one
// token per live sequence) and at an encoder's many, where ggml's kernels reach a third of these
// (and round the input to f16 for f16 weights) and oneDNN would re-lay the weights out at every
// call. The weights are laid out once, at load, in panels of 32 output channels ([K][32] values
// each, in their stored type), so a product streams each weight once per block of rows, and a
// tile of up to 12 input rows x 32 channels stays in registers for the whole of K. f16 and bf16
// weights are widened to f32 in registers (exactly).
//
// Contract: each output is one f32 fused multiply-add chain over k = 0..K-1 in order, of the f32
// input and the weight's exact f32 value (then + the residual), so a row's result depends only on
// that row and the weights: never on the batch, the tiling or the thread count. CPUs without
// AVX-512 get plain loops with std::fma in the same order (the same bits).
#pragma once

#include <cstdint>
#include <memory>

#include "ggml.h"
#include "models/ggml_util.h"

namespace capforge::nn {

struct Panels {
  ggml_type type = GGML_TYPE_F32;        // of the values: F32, F16 or BF16
  int64_t K = 0, N = 0;                  // input width, output channels
  int64_t panels = 0;                    // ceil(N / 32) (zero channels past N)
  std::unique_ptr<void, FreeDeleter> w;  // [panels][K][32] values (alloc_huge)
  size_t bytes() const { return (size_t)(panels * K * 32) * ggml_type_size(type); }
};

// Whether pack_panels() takes this weight type (F32, F16, BF16).
bool panels_take(ggml_type type);

// Whether panels are worth making on this CPU: AVX-512 (elsewhere the plain loops are slower than
// ggml's kernels), and not turned off with CAPFORGE_PANELS=0 in the environment (A/B runs; a model
// too large to copy). Read once.
bool panels_pay();

// A 2-D ggml matrix in host memory, [K, N] in ggml's order (ne0 = K inputs per row), of a type
// panels_take() accepts -> its panels in the same type, on `threads` threads (0: available_cpus(),
// the CPUs this process may use). std::invalid_argument for any other type.
Panels pack_panels(const ggml_tensor* w, int threads = 0);

// y [N, M] = w x [K, M] (f32, contiguous), plus `residual` ([N, M] f32, or null), as one ggml op
// (threads take even shares of (row block, panel) items). `w` must outlive the graph.
ggml_tensor* dense_panels(ggml_context* ctx, const Panels& w, ggml_tensor* x,
                          ggml_tensor* residual = nullptr);

}  // namespace capforge::nn
