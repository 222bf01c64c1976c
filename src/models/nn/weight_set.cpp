#include "models/nn/weight_set.h"

#include <fmt/format.h>

#include <stdexcept>

#include "models/ggml_util.h"
#include "models/nn/int8.h"
#include "models/safetensors.h"

namespace capforge::nn {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

WeightSet::~WeightSet() {
  if (buf_) ggml_backend_buffer_free(buf_);
  if (ctx_) ggml_free(ctx_);
}

const TensorView* WeightSet::find(const std::string& name) const { return st_.find(name); }

const TensorView& WeightSet::need(const std::string& name, const std::vector<int64_t>& shape) {
  const TensorView* t = st_.find(name);
  if (!t)
    throw std::runtime_error(fmt::format("missing tensor '{}' (expected shape {})", name, shape_str(shape)));
  if (t->shape != shape)
    throw std::runtime_error(fmt::format("tensor '{}' has shape {}, but the config implies {}", name,
                                         shape_str(t->shape), shape_str(shape)));
  used_.insert(name);
  return *t;
}

void WeightSet::take(ggml_tensor** slot, const std::string& name, const std::vector<int64_t>& shape,
                     ggml_type type) {
  const TensorView* t = &need(name, shape);
  pending_.push_back({slot, name, shape, type, [t] { return t->to_f32(); }});
}

void WeightSet::derive(ggml_tensor** slot, const std::string& label, const std::vector<int64_t>& shape,
                       ggml_type type, Source source) {
  pending_.push_back({slot, label, shape, type, std::move(source)});
}

void WeightSet::check_all_used(const std::function<bool(const std::string&)>& ignore,
                               const std::string& model) const {
  for (auto& [name, t] : st_.tensors())
    if (!used_.count(name) && !ignore(name))
      throw std::runtime_error(
          fmt::format("unexpected tensor '{}' {}: not part of {}", name, shape_str(t.shape), model));
}

ggml_type WeightSet::fit(ggml_type t, int64_t row) {
  return row % ggml_blck_size(t) == 0 ? t : GGML_TYPE_F16;
}

void WeightSet::upload(ggml_backend_dev_t dev, const std::string& what) {
  ggml_init_params ip{ggml_tensor_overhead() * (2 * pending_.size() + 8), nullptr, true};  // int8: 2 each
  ctx_ = ggml_init(ip);
  if (!ctx_) throw std::runtime_error("ggml_init failed");
  for (auto& p : pending_) {
    int64_t ne[4] = {1, 1, 1, 1};
    int n = (int)p.shape.size();
    for (int i = 0; i < n; ++i) ne[i] = p.shape[(size_t)(n - 1 - i)];  // ggml: innermost first
    if (p.type == GGML_TYPE_I8) {
      // packed int8 rows (nn/int8.h): a [row + tail, rows] tensor, and the slot a view of its values
      if (n < 2) throw std::logic_error(fmt::format("int8 tensor '{}' must be a matrix", p.label));
      const int64_t row = ne[0] * ne[1] * ne[2] * ne[3] / ne[n - 1];
      ggml_tensor* packed = ggml_new_tensor_2d(ctx_, GGML_TYPE_I8, row + kInt8Tail, ne[n - 1]);
      size_t nb[4] = {1, (size_t)ne[0], (size_t)(ne[0] * ne[1]), (size_t)(ne[0] * ne[1] * ne[2])};
      nb[n - 1] = packed->nb[1];
      for (int i = n; i < 4; ++i) nb[i] = nb[n - 1] * (size_t)ne[n - 1];
      *p.slot = ggml_view_4d(ctx_, packed, ne[0], ne[1], ne[2], ne[3], nb[1], nb[2], nb[3], 0);
    } else {
      *p.slot = ggml_new_tensor(ctx_, p.type, std::max(n, 1), ne);
    }
    ggml_set_name(*p.slot, p.label.substr(0, GGML_MAX_NAME - 1).c_str());
  }
  buf_ = ggml_backend_alloc_ctx_tensors_from_buft(ctx_, ggml_backend_dev_buffer_type(dev));
  if (!buf_)
    throw std::runtime_error(
        fmt::format("cannot allocate {} weights on {}", what, ggml_backend_dev_name(dev)));
  ggml_backend_buffer_set_usage(buf_, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
  advise_huge_pages(buf_);
  for (auto& p : pending_) {
    std::vector<float> v = p.source();
    if ((int64_t)v.size() != ggml_nelements(*p.slot))
      throw std::logic_error(fmt::format("derived tensor '{}' has {} values, expected {}", p.label, v.size(),
                                         ggml_nelements(*p.slot)));
    if (p.type == GGML_TYPE_I8) {
      ggml_tensor* packed = (*p.slot)->view_src;
      std::vector<int8_t> q((size_t)ggml_nbytes(packed));
      pack_int8_rows(v.data(), packed->ne[0] - kInt8Tail, packed->ne[1], q.data());
      ggml_backend_tensor_set(packed, q.data(), 0, q.size());
    } else {
      upload_f32(*p.slot, v);
    }
  }
  pending_.clear();
}

void take_rows(nn::WeightSet& set, ggml_tensor** slot, const std::string& name,
               const std::vector<int64_t>& full, int part, int parts, ggml_type type) {
  // a view of the part's rows, converted alone (not the whole fused tensor once per part)
  TensorView view = set.need(name, full);
  view.shape[0] /= parts;
  view.nbytes /= (size_t)parts;
  view.data += view.nbytes * (size_t)part;
  set.derive(slot, fmt::format("{}[{}/{}]", name, part, parts), view.shape, type,
             [view] { return view.to_f32(); });
}

}  // namespace capforge::nn
