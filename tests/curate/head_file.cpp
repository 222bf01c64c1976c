#include "curate/head_file.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>

#include "io/npy_writer.h"

namespace capforge {

namespace {
HeadTensor float_tensor(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v,
                        const std::string& dtype) {
  HeadTensor t{name, dtype, std::move(shape), {}};
  for (float x : v) {
    if (dtype == "F32") {
      t.bytes.append((const char*)&x, 4);
    } else {
      uint32_t b;
      std::memcpy(&b, &x, 4);
      uint16_t h = dtype == "F16" ? float_to_half(x) : (uint16_t)(b >> 16);
      t.bytes.push_back((char)(h & 0xff));
      t.bytes.push_back((char)(h >> 8));
    }
  }
  return t;
}
}  // namespace

std::vector<HeadTensor> test_head_tensors(bool norm, const std::vector<int>& dims,
                                          const std::vector<int>& acts, const std::string& dtype,
                                          uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0, 1);
  std::uniform_real_distribution<float> u(0.5f, 2.0f);
  std::vector<HeadTensor> out;
  const int d = dims[0];
  float scale = 1;
  if (norm) {
    std::vector<float> mean(d), var(d);
    for (auto& m : mean) m = 0.05f * n(rng) / std::sqrt((float)d);
    for (auto& v : var) v = u(rng) / (float)d;  // a unit vector's components have variance ~1/d
    out.push_back(float_tensor("norm.mean", {d}, mean, dtype));
    out.push_back(float_tensor("norm.variance", {d}, var, dtype));
  } else {
    scale = std::sqrt((float)d);  // raw unit-norm inputs are small: scale the first layer up
  }
  for (size_t k = 0; k + 1 < dims.size(); ++k) {
    const int in = dims[k], o = dims[k + 1];
    std::vector<float> w((size_t)in * o), b((size_t)o);
    for (auto& x : w) x = n(rng) * (k == 0 ? scale : 1.f) * std::sqrt(2.f / (float)in);
    for (auto& x : b) x = 0.1f * n(rng);
    out.push_back(float_tensor("dense." + std::to_string(k) + ".weight", {o, in}, w, dtype));
    out.push_back(float_tensor("dense." + std::to_string(k) + ".bias", {o}, b, dtype));
  }
  HeadTensor a{"activations", "I64", {(int64_t)acts.size()}, {}};
  for (int x : acts) {
    int64_t v = x;
    a.bytes.append((const char*)&v, 8);
  }
  out.push_back(std::move(a));
  return out;
}

void write_head_file(const std::string& path, const std::vector<HeadTensor>& tensors) {
  nlohmann::json h = nlohmann::json::object();
  std::string data;
  for (auto& t : tensors) {
    h[t.name] = {{"dtype", t.dtype},
                 {"shape", t.shape},
                 {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  h["__metadata__"] = {{"format", "capforge-nsfw-head"}};
  std::string header = h.dump();
  while (header.size() % 8) header += ' ';
  uint64_t n = header.size();
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write((const char*)&n, 8);
  f.write(header.data(), (std::streamsize)header.size());
  f.write(data.data(), (std::streamsize)data.size());
  if (!f) throw std::runtime_error("cannot write " + path);
}

}  // namespace capforge
