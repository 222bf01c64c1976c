// The safetensors header parser: everything a file says about its tensors is checked here, so it
// is the one piece that reads untrusted bytes (fuzzed by tests/fuzz/safetensors_header_fuzz.cpp).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <stdexcept>

#include "models/safetensors.h"

namespace capforge {

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t available, size_t file_size) {
  if (available < 8 || file_size < 8)
    throw std::runtime_error("file is too short to be safetensors (< 8 bytes)");
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | bytes[i];  // little-endian u64
  if (len > file_size - 8)
    throw std::runtime_error(
        fmt::format("header length {} runs past the end of the {}-byte file", len, file_size));
  if (len > 100u << 20) throw std::runtime_error(fmt::format("header length {} is implausibly large", len));
  if (8 + len > available) throw std::runtime_error("header is truncated");
  auto j = nlohmann::json::parse(bytes + 8, bytes + 8 + len, nullptr, false);
  if (!j.is_object()) throw std::runtime_error("header is not a JSON object");
  SafetensorsHeader h;
  h.data_offset = 8 + len;
  const size_t data_size = file_size - h.data_offset;
  for (auto& item : j.items()) {
    const std::string& name = item.key();
    const auto& entry = item.value();
    if (name == "__metadata__") continue;
    auto bad = [&](const std::string& why) {
      return std::runtime_error(fmt::format("tensor '{}': {}", name, why));
    };
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets"))
      throw bad("entry needs dtype, shape and data_offsets");
    TensorView t;
    t.name = name;
    auto& dt = entry["dtype"];
    if (!dt.is_string()) throw bad("dtype is not a string");
    std::string d = dt.get<std::string>();
    size_t elem = 0;
    if (d == "F32")
      t.dtype = TensorDType::f32, elem = 4;
    else if (d == "F16")
      t.dtype = TensorDType::f16, elem = 2;
    else if (d == "BF16")
      t.dtype = TensorDType::bf16, elem = 2;
    else if (d == "I64")
      t.dtype = TensorDType::i64, elem = 8;
    else
      throw bad("dtype " + d + " is not supported (F32, F16, BF16, I64)");
    if (!entry["shape"].is_array()) throw bad("shape is not an array");
    uint64_t numel = 1;
    for (auto& s : entry["shape"]) {
      if (!s.is_number_unsigned()) throw bad("shape has a non-integer or negative dimension");
      uint64_t v = s.get<uint64_t>();
      if (v > (1ull << 40) || (v && numel > (1ull << 40) / v)) throw bad("shape is implausibly large");
      numel *= v;
      t.shape.push_back((int64_t)v);
    }
    auto& off = entry["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw bad("data_offsets must be two non-negative integers");
    uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > data_size)
      throw bad(fmt::format("data [{}, {}) lies outside the {}-byte data section (truncated file?)", begin,
                            end, data_size));
    if (end - begin != numel * elem)
      throw bad(fmt::format("holds {} bytes but {} {} values need {}", end - begin, numel, d, numel * elem));
    t.data = reinterpret_cast<const uint8_t*>(begin);  // relative; rebased by the caller
    t.nbytes = end - begin;
    h.tensors.emplace(name, std::move(t));
  }
  return h;
}

}  // namespace capforge
