// Internal: JSON helpers shared by the per-layout config readers. Every error names the file.
#pragma once

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>

#include "models/clip/config.h"

namespace capforge::clip::cfgjson {

using nlohmann::json;

// DIR/NAME parsed as a JSON object, or an error naming the file.
json read_object(const std::string& path);

// Reads j[key] into out when present and not null; a wrong type is an error naming `where` and key.
template <typename T>
void get(const json& j, const char* key, T& out, const std::string& where) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return;
  try {
    out = j[key].get<T>();
  } catch (const std::exception&) {
    throw std::runtime_error(fmt::format("{}: field '{}' has an unexpected type", where, key));
  }
}

// Positive sizes and heads dividing the width, or an error naming `where`.
void check_tower(const TowerConfig& t, const std::string& where);
// A Hugging Face tower config (hidden_size, num_attention_heads, num_hidden_layers,
// intermediate_size, layer_norm_eps, hidden_act) over the defaults already in `t`, then checked.
void read_hf_tower(const json& j, TowerConfig& t, const std::string& where);
// Hugging Face's hidden_act names.
Activation activation_named(const std::string& name, const std::string& where);
// image_mean / image_std of three values into p, from `j` (a preprocessor config or open_clip's
// preprocess_cfg) under the given keys.
void read_mean_std(const json& j, const char* mean_key, const char* std_key, PreprocessConfig& p,
                   const std::string& where);

// A Hugging Face image processor that resizes straight to the square (SigLIP, BLIP): DIR's
// preprocessor_config.json when present (resize, rescale, normalise, resample, size, which must be
// image_size) over the defaults already in `p`; p.squash and the side are set here.
void read_square_preprocessor(const std::string& dir, int image_size, PreprocessConfig& p);

}  // namespace capforge::clip::cfgjson
