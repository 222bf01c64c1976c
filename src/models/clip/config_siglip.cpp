// Hugging Face SigLIP and fixed-resolution SigLIP 2: config.json (model_type siglip) +
// preprocessor_config.json. Defaults are SiglipTextConfig / SiglipVisionConfig's.
#include <filesystem>

#include "models/clip/config.h"
#include "models/clip/config_json.h"

namespace fs = std::filesystem;

namespace capforge::clip {

using cfgjson::get;
using cfgjson::json;

namespace {

// SiglipTextConfig / SiglipVisionConfig defaults under the fields the config sets.
void read_tower(const json& j, TowerConfig& t, const std::string& where) {
  t.hidden = 768, t.heads = 12, t.layers = 12, t.ffn = 3072, t.ln_eps = 1e-6f;
  t.act = Activation::gelu_tanh;
  cfgjson::read_hf_tower(j, t, where);
}

}  // namespace

ClipConfig load_siglip_config(const std::string& dir) {
  fs::path cfg_path = fs::path(dir) / "config.json";
  const std::string where = cfg_path.string();
  json j = cfgjson::read_object(where);
  ClipConfig c;
  c.format = Format::siglip;
  c.sigmoid = true;
  c.logit_scale = 0, c.logit_bias = 0;  // the stored parameters replace these
  const json text = j.contains("text_config") ? j["text_config"] : json::object();
  const json vision = j.contains("vision_config") ? j["vision_config"] : json::object();
  const std::string tw = where + " text_config", vw = where + " vision_config";

  TextConfig& t = c.text;
  read_tower(text, t, tw);
  t.vocab = 32000, t.max_positions = 64, t.pad_id = 1;
  get(text, "vocab_size", t.vocab, tw);
  get(text, "max_position_embeddings", t.max_positions, tw);
  get(text, "pad_token_id", t.pad_id, tw);
  t.causal = false;
  t.pool_last = true;
  t.pad_to = t.max_positions;
  t.proj_bias = true;
  int projection = t.hidden;
  get(text, "projection_size", projection, tw);

  VisionConfig& v = c.vision;
  read_tower(vision, v, vw);
  v.image_size = 224, v.patch_size = 16;
  get(vision, "image_size", v.image_size, vw);
  get(vision, "patch_size", v.patch_size, vw);
  if (vision.contains("num_patches"))
    throw std::runtime_error(vw + ": 'num_patches' marks a NaFlex SigLIP 2, which is not supported");
  int channels = 3;
  get(vision, "num_channels", channels, vw);
  if (channels != 3)
    throw std::runtime_error(fmt::format("{}: num_channels {} is not supported (3)", vw, channels));
  if (v.patch_size <= 0 || v.image_size % v.patch_size)
    throw std::runtime_error(
        fmt::format("{}: image_size {} is not a multiple of patch_size {}", vw, v.image_size, v.patch_size));
  bool vision_head = true;
  get(vision, "vision_use_head", vision_head, vw);
  if (!vision_head)
    throw std::runtime_error(vw + ": vision_use_head false (no pooling head) is not supported");
  v.class_token = false;
  v.pre_ln = false;
  v.head = VisionHead::map;
  if (projection != v.hidden)
    throw std::runtime_error(fmt::format("{}: the text head's output ({}) must equal the vision width ({})",
                                         where, projection, v.hidden));
  c.projection_dim = v.hidden;

  PreprocessConfig& p = c.preprocess;
  p.mean = {0.5f, 0.5f, 0.5f}, p.std = {0.5f, 0.5f, 0.5f};
  cfgjson::read_square_preprocessor(dir, v.image_size, p);
  return c;
}

}  // namespace capforge::clip
