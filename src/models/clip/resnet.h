// OpenAI CLIP's ModifiedResNet vision tower (RN50, RN101, RN50x4, RN50x16, RN50x64; they differ
// only in config): a 3-convolution stem with average pooling, four stages of bottleneck blocks
// whose stride is an average pool before the last convolution, and an attention-pooling head.
// BatchNorm (eval, running statistics) is folded into each convolution at load.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ggml.h"
#include "models/nn/blocks.h"
#include "models/nn/weight_set.h"

namespace capforge::clip {

struct VisionConfig;

// A convolution with its BatchNorm folded in: kernel [k, k, Cin, Cout] (ggml order; a stride-1 3x3
// kernel on channel-innermost activations [Cin, 3, 3, Cout], taps outermost) and bias [Cout].
struct ConvBn {
  ggml_tensor *w = nullptr, *b = nullptr;
};

struct Bottleneck {
  ConvBn conv1, conv2, conv3;
  ConvBn down;  // when has_down: AvgPool(stride) -> 1x1 conv -> BN on the identity branch
  bool has_down = false;
  int stride = 1;
};

struct ResnetWeights {
  ConvBn stem1, stem2, stem3;
  std::vector<Bottleneck> blocks;   // stage by stage
  ggml_tensor* pos_embd = nullptr;  // attention pool: [C, grid^2 + 1]
  nn::Linear q, k, v, c_proj;       // c_proj: [E, C]
};

// Declares the tower's tensors under `prefix` ("visual."), in OpenAI's state_dict names, with
// every BatchNorm folded into its convolution. `out_dim`: the attention pool's output (embed_dim).
// A missing BatchNorm statistic, or stage depths that do not match the stored blocks, is an error
// naming the tensor.
void declare_resnet(nn::WeightSet& set, const std::string& prefix, const VisionConfig& v, int out_dim,
                    ggml_type matrix, ggml_type conv, ResnetWeights& w);

// An i32 graph input and the values to set before computing.
struct IndexInput {
  ggml_tensor* tensor = nullptr;
  std::vector<int32_t> values;
};

// pixels [S, S, 3, B] f32 -> the attention pool's output [out_dim, B]. The row indices the 3x3
// convolutions gather their taps with are appended to `inputs`.
ggml_tensor* build_resnet(ggml_context* ctx, ggml_tensor* pixels, const VisionConfig& v,
                          const ResnetWeights& w, bool fast, std::vector<IndexInput>& inputs);

}  // namespace capforge::clip
