// What nn::dense applies to a block of its output rows inside the op, right after the product
// while the rows are in cache, instead of one graph op (and one pass over memory) each: the bias,
// then quick-GELU, then a residual add. Each step is per element, so rows stay independent.
#pragma once

#include <cstdint>

namespace capforge::nn {

struct RowEpilogue {
  const float* bias = nullptr;     // [n], added first
  bool quick_gelu = false;         // then x * sigmoid(1.702 x) (vectorised exp: the fast path's numerics)
  const char* residual = nullptr;  // then + the residual: row r at residual + r * residual_stride bytes
  int64_t residual_stride = 0;

  // The same steps for the rows from row r on.
  RowEpilogue from_row(int64_t r) const {
    RowEpilogue e = *this;
    if (e.residual) e.residual += r * residual_stride;
    return e;
  }
  RowEpilogue without_bias() const {
    RowEpilogue e = *this;
    e.bias = nullptr;
    return e;
  }
  bool empty() const { return !bias && !quick_gelu && !residual; }
};

// y [rows, n] (rows ldc floats apart): each row gets e's steps in order.
void finish_rows(float* y, int64_t rows, int64_t ldc, int64_t n, const RowEpilogue& e);

}  // namespace capforge::nn
