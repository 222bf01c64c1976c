// Test support: generated NSFW head files in the documented safetensors layout
// (src/models/safety/nsfw_head.h), written without capforge's reader.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace capforge {

struct HeadTensor {
  std::string name, dtype;  // "F32", "F16", "BF16", "I64"
  std::vector<int64_t> shape;
  std::string bytes;  // little-endian data
};

// A random head: dims = {input, layer 1 outputs, ..., 1}; acts per layer (0 none, 1 relu, 2
// sigmoid); weights scaled so that unit-norm inputs give outputs away from saturation.
std::vector<HeadTensor> test_head_tensors(bool norm, const std::vector<int>& dims,
                                          const std::vector<int>& acts, const std::string& dtype,
                                          uint32_t seed);
void write_head_file(const std::string& path, const std::vector<HeadTensor>& tensors);

}  // namespace capforge
