// Random-weight open_clip model directories, written as open_clip's hub export writes them:
// open_clip_config.json ({"model_cfg": {...}, "preprocess_cfg": {...}}) and
// open_clip_model.safetensors with OpenAI's state_dict names (visual.*, token_embedding, ...).
// Vision tower: OpenAI's ModifiedResNet or a ViT; text tower: OpenAI's. No vocabulary is written
// (open_clip directories carry none; every tower has OpenAI's 49408 token rows).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>

#include "support/clip_fixture.h"

namespace capforge::test {

struct OpenClipFixtureSpec {
  bool resnet = true;  // else ViT
  int image_size = 64;
  // ResNet: vision_cfg {"layers": [4 depths], "width", "head_width"} (heads = width * 32 / head_width)
  std::array<int, 4> rn_layers = {1, 2, 1, 1};
  int rn_width = 16;
  // ViT: vision_cfg {"layers": int, "width", "patch_size", "head_width"}
  int vit_layers = 2, vit_width = 64, patch_size = 8;
  int head_width = 64;
  int embed_dim = 32;
  int text_width = 32, text_heads = 2, text_layers = 2;
  int context_length = 77, vocab_size = 49408;
  bool quick_gelu = true;
  std::string dtype = "F32";  // stored dtype of every float tensor: F32, F16, BF16
  // Every BatchNorm's num_batches_tracked as an I64 scalar, as torch's state_dict (and so the hub
  // export) stores it.
  bool bn_counters = true;
  uint32_t seed = 1;
};

// A named shape: rn-tiny, rn50x64, vit-tiny, vit-l-14. Throws std::invalid_argument otherwise.
OpenClipFixtureSpec open_clip_shape(const std::string& name);

// Every float tensor of the spec's model (PyTorch shapes, OpenAI names). The random values keep
// activations O(1) through deep towers: matrices and kernels have std 1/sqrt(fan_in), BatchNorm
// running_var is uniform in [0.5, 1.5], each bottleneck's last BatchNorm scales by ~0.25.
std::map<std::string, FixtureTensor> open_clip_tensors(const OpenClipFixtureSpec& spec);

// Writes open_clip_config.json and open_clip_model.safetensors into `dir` (created).
void save_open_clip(const OpenClipFixtureSpec& spec, const std::string& dir);

}  // namespace capforge::test
