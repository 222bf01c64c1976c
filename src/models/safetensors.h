// Memory-mapped safetensors files (single or sharded through model.safetensors.index.json).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"

namespace capforge {

enum class TensorDType { f32, f16, bf16, i64 };  // i64: counters such as BatchNorm's num_batches_tracked
const char* dtype_name(TensorDType t);

struct TensorView {
  std::string name;
  TensorDType dtype = TensorDType::f32;
  std::vector<int64_t> shape;  // as stored (row-major, outermost first)
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  int64_t numel() const;
  // Converts to f32 (any stored dtype).
  std::vector<float> to_f32() const;
};

struct SafetensorsHeader {
  std::map<std::string, TensorView> tensors;  // data pointers relative to the data section start
  size_t data_offset = 0;                     // 8 + header length
};

// Parses the 8-byte length + JSON header of a safetensors file of `file_size` bytes. Validates
// every entry (dtype, shape, offsets inside the file, no overlap beyond bounds) and throws
// std::runtime_error naming the problem. `bytes` must hold at least the header.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t available, size_t file_size);

// A model's tensors across one or more mapped files.
class SafetensorsModel {
 public:
  // `dir`: a directory with model.safetensors, or model.safetensors.index.json + shards.
  static std::unique_ptr<SafetensorsModel> open_dir(const std::string& dir);
  static std::unique_ptr<SafetensorsModel> open_file(const std::string& path);
  ~SafetensorsModel();

  const TensorView* find(const std::string& name) const;
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }

 private:
  SafetensorsModel() = default;
  void map_file(const std::string& path);
  std::vector<std::unique_ptr<MappedFile>> maps_;
  std::map<std::string, TensorView> tensors_;
};

}  // namespace capforge
