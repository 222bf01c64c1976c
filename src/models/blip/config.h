// Configuration of a Hugging Face BlipForConditionalGeneration directory: config.json (model_type
// blip: a ViT vision_config and a BERT text_config with cross-attention) and
// preprocessor_config.json (BlipImageProcessor: resize straight to the square, bicubic, OpenAI's
// CLIP mean and std).
#pragma once

#include <string>

#include "models/clip/config.h"
#include "models/nn/blocks.h"
#include "models/nn/vit.h"

namespace capforge::blip {

// The BERT decoder (BlipTextLMHeadModel): post-LN layers with causal self-attention and
// cross-attention to every image token, then the LM head.
struct TextConfig : nn::TowerConfig {
  int vocab = 30524, max_positions = 512;
  int encoder_width = 768;  // the vision tower's width (cross-attention keys and values)
  int bos_id = 30522, sep_id = 102, pad_id = 0;
};

struct BlipConfig {
  nn::VitConfig vision;  // class token, no pre-LN; BLIP's post_layernorm covers every token
  TextConfig text;
  clip::PreprocessConfig preprocess;
};

// Reads DIR's config.json and preprocessor_config.json. Fields a published config may omit take
// BlipVisionConfig / BlipTextConfig's defaults. Anything else (another model_type, a vision tower
// that is not BLIP's ViT, sizes that do not fit) is an error naming the file and field.
BlipConfig load_blip_config(const std::string& dir);

}  // namespace capforge::blip
