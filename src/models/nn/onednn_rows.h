// nn::dense's products on oneDNN (builds with CAPFORGE_HAVE_ONEDNN only): rows against a weight
// matrix in blocks of a few fixed shapes, per-thread state, the int8 scheme's rows, the plain
// loop every product falls back to once oneDNN failed, and the probe that says which weight types
// oneDNN serves here. dense.cpp's ggml ops split their rows between threads and call these.
//
// Contract (dense.h's): a row's result depends only on that row and the weights, never on how many
// rows a call has (blocks of kBlockRows rows, a last partial block zero-padded to a multiple of 8).
#pragma once

#ifdef CAPFORGE_HAVE_ONEDNN

#include <omp.h>

#include <cstddef>
#include <cstdint>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <vector>

#include "ggml.h"
#include "models/nn/epilogue.h"
#include "models/nn/int8.h"

namespace capforge::nn::onednn {

// Per compute thread: its stream and its block of product inputs (rows rounded to bf16, or
// gathered rows).
struct ThreadState {
  std::optional<dnnl::stream> stream;  // made on first use (inside the op's try)
  std::vector<char> buf;
  std::vector<char> pad_a, pad_y;  // a last block rounded up to kRowQuantum rows, and its result
  // int8: a block's quantised rows, their quantisation and integer products; the weights' terms
  std::vector<uint8_t> q;
  std::vector<RowQuant> rq;
  std::vector<int32_t> acc, sum;
  std::vector<float> scale;
  void* scratch(size_t bytes) {
    if (buf.size() < bytes) buf.resize(bytes);
    return buf.data();
  }
};

ThreadState& thread_state();

// For the op's duration, OpenMP regions this thread opens get one thread: oneDNN then runs on the
// calling ggml thread alone (inside ggml's parallel region it would anyway; in a one-thread
// compute, which ggml runs outside any region, it would start its own team and could split K).
struct OneOmpThread {
  int saved = omp_get_max_threads();
  OneOmpThread() { omp_set_num_threads(1); }
  ~OneOmpThread() { omp_set_num_threads(saved); }
};

// Set once oneDNN failed at run time (never expected: out of memory): every later product is
// the plain one, so results do not depend on which calls failed.
bool failed();
// Records a failure (warns the first time).
void note_failure(const char* what);

// A weight matrix as oneDNN takes it: n columns of K (ggml's rows), ldw elements apart (int8: K
// values and the row's tail, see int8.h).
struct WeightCols {
  const char* data;
  int64_t K, n, ldw;
  ggml_type type;
  bool bf16;
  size_t in_size() const { return type == GGML_TYPE_I8 ? 1 : bf16 ? 2 : 4; }  // an input element's bytes
};

WeightCols columns(const ggml_tensor* w);

// The plain product of one row, for after a failure: y [w.n] = round(x) [K] x w, then e's steps, x
// in f32 (rounded to bf16 for bf16 weights, as the oneDNN path does).
void plain_row(const float* x, const WeightCols& w, float* y, const RowEpilogue& e);

// oneDNN compiles a kernel for each new shape (0.5-2 ms; then cached): rows go in blocks of
// kBlockRows, and a last partial block is rounded up to kRowQuantum rows (zero rows, results
// dropped), so that a weight meets at most kBlockRows / kRowQuantum + 1 shapes whatever the batch.
constexpr int64_t kBlockRows = 256, kRowQuantum = 8;

// y [mm, w.n] (rows ldc apart; f32, int32 for int8) = a [mm, K] (rows lda elements apart; w's input
// type) x w, then (f32 results only) e's steps on each block while it is in cache. Throws
// dnnl::error.
void product_rows(const void* a, int64_t lda, const WeightCols& w, int64_t mm, void* y, int64_t ldc,
                  ThreadState& ts, const RowEpilogue& e = {});

// int8 weights: y [mm, w.n] (rows ldc apart) = x [mm, K] (f32 rows ldx bytes apart) x w, each row
// quantised on its own (int8.h), the integer products on oneDNN, or in plain loops once it failed
// (the same integers, so the same bits).
void int8_rows_any(const char* x, int64_t ldx, const WeightCols& w, int64_t mm, float* y, int64_t ldc,
                   const RowEpilogue& ep);

// Whether oneDNN serves products with weights of `type` here with JIT kernels (int8: exactly, at
// the scheme's extremes). CAPFORGE_ONEDNN=0 in the environment: never.
bool probe(ggml_type type);

}  // namespace capforge::nn::onednn

#endif
