// NumPy .npy files (format version 1.0) of 2-D float16 arrays, as clip-retrieval writes its
// embedding shards.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace capforge {

// IEEE 754 binary16 of `f`, rounded to nearest even (NaN stays NaN, overflow becomes infinity).
uint16_t float_to_half(float f);
// The value of a binary16 (exact).
float half_to_float(uint16_t h);

// Bytes of a version 1.0 .npy file holding a C-order float16 array of shape [rows, cols]:
// magic, header dict ({'descr': '<f2', 'fortran_order': False, 'shape': (rows, cols), }) padded
// with spaces and a newline to a multiple of 64 bytes, then the little-endian data.
// `data` holds rows * cols values (throws std::invalid_argument otherwise).
std::string npy_f16_bytes(const std::vector<uint16_t>& data, size_t rows, size_t cols);

}  // namespace capforge
