#include "models/clip/weights.h"

#include <fmt/format.h>

#include <stdexcept>

#include "models/safetensors.h"

namespace capforge::clip {

float scalar_or(nn::WeightSet& set, const std::string& name, float fallback) {
  const TensorView* t = set.find(name);
  if (!t) return fallback;
  if (t->numel() != 1) throw std::runtime_error(fmt::format("tensor '{}' should hold one value", name));
  return set.need(name, t->shape).to_f32()[0];
}

void take_transposed(nn::WeightSet& set, ggml_tensor** slot, const std::string& name, int64_t rows,
                     int64_t cols, ggml_type type) {
  const TensorView* t = &set.need(name, {rows, cols});
  set.derive(slot, name + ".T", {cols, rows}, type, [t, rows, cols] {
    std::vector<float> a = t->to_f32(), out(a.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) out[(size_t)(c * rows + r)] = a[(size_t)(r * cols + c)];
    return out;
  });
}

Weights::Weights(const SafetensorsModel& st, const ClipConfig& c, ggml_type mat, ggml_backend_dev_t dev)
    : set_(std::make_unique<nn::WeightSet>(st)) {
  // kernels take the matrix type unless it is blocked (a q8_0 block cannot span a kernel's rows)
  WeightTypes types{mat, ggml_blck_size(mat) == 1 ? mat : GGML_TYPE_F16};
  switch (c.format) {
    case Format::hf_clip:
      declare_hf_clip(*set_, c, types, *this);
      break;
    case Format::open_clip:
      declare_open_clip(*set_, c, types, *this);
      break;
    case Format::siglip:
      declare_siglip(*set_, c, types, *this);
      break;
  }
  set_->upload(dev, format_name(c.format));
}

}  // namespace capforge::clip
