// Layer normalisation with its affine as one CPU op: y = (x - mean) / sqrt(var + eps) * w + b per
// row, in one pass over memory (ggml's norm, mul and add are three ops and four passes). Used on
// the fast path; each row depends only on itself.
#pragma once

#include "ggml.h"

namespace capforge::nn {

// x [D, rows...] f32 (rows at one stride), w and b f32 [D] -> [D, rows...] contiguous.
ggml_tensor* layer_norm_cpu(ggml_context* ctx, ggml_tensor* x, ggml_tensor* w, ggml_tensor* b, float eps);

// Whether layer_norm_cpu takes these operands.
bool layer_norm_cpu_supports(const ggml_tensor* x, const ggml_tensor* w, const ggml_tensor* b);

}  // namespace capforge::nn
