#include "models/safetensors.h"

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
    case TensorDType::i64:
      return "I64";
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
    case TensorDType::i64:
      for (size_t i = 0; i < out.size(); ++i) {
        int64_t v;
        std::memcpy(&v, data + i * 8, 8);
        out[i] = (float)v;
      }
      break;
  }
  return out;
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
  maps_.push_back(std::make_unique<MappedFile>(path));
  const uint8_t* addr = maps_.back()->data();
  const size_t size = maps_.back()->size();
  SafetensorsHeader h;
  try {
    h = parse_safetensors_header(addr, size, size);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{}: {}", path, e.what()));
  }
  const uint8_t* base = addr + h.data_offset;
  for (auto& [name, t] : h.tensors) {
    TensorView v = t;
    v.data = base + reinterpret_cast<uintptr_t>(t.data);
    if (!tensors_.emplace(name, std::move(v)).second)
      throw std::runtime_error(fmt::format("{}: tensor '{}' is stored twice", path, name));
  }
}

SafetensorsModel::~SafetensorsModel() = default;

const TensorView* SafetensorsModel::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

}  // namespace capforge
