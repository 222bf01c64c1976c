// CLIPModel configuration as Hugging Face publishes it (config.json + preprocessor_config.json).
#pragma once

#include <array>
#include <string>

namespace capforge::clip {

enum class Activation { quick_gelu, gelu };

struct TowerConfig {
  int hidden = 0, heads = 0, layers = 0, ffn = 0;
  float ln_eps = 1e-5f;
  Activation act = Activation::quick_gelu;
  int head_dim() const { return heads ? hidden / heads : 0; }
};

struct TextConfig : TowerConfig {
  int vocab = 49408, max_positions = 77;
};

struct VisionConfig : TowerConfig {
  int image_size = 224, patch_size = 32;
  int grid() const { return patch_size ? image_size / patch_size : 0; }
  int positions() const { return grid() * grid() + 1; }  // patches + class token
};

struct PreprocessConfig {
  int shortest_edge = 224;  // resize target (bicubic), aspect kept
  int crop = 224;           // center crop side
  bool do_resize = true, do_center_crop = true, do_normalize = true;
  std::array<float, 3> mean = {0.48145466f, 0.4578275f, 0.40821073f};
  std::array<float, 3> std = {0.26862954f, 0.26130258f, 0.27577711f};
};

struct ClipConfig {
  TextConfig text;
  VisionConfig vision;
  PreprocessConfig preprocess;
  int projection_dim = 512;
  float logit_scale = 2.6592f;  // log scale, as stored
};

// Reads DIR/config.json (and DIR/preprocessor_config.json when present). Fields a published config
// may omit take Hugging Face's defaults; unsupported values are refused with a message that names
// the field.
ClipConfig load_clip_config(const std::string& dir);

}  // namespace capforge::clip
