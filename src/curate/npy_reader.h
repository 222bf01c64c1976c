// A reader for NumPy .npy files of 2-D float matrices (clip-retrieval's img_emb_{i}.npy).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace capforge::curate {

struct NpyMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<float> data;  // rows * cols, row-major
};

// Reads `path`: format versions 1.0, 2.0 and 3.0, dtype '<f2' (half) or '<f4', C order, shape
// (rows, cols) (a 1-D shape (n,) is read as n x 1). Half values are widened exactly to float.
// Throws std::runtime_error naming the file and what is wrong (not an npy file, another dtype,
// Fortran order, a truncated or oversized body, a malformed header) without reading past the file.
NpyMatrix read_npy(const std::string& path);

// Parses the header dictionary text; exposed for tests. Throws like read_npy (without the path).
struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};
NpyHeader parse_npy_header(const std::string& dict);

// IEEE half -> float (subnormals, infinities and NaN included).
float half_to_float(uint16_t h);

}  // namespace capforge::curate
