// Loading a checkpoint's tensors onto a ggml device: every tensor is declared against the stored
// ones first (missing or misshapen: an error naming it, before anything is allocated), then all are
// converted to their ggml type and uploaded at once. Derived tensors (split fused projections,
// BatchNorm folded into a convolution) are computed from the stored ones at upload.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "ggml-backend.h"
#include "ggml.h"

namespace capforge {
class SafetensorsModel;
struct TensorView;
}  // namespace capforge

namespace capforge::nn {

class WeightSet {
 public:
  using Source = std::function<std::vector<float>()>;

  explicit WeightSet(const SafetensorsModel& st) : st_(st) {}
  ~WeightSet();
  WeightSet(const WeightSet&) = delete;
  WeightSet& operator=(const WeightSet&) = delete;

  // The stored tensor `name`, which must have `shape` (PyTorch order); marks it used.
  const TensorView& need(const std::string& name, const std::vector<int64_t>& shape);
  const TensorView* find(const std::string& name) const;
  // Declares *slot as the stored tensor `name` of `shape`, kept as `type`.
  void take(ggml_tensor** slot, const std::string& name, const std::vector<int64_t>& shape, ggml_type type);
  // Declares *slot as a tensor of `shape` (PyTorch order) computed by `source` at upload.
  void derive(ggml_tensor** slot, const std::string& label, const std::vector<int64_t>& shape, ggml_type type,
              Source source);
  // Throws naming the first stored tensor no declaration used, unless `ignore(name)`.
  void check_all_used(const std::function<bool(const std::string&)>& ignore, const std::string& model) const;
  // Allocates every declared tensor on `dev` and uploads the values. The SafetensorsModel must
  // still be alive.
  void upload(ggml_backend_dev_t dev, const std::string& what);

  // `type` where rows of `row` values divide into its blocks, else f16.
  static ggml_type fit(ggml_type type, int64_t row);

 private:
  struct Pending {
    ggml_tensor** slot;
    std::string label;
    std::vector<int64_t> shape;
    ggml_type type;
    Source source;
  };
  const SafetensorsModel& st_;
  std::vector<Pending> pending_;
  std::set<std::string> used_;
  ggml_context* ctx_ = nullptr;
  ggml_backend_buffer_t buf_ = nullptr;
};

std::string shape_str(const std::vector<int64_t>& s);

// Rows [part * rows, (part + 1) * rows) of a stored 2-D (or 1-D) tensor of shape `full`, e.g. q/k/v
// of a fused in_proj_weight [3D, D]; only that part is converted.
void take_rows(WeightSet& set, ggml_tensor** slot, const std::string& name, const std::vector<int64_t>& full,
               int part, int parts, ggml_type type);

}  // namespace capforge::nn
