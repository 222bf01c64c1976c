// LAION's CLIP-based NSFW detector heads as one small MLP over an L2-normalised CLIP image
// embedding: an optional Keras-style Normalization, then dense layers, each followed by its
// activation. Plain C++; a head is a few hundred thousand weights.
//
// Safetensors layout (tools/safety/convert_*.py write it; docs/curate-embeddings.md):
//   norm.mean, norm.variance   [D]        optional (absent: no normalisation), both or neither
//   dense.{k}.weight           [out, in]  k = 0, 1, ... without gaps (PyTorch's Linear layout)
//   dense.{k}.bias             [out]
//   activations                [L] I64    per dense layer: 0 none, 1 relu, 2 sigmoid
// Dense 0 takes D inputs, dense k takes dense k-1's outputs, the last one has 1 output.
// F32, F16 or BF16 weights. Normalisation is Keras's: (x - mean) / max(sqrt(variance), 1e-7).
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace capforge {

struct DenseLayer {
  int in = 0, out = 0;
  std::vector<float> weight;  // [out][in]
  std::vector<float> bias;    // [out]
  enum class Act { none = 0, relu = 1, sigmoid = 2 } act = Act::none;
};

class NsfwHead {
 public:
  // Loads a head file; throws std::runtime_error naming the file and the tensor at fault (missing,
  // wrong shape or dtype, non-finite weights, layers that do not chain, not one output).
  static NsfwHead load(const std::string& path);
  // Builds a head from parts (tests, converters); same checks as load().
  NsfwHead(std::vector<float> mean, std::vector<float> variance, std::vector<DenseLayer> layers);

  int input_dim() const { return layers_.front().in; }
  // One line: dims and activations, e.g. "768 norm -> 64 relu -> 512 relu -> 256 relu -> 1 sigmoid".
  std::string describe() const;
  // The head's output for one embedding of input_dim() values (throws std::invalid_argument on
  // another size). With a final sigmoid it is a probability; LAION's H/14 head ends without one.
  double predict(const std::vector<float>& embedding) const;

 private:
  NsfwHead() = default;
  void check(const std::string& where) const;
  std::vector<float> mean_, inv_std_;  // empty: no normalisation
  std::vector<DenseLayer> layers_;
};

}  // namespace capforge
