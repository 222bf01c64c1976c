// Configuration of a CLIP-family model (two towers and a similarity head), read from whichever
// published layout its directory holds: Hugging Face CLIPModel (config.json, model_type clip),
// open_clip (open_clip_config.json) or Hugging Face SigLIP / SigLIP 2 (model_type siglip).
#pragma once

#include <array>
#include <string>

#include "models/nn/blocks.h"
#include "models/nn/vit.h"

namespace capforge::clip {

using nn::Activation;
using nn::TowerConfig;

enum class Format { hf_clip, open_clip, siglip };
const char* format_name(Format f);

struct TextConfig : TowerConfig {
  int vocab = 49408, max_positions = 77;
  bool causal = true;      // SigLIP's text tower attends both ways
  bool pool_last = false;  // SigLIP pools the last position; CLIP pools at the EOS token
  int pad_to = 0;          // > 0: every text padded with pad_id to this length (SigLIP: 64)
  int pad_id = 0;
  bool proj_bias = false;  // SigLIP's text head is a Linear with bias
};

// Modified ResNet (OpenAI CLIP RN50..RN50x64): stem, four stages of bottlenecks, attention pool.
struct ResnetConfig {
  std::array<int, 4> layers = {3, 4, 6, 3};
  int width = 64;  // stem output channels; stage i has width * 2^i planes (x4 out)
  int heads = 32;  // attention-pool heads
  int embed_dim() const { return width * 32; }
};

enum class VisionArch { vit, resnet };
enum class VisionHead {
  class_token,  // CLIP: LayerNorm on the class token, then the projection
  map,          // SigLIP: LayerNorm on every token, then attention-probe pooling + MLP
  attn_pool,    // ResNet: the attention-pooling layer is the head
};

struct VisionConfig : nn::VitConfig {
  VisionArch arch = VisionArch::vit;
  VisionHead head = VisionHead::class_token;
  ResnetConfig resnet;
  int positions() const { return tokens(); }
};

enum class Interpolation { bicubic, bilinear };

struct PreprocessConfig {
  int shortest_edge = 224;  // resize target, aspect kept (when !squash)
  int crop = 224;           // center crop side (when !squash)
  bool squash = false;      // resize straight to crop x crop, aspect not kept (SigLIP)
  bool round_crop = false;  // torchvision's CenterCrop (open_clip): top = round((h - crop) / 2), not int()
  Interpolation interpolation = Interpolation::bicubic;
  bool do_resize = true, do_center_crop = true, do_normalize = true;
  std::array<float, 3> mean = {0.48145466f, 0.4578275f, 0.40821073f};
  std::array<float, 3> std = {0.26862954f, 0.26130258f, 0.27577711f};
};

struct ClipConfig {
  Format format = Format::hf_clip;
  TextConfig text;
  VisionConfig vision;
  PreprocessConfig preprocess;
  int projection_dim = 512;     // embedding size (SigLIP: the towers' width)
  float logit_scale = 2.6592f;  // log scale, as stored
  bool sigmoid = false;         // SigLIP: p = sigmoid(exp(logit_scale) cos + logit_bias)
  float logit_bias = 0;
};

// Detects the layout of DIR and reads its configuration. Fields a published config may omit take
// the reference code's defaults; unsupported values are refused with a message naming the file
// and field.
ClipConfig load_clip_config(const std::string& dir);

// Per layout (config_hf.cpp, config_open_clip.cpp, config_siglip.cpp).
ClipConfig load_hf_clip_config(const std::string& dir);
ClipConfig load_open_clip_config(const std::string& dir);
ClipConfig load_siglip_config(const std::string& dir);

}  // namespace capforge::clip
