// Transformer building blocks shared by every tower (CLIP, SigLIP, BLIP, ...), as ggml graph ops.
// Tensors are ggml-ordered: x is [D, T, B] (feature innermost).
#pragma once

#include <vector>

#include "ggml.h"

namespace capforge::nn {

enum class Activation { quick_gelu, gelu, gelu_tanh };

// One transformer stack's shape.
struct TowerConfig {
  int hidden = 0, heads = 0, layers = 0, ffn = 0;
  float ln_eps = 1e-5f;
  Activation act = Activation::quick_gelu;
  int head_dim() const { return heads ? hidden / heads : 0; }
};

struct LayerNorm {
  ggml_tensor *w = nullptr, *b = nullptr;
};

// y = W x (+ b); `b` may be null.
struct Linear {
  ggml_tensor *w = nullptr, *b = nullptr;
};

// A pre-LN encoder layer: x + attn(ln1(x)), then + mlp(ln2(x)).
struct EncoderLayer {
  LayerNorm ln1, ln2;
  Linear q, k, v, o, fc1, fc2;
};

// `cpu_kernel`: one CPU op (layer_norm_cpu.h) where it takes the operands, else ggml's three ops.
ggml_tensor* layer_norm(ggml_context* ctx, ggml_tensor* x, const LayerNorm& n, float eps,
                        bool cpu_kernel = false);
ggml_tensor* linear(ggml_context* ctx, ggml_tensor* x, const Linear& l);
// Exact activations unless `fast` (ggml's table-based GELUs, which round through f16; for exact
// GELU that is the tanh form, within 1e-3 of erf's, below bf16's rounding of the activations).
// quick_gelu is exact (to float rounding) on both paths.
ggml_tensor* activation(ggml_context* ctx, ggml_tensor* x, Activation act, bool fast);

// Scaled dot-product attention: q [hd, H, Tq, B], k and v [hd, H, Tk, B] -> [hd*H, Tq, B].
// With `cpu` (the graph runs on ggml's CPU backend) attention_cpu.h's f32 kernel on either path;
// else `fast`: flash attention with f16 K/V (a causal mask, f16 [Tk, Tq], is then required), or
// ggml's f32 ops.
ggml_tensor* attention(ggml_context* ctx, ggml_tensor* q, ggml_tensor* k, ggml_tensor* v, bool causal,
                       ggml_tensor* mask, bool fast, bool cpu = false);

// A pre-LN encoder layer on x [D, T, B].
ggml_tensor* encoder_layer(ggml_context* ctx, ggml_tensor* x, const EncoderLayer& l, const TowerConfig& t,
                           bool causal, ggml_tensor* mask, bool fast);

}  // namespace capforge::nn
