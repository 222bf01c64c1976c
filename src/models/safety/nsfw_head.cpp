#include "models/safety/nsfw_head.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "models/safetensors.h"

namespace capforge {

namespace {

std::vector<float> read_f32(const SafetensorsModel& st, const std::string& path, const std::string& name,
                            const std::vector<int64_t>& shape) {
  const TensorView* t = st.find(name);
  if (!t) throw std::runtime_error(fmt::format("{}: tensor '{}' is missing", path, name));
  if (t->dtype == TensorDType::i64)
    throw std::runtime_error(fmt::format("{}: tensor '{}' is I64; expected F32, F16 or BF16", path, name));
  if (t->shape != shape) {
    auto dims = [](const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); };
    throw std::runtime_error(
        fmt::format("{}: tensor '{}' has shape {}; expected {}", path, name, dims(t->shape), dims(shape)));
  }
  auto v = t->to_f32();
  for (float x : v)
    if (!std::isfinite(x))
      throw std::runtime_error(fmt::format("{}: tensor '{}' holds NaN or infinity", path, name));
  return v;
}

// Keras Normalization's scale: 1 / max(sqrt(variance), 1e-7) per dimension (a zero variance gives
// 1e7, not infinity). Throws on a negative or non-finite variance.
std::vector<float> inverse_std(const std::vector<float>& variance, const std::string& where) {
  std::vector<float> out;
  out.reserve(variance.size());
  for (float v : variance) {
    if (!std::isfinite(v) || v < 0)
      throw std::runtime_error(where + ": norm.variance holds a negative or non-finite value");
    out.push_back(1.0f / std::max(std::sqrt(v), 1e-7f));
  }
  return out;
}

const char* act_name(DenseLayer::Act a) {
  switch (a) {
    case DenseLayer::Act::relu:
      return "relu";
    case DenseLayer::Act::sigmoid:
      return "sigmoid";
    default:
      return "linear";
  }
}

}  // namespace

NsfwHead::NsfwHead(std::vector<float> mean, std::vector<float> variance, std::vector<DenseLayer> layers)
    : mean_(std::move(mean)), layers_(std::move(layers)) {
  if (mean_.size() != variance.size()) throw std::runtime_error("norm.mean and norm.variance differ in size");
  inv_std_ = inverse_std(variance, "head");
  check("head");
}

void NsfwHead::check(const std::string& where) const {
  if (layers_.empty()) throw std::runtime_error(where + ": no dense layers (dense.0.weight is missing)");
  if (!mean_.empty() && (int)mean_.size() != layers_.front().in)
    throw std::runtime_error(fmt::format("{}: norm has {} values but dense.0 takes {} inputs", where,
                                         mean_.size(), layers_.front().in));
  for (size_t k = 0; k < layers_.size(); ++k) {
    const DenseLayer& l = layers_[k];
    if (l.in <= 0 || l.out <= 0 || l.weight.size() != (size_t)l.in * l.out || l.bias.size() != (size_t)l.out)
      throw std::runtime_error(fmt::format("{}: dense.{} has inconsistent sizes", where, k));
    if (k > 0 && l.in != layers_[k - 1].out)
      throw std::runtime_error(fmt::format("{}: dense.{} takes {} inputs but dense.{} gives {}", where, k,
                                           l.in, k - 1, layers_[k - 1].out));
  }
  if (layers_.back().out != 1)
    throw std::runtime_error(
        fmt::format("{}: the last dense layer has {} outputs; a head has 1", where, layers_.back().out));
}

NsfwHead NsfwHead::load(const std::string& path) {
  std::unique_ptr<SafetensorsModel> st;
  try {
    st = SafetensorsModel::open_file(path);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{}: not a readable safetensors file: {}", path, e.what()));
  }
  NsfwHead h;
  const TensorView* acts = st->find("activations");
  if (!acts) throw std::runtime_error(path + ": tensor 'activations' is missing");
  if (acts->dtype != TensorDType::i64 || acts->shape.size() != 1)
    throw std::runtime_error(path + ": tensor 'activations' must be a 1-D I64 tensor");
  const size_t n = (size_t)acts->shape[0];
  for (size_t k = 0; k < n; ++k) {
    int64_t a;
    std::memcpy(&a, acts->data + k * 8, 8);
    if (a < 0 || a > 2)
      throw std::runtime_error(
          fmt::format("{}: activations[{}] is {}; expected 0 (none), 1 (relu) or 2 (sigmoid)", path, k, a));
    const std::string w = fmt::format("dense.{}.weight", k);
    const TensorView* wt = st->find(w);
    if (!wt) throw std::runtime_error(fmt::format("{}: tensor '{}' is missing", path, w));
    if (wt->shape.size() != 2 || wt->shape[0] <= 0 || wt->shape[1] <= 0 || wt->shape[0] > (1 << 20) ||
        wt->shape[1] > (1 << 20))
      throw std::runtime_error(fmt::format("{}: tensor '{}' must be 2-D [out, in]", path, w));
    DenseLayer l;
    l.out = (int)wt->shape[0];
    l.in = (int)wt->shape[1];
    l.weight = read_f32(*st, path, w, wt->shape);
    l.bias = read_f32(*st, path, fmt::format("dense.{}.bias", k), {wt->shape[0]});
    l.act = (DenseLayer::Act)a;
    h.layers_.push_back(std::move(l));
  }
  if (st->find(fmt::format("dense.{}.weight", n)))
    throw std::runtime_error(
        fmt::format("{}: dense.{} exists but 'activations' lists {} layers", path, n, n));
  const bool has_mean = st->find("norm.mean") != nullptr, has_var = st->find("norm.variance") != nullptr;
  if (has_mean != has_var) throw std::runtime_error(path + ": norm.mean and norm.variance come together");
  if (has_mean && !h.layers_.empty()) {
    const int64_t d = h.layers_.front().in;
    h.mean_ = read_f32(*st, path, "norm.mean", {d});
    h.inv_std_ = inverse_std(read_f32(*st, path, "norm.variance", {d}), path);
  }
  h.check(path);
  return h;
}

std::string NsfwHead::describe() const {
  std::string s = std::to_string(input_dim()) + (mean_.empty() ? "" : " norm");
  for (auto& l : layers_) s += fmt::format(" -> {} {}", l.out, act_name(l.act));
  return s;
}

double NsfwHead::predict(const std::vector<float>& embedding) const {
  if ((int)embedding.size() != input_dim())
    throw std::invalid_argument(
        fmt::format("the NSFW head takes {} values, got an embedding of {}", input_dim(), embedding.size()));
  // double accumulation: the result does not depend on summation order subtleties
  std::vector<double> x(embedding.begin(), embedding.end()), y;
  if (!mean_.empty())
    for (size_t i = 0; i < x.size(); ++i) x[i] = (x[i] - mean_[i]) * inv_std_[i];
  for (auto& l : layers_) {
    y.assign((size_t)l.out, 0.0);
    for (int o = 0; o < l.out; ++o) {
      const float* w = &l.weight[(size_t)o * l.in];
      double acc = l.bias[o];
      for (int i = 0; i < l.in; ++i) acc += w[i] * x[i];
      if (l.act == DenseLayer::Act::relu) acc = acc > 0 ? acc : 0;
      if (l.act == DenseLayer::Act::sigmoid) acc = 1.0 / (1.0 + std::exp(-acc));
      y[o] = acc;
    }
    x.swap(y);
  }
  return x[0];
}

}  // namespace capforge
