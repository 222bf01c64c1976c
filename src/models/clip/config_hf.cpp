// Hugging Face CLIPModel: config.json (model_type clip) + preprocessor_config.json.
#include <filesystem>

#include "models/clip/config.h"
#include "models/clip/config_json.h"

namespace fs = std::filesystem;

namespace capforge::clip {

using cfgjson::get;
using cfgjson::json;

namespace {

int size_field(const json& j, const char* key, const char* sub, int fallback) {
  if (!j.contains(key)) return fallback;
  const json& v = j[key];
  if (v.is_number_integer()) return v.get<int>();
  if (v.is_object() && v.contains(sub) && v[sub].is_number_integer()) return v[sub].get<int>();
  if (v.is_object() && v.contains("height") && v["height"].is_number_integer()) return v["height"].get<int>();
  return fallback;
}

}  // namespace

ClipConfig load_hf_clip_config(const std::string& dir) {
  fs::path cfg_path = fs::path(dir) / "config.json";
  json j = cfgjson::read_object(cfg_path.string());
  std::string where = cfg_path.string();
  ClipConfig c;
  c.format = Format::hf_clip;
  // HF defaults (CLIPTextConfig / CLIPVisionConfig) for fields a config leaves out
  c.text.hidden = 512, c.text.heads = 8, c.text.layers = 12, c.text.ffn = 2048;
  c.vision.hidden = 768, c.vision.heads = 12, c.vision.layers = 12, c.vision.ffn = 3072;
  get(j, "projection_dim", c.projection_dim, where);
  get(j, "logit_scale_init_value", c.logit_scale, where);
  json text = j.contains("text_config") ? j["text_config"] : json::object();
  json vision = j.contains("vision_config") ? j["vision_config"] : json::object();
  cfgjson::read_hf_tower(text, c.text, where + " text_config");
  get(text, "vocab_size", c.text.vocab, where);
  get(text, "max_position_embeddings", c.text.max_positions, where);
  cfgjson::read_hf_tower(vision, c.vision, where + " vision_config");
  get(vision, "image_size", c.vision.image_size, where);
  get(vision, "patch_size", c.vision.patch_size, where);
  int channels = 3;
  get(vision, "num_channels", channels, where);
  if (channels != 3)
    throw std::runtime_error(fmt::format("{}: num_channels {} is not supported (3)", where, channels));
  if (c.vision.patch_size <= 0 || c.vision.image_size % c.vision.patch_size)
    throw std::runtime_error(fmt::format("{}: image_size {} is not a multiple of patch_size {}", where,
                                         c.vision.image_size, c.vision.patch_size));
  if (c.projection_dim <= 0) throw std::runtime_error(where + ": projection_dim must be positive");

  PreprocessConfig& p = c.preprocess;
  p.shortest_edge = p.crop = c.vision.image_size;
  fs::path pre_path = fs::path(dir) / "preprocessor_config.json";
  if (fs::exists(pre_path)) {
    json pj = cfgjson::read_object(pre_path.string());
    std::string pw = pre_path.string();
    p.shortest_edge = size_field(pj, "size", "shortest_edge", p.shortest_edge);
    p.crop = size_field(pj, "crop_size", "height", p.crop);
    get(pj, "do_resize", p.do_resize, pw);
    get(pj, "do_center_crop", p.do_center_crop, pw);
    get(pj, "do_normalize", p.do_normalize, pw);
    cfgjson::read_mean_std(pj, "image_mean", "image_std", p, pw);
    int resample = 3;
    get(pj, "resample", resample, pw);
    if (resample != 3)
      throw std::runtime_error(fmt::format("{}: resample {} is not supported (3, bicubic)", pw, resample));
  }
  if (p.crop != c.vision.image_size)
    throw std::runtime_error(fmt::format("crop size {} differs from the vision tower's image_size {}", p.crop,
                                         c.vision.image_size));
  return c;
}

}  // namespace capforge::clip
