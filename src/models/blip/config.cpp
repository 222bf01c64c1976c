#include "models/blip/config.h"

#include <filesystem>

#include "models/clip/config_json.h"

namespace fs = std::filesystem;

namespace capforge::blip {

using clip::cfgjson::get;
using clip::cfgjson::json;

BlipConfig load_blip_config(const std::string& dir) {
  const fs::path cfg_path = fs::path(dir) / "config.json";
  if (!fs::exists(cfg_path))
    throw std::runtime_error(
        fmt::format("{} has no config.json (a Hugging Face BLIP model dir has config.json, "
                    "model.safetensors, preprocessor_config.json and vocab.txt)",
                    dir));
  const std::string where = cfg_path.string();
  json j = clip::cfgjson::read_object(where);
  const std::string type = j.value("model_type", "");
  if (type != "blip")
    throw std::runtime_error(fmt::format(
        "{}: model_type '{}' is not a BLIP captioner (blip, as in Salesforce/blip-image-captioning-large)",
        where, type));
  if (j.contains("architectures") && j["architectures"].is_array())
    for (auto& a : j["architectures"])
      if (a.is_string() && a.get<std::string>() != "BlipForConditionalGeneration")
        throw std::runtime_error(
            fmt::format("{}: architecture '{}' is not BlipForConditionalGeneration (the captioning model)",
                        where, a.get<std::string>()));
  const json text =
      j.contains("text_config") && j["text_config"].is_object() ? j["text_config"] : json::object();
  const json vision =
      j.contains("vision_config") && j["vision_config"].is_object() ? j["vision_config"] : json::object();
  const std::string tw = where + " text_config", vw = where + " vision_config";

  BlipConfig c;
  nn::VitConfig& v = c.vision;
  const std::string vtype = vision.value("model_type", "blip_vision_model");
  if (vtype != "blip_vision_model")
    throw std::runtime_error(fmt::format(
        "{}: model_type '{}' is not BLIP's ViT (blip_vision_model); other vision towers are not supported",
        vw, vtype));
  // BlipVisionConfig's defaults
  v.hidden = 768, v.heads = 12, v.layers = 12, v.ffn = 3072, v.ln_eps = 1e-5f;
  v.act = nn::Activation::gelu;
  v.image_size = 384, v.patch_size = 16;
  v.class_token = true;
  v.pre_ln = false;
  clip::cfgjson::read_hf_tower(vision, v, vw);
  get(vision, "image_size", v.image_size, vw);
  get(vision, "patch_size", v.patch_size, vw);
  int channels = 3;
  get(vision, "num_channels", channels, vw);
  if (channels != 3)
    throw std::runtime_error(fmt::format("{}: num_channels {} is not supported (3)", vw, channels));
  if (v.patch_size <= 0 || v.image_size <= 0 || v.image_size % v.patch_size)
    throw std::runtime_error(fmt::format("{}: image_size {} is not a positive multiple of patch_size {}", vw,
                                         v.image_size, v.patch_size));

  TextConfig& t = c.text;  // BlipTextConfig's defaults
  t.hidden = 768, t.heads = 12, t.layers = 12, t.ffn = 3072, t.ln_eps = 1e-12f;
  t.act = nn::Activation::gelu;
  const std::string ttype = text.value("model_type", "blip_text_model");
  if (ttype != "blip_text_model")
    throw std::runtime_error(
        fmt::format("{}: model_type '{}' is not BLIP's text decoder (blip_text_model)", tw, ttype));
  clip::cfgjson::read_hf_tower(text, t, tw);
  get(text, "vocab_size", t.vocab, tw);
  get(text, "max_position_embeddings", t.max_positions, tw);
  t.encoder_width = v.hidden;
  get(text, "encoder_hidden_size", t.encoder_width, tw);
  if (t.encoder_width != v.hidden)
    throw std::runtime_error(fmt::format("{}: encoder_hidden_size {} differs from the vision width {}", tw,
                                         t.encoder_width, v.hidden));
  get(text, "bos_token_id", t.bos_id, tw);
  get(text, "sep_token_id", t.sep_id, tw);
  get(text, "pad_token_id", t.pad_id, tw);
  for (auto [name, id] :
       {std::pair{"bos_token_id", t.bos_id}, {"sep_token_id", t.sep_id}, {"pad_token_id", t.pad_id}})
    if (id < 0 || id >= t.vocab)
      throw std::runtime_error(
          fmt::format("{}: {} {} is outside the vocabulary of {}", tw, name, id, t.vocab));
  if (t.vocab <= 0 || t.max_positions <= 1)
    throw std::runtime_error(fmt::format("{}: vocab_size and max_position_embeddings must be positive", tw));

  clip::PreprocessConfig& p = c.preprocess;  // BlipImageProcessor's defaults: OpenAI CLIP's mean/std
  clip::cfgjson::read_square_preprocessor(dir, v.image_size, p);
  return c;
}

}  // namespace capforge::blip
