// Scaled dot-product attention as one CPU op, for the towers' short sequences (tens to a few
// hundred tokens), f32 throughout (exp within 2 ulp). ggml's flash attention rounds K/V to f16 and calls expf
// once per score, which made attention a fifth of a ViT-B/32's image time; here the scores of a query come
// from K transposed in 16-wide vectors and their exponentials from a vectorised exp (AVX-512; plain
// loops elsewhere).
//
// Contract: each (batch, head) pair is one task for one thread, and a query's result depends only
// on its own q row, the pair's k and v, and its mask row: never on the batch size or thread count.
#pragma once

#include "ggml.h"

namespace capforge::nn {

// q [hd, H, Tq, B], k and v [hd, H, Tk, B] (f32, elements contiguous, any row strides); mask null
// or f16 [Tk, Tq] added to the scores (0 / -inf); `causal`: query i sees keys 0..i only (the same
// bits as a causal mask). Returns softmax(scale q k^T + mask) v as [hd*H, Tq, B]. A query whose
// every key is masked gets zeros. Non-finite scores (NaN weights) give a meaningless row, which may
// differ between the AVX-512 and plain code; never a crash.
ggml_tensor* attention_cpu(ggml_context* ctx, ggml_tensor* q, ggml_tensor* k, ggml_tensor* v,
                           ggml_tensor* mask, float scale, bool causal = false);

// Whether attention_cpu takes these operands (else use ggml's ops).
bool attention_cpu_supports(const ggml_tensor* q, const ggml_tensor* k, const ggml_tensor* v,
                            const ggml_tensor* mask);

}  // namespace capforge::nn
