// T5's self-attention as CPU ops (f32; unscaled scores plus a position bias; AVX-512 where the
// head width is a multiple of 16, plain loops elsewhere) that read the keys and values where they
// lie: the encoder's straight from its projections, each decode step's from the cache rows of each
// sequence (no permuted, padded or gathered copies).
//
// Contract: each (query, head) pair is computed by one thread from its own query row, its own
// caption's or sequence's keys and values (only those: never padding) and its bias row; its
// result never depends on the other captions or entries, the padding, the span or the thread
// count.
#pragma once

#include "ggml.h"

namespace capforge::repair {

// q [A = H * hd, n] (f32, contiguous): each entry's query; kc, vc [A, max_len * slots] (f32): the
// caches, the step's own rows already written (pass the ggml_set_rows results, so the op runs
// after them); rows [n] i64: entry i's cache row, slot * max_len + pos (it attends to rows
// slot * max_len .. that row); bias [span, 1, H, n] f32: the position bias per key (span > every
// pos). Returns [A, n]: softmax_j(q . k_j + bias_j) v_j per head, unscaled (T5).
ggml_tensor* t5_cached_attention(ggml_context* ctx, ggml_tensor* q, ggml_tensor* kc, ggml_tensor* vc,
                                 ggml_tensor* rows, ggml_tensor* bias, int max_len);

// The decoder's cross-attention: q [A, n] (f32, rows of A contiguous): each entry's query; ck, cv
// [hd, Np, H, captions] (f32): the cross-attention cache (caption slot c's keys of head h at rows
// 0..Np-1 of [.., h, c]); idx [2 * n] i32: per entry its caption slot and its caption's key count
// (1..Np). Returns [A, n]: softmax_j(q . k_j) v_j per head over those keys only.
ggml_tensor* t5_cross_attention(ggml_context* ctx, ggml_tensor* q, ggml_tensor* ck, ggml_tensor* cv,
                                ggml_tensor* idx);

// q, k, v [A = H * hd, Le, B] (f32, contiguous): a chunk of B captions padded to Le tokens; bias
// [Lk >= Le, Le, H] f32 (key innermost); lens [B] i32, 1..Le: caption b's tokens, its only keys.
// Returns [A, Le, B]: every query (padding ones too) over its caption's keys, per head.
ggml_tensor* t5_encoder_attention(ggml_context* ctx, ggml_tensor* q, ggml_tensor* k, ggml_tensor* v,
                                  ggml_tensor* bias, ggml_tensor* lens);

}  // namespace capforge::repair
