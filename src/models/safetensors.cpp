#include "models/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>

#include "ggml.h"

namespace fs = std::filesystem;

namespace capforge {

const char* dtype_name(TensorDType t) {
  switch (t) {
    case TensorDType::f32:
      return "F32";
    case TensorDType::f16:
      return "F16";
    case TensorDType::bf16:
      return "BF16";
  }
  return "?";
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::vector<float> TensorView::to_f32() const {
  std::vector<float> out((size_t)numel());
  switch (dtype) {
    case TensorDType::f32:
      std::memcpy(out.data(), data, out.size() * 4);
      break;
    case TensorDType::f16:
      ggml_fp16_to_fp32_row((const ggml_fp16_t*)data, out.data(), (int64_t)out.size());
      break;
    case TensorDType::bf16:
      ggml_bf16_to_fp32_row((const ggml_bf16_t*)data, out.data(), (int64_t)out.size());
      break;
  }
  return out;
}

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
  for (auto& [name, entry] : j.items()) {
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
    else
      throw bad("dtype " + d + " is not supported (F32, F16, BF16)");
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

std::unique_ptr<SafetensorsModel> SafetensorsModel::open_file(const std::string& path) {
  std::unique_ptr<SafetensorsModel> m(new SafetensorsModel());
  m->map_file(path);
  return m;
}

std::unique_ptr<SafetensorsModel> SafetensorsModel::open_dir(const std::string& dir) {
  std::unique_ptr<SafetensorsModel> m(new SafetensorsModel());
  fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(index)) {
    std::ifstream f(index);
    auto j = nlohmann::json::parse(f, nullptr, false);
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw std::runtime_error(index.string() + ": not a safetensors index (no weight_map)");
    std::set<std::string> shards;
    for (auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string())
        throw std::runtime_error(index.string() + ": weight_map entry for " + name + " is not a file name");
      shards.insert(file.get<std::string>());
    }
    for (auto& s : shards) m->map_file((fs::path(dir) / s).string());
    for (auto& [name, file] : j["weight_map"].items())
      if (!m->find(name))
        throw std::runtime_error(fmt::format("{}: tensor '{}' is listed for {} but not stored there",
                                             index.string(), name, file.get<std::string>()));
    return m;
  }
  fs::path single = fs::path(dir) / "model.safetensors";
  if (!fs::exists(single))
    throw std::runtime_error(
        fmt::format("{} has neither model.safetensors nor model.safetensors.index.json", dir));
  m->map_file(single.string());
  return m;
}

void SafetensorsModel::map_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size <= 0) {
    ::close(fd);
    throw std::runtime_error(fmt::format("{} is empty or unreadable", path));
  }
  size_t size = (size_t)st.st_size;
  void* addr = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (addr == MAP_FAILED)
    throw std::runtime_error(fmt::format("cannot map {}: {}", path, std::strerror(errno)));
  maps_.push_back({addr, size});
  SafetensorsHeader h;
  try {
    h = parse_safetensors_header((const uint8_t*)addr, size, size);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{}: {}", path, e.what()));
  }
  const uint8_t* base = (const uint8_t*)addr + h.data_offset;
  for (auto& [name, t] : h.tensors) {
    TensorView v = t;
    v.data = base + reinterpret_cast<uintptr_t>(t.data);
    if (!tensors_.emplace(name, std::move(v)).second)
      throw std::runtime_error(fmt::format("{}: tensor '{}' is stored twice", path, name));
  }
}

SafetensorsModel::~SafetensorsModel() {
  for (auto& m : maps_) munmap(m.addr, m.size);
}

const TensorView* SafetensorsModel::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

}  // namespace capforge
