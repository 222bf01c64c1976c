// The int8 scheme of nn::dense: per-channel symmetric int8 weights, per-row (per-token) asymmetric
// u8 activations quantised on the fly, integer products (exact: int32 sums of u8 x s8), then one
// float rescale per output. Everything here is a plain function of its inputs, so a row's result
// never depends on the batch, the blocking or the thread count.
//
// Packed weights ("int8 rows"): each of the N output channels is K int8 values q (w ~= q * scale,
// scale = max|w| / 127) followed by kInt8Tail bytes: the scale (f32) and the sum of the row's q
// (i32), so a tensor's rows are K + kInt8Tail bytes apart.
//
// Non-finite values are not hidden: a weight row holding NaN or +-inf gets a NaN scale, and so
// does an activation row, so every output they touch is NaN, as in f32 arithmetic (the callers'
// non-finite checks then see a broken model or input).
#pragma once

#include <cstdint>

namespace capforge::nn {

constexpr int64_t kInt8Tail = 8;

// w [N, K] (f32, rows of K) -> out: N rows of K + kInt8Tail bytes as above.
void pack_int8_rows(const float* w, int64_t K, int64_t N, int8_t* out);

// An activation row's quantisation: x ~= (q - zero) * scale, q in [0, 255]; the range always holds 0.
struct RowQuant {
  float scale = 1;
  int32_t zero = 0;
};

// x [K] -> q [K]; AVX-512 where the CPU has it, bit-identical to the scalar code for finite x.
RowQuant quantize_row_u8(const float* x, int64_t K, uint8_t* q);

// The plain integer product of one quantised row with packed weights w (N rows, `ldw` bytes apart):
// acc[n] = sum_k q[k] * w_n[k].
void int8_row_product(const uint8_t* q, const int8_t* w, int64_t K, int64_t N, int64_t ldw, int32_t* acc);

// Output channel n's scale and sum of q, read from packed weights' row tails.
void int8_channel_terms(const int8_t* w, int64_t K, int64_t N, int64_t ldw, float* scale, int32_t* sum);

// y[n] = float(acc[n] - zero * sum[n]) * (a.scale * scale[n]) (+ bias[n] where bias is not null)
// for one row (AVX-512 where the CPU has it, bit-identical to the scalar code).
void int8_rescale_row(const int32_t* acc, RowQuant a, const float* scale, const int32_t* sum,
                      const float* bias, int64_t N, float* y);

}  // namespace capforge::nn
