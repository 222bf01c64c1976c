// int8 products for few rows at a time (a decoder's steps: one token per live sequence), where
// nn::dense's oneDNN path spends its time re-laying the weights out for every call. The weights
// are laid out once, at load, in the blocks VNNI's dot-product instruction reads (16 output
// channels x 4 inputs per 64 bytes), so a step reads each weight byte once, from the thread that
// owns its columns; each input row is read from L1 for the 32 columns at a time that a thread
// holds in registers.
//
// The scheme is int8.h's: per-channel symmetric int8 weights (scale max|w| / 127), each input row
// quantised on its own to u8 (quantize_row_u8), exact integer sums, one float rescale per output
// (int8_rescale_row's expression). Integer sums do not depend on their order, so the result of a
// row depends only on that row and the weights: never on the batch, the blocking or the thread
// count (threads split the columns). CPUs without AVX512-VNNI get plain loops (the same bits).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "ggml.h"
#include "models/ggml_util.h"

namespace capforge::nn {

struct Int8Blocked {
  int64_t K = 0, N = 0;                    // input width, output channels
  int64_t k4 = 0;                          // ceil(K / 4): groups of 4 inputs (a zero-padded tail)
  int64_t blocks = 0;                      // ceil(N / 32) * 2: blocks of 16 channels (zero channels past N)
  std::unique_ptr<int8_t, FreeDeleter> q;  // [blocks][k4][16][4] int8 (alloc_huge)
  std::vector<float> scale;                // per channel (blocks * 16; 0 past N)
  std::vector<int32_t> sum;                // per channel: the sum of its q
  size_t bytes() const { return (size_t)(blocks * k4 * 64); }
};

// w [N, K] (f32, rows of K: one output channel each) -> the blocked layout. Non-finite weights give
// NaN outputs in that channel (int8.h), never a crash. Packing runs on `threads` threads (0:
// available_cpus(), the CPUs this process may use; the layout does not depend on it).
Int8Blocked pack_int8_blocked(const float* w, int64_t K, int64_t N, int threads = 0);

// A 2-D ggml matrix in host memory, [K, N] in ggml's order (ne0 = K inputs per row), of any type
// ggml can dequantise (f32, f16, bf16, q8_0, q4_k...) -> the blocked layout (each row dequantised
// to f32 as it is packed, on `threads` threads as above). std::invalid_argument for a type without a
// dequantiser.
Int8Blocked pack_int8_blocked(const ggml_tensor* w, int threads = 0);

// y [N, M] = w x [K, M] (f32, rows contiguous), plus `residual` ([N, M] f32, or null), as one ggml
// op pair: x's rows quantised (rows split between threads), then the products (columns split).
// `w` must outlive the graph.
ggml_tensor* dense_int8_blocked(ggml_context* ctx, const Int8Blocked& w, ggml_tensor* x,
                                ggml_tensor* residual = nullptr);

// Whether the products use AVX512-VNNI here (else plain loops, far slower, the same bits).
bool int8_blocked_vnni();

}  // namespace capforge::nn
