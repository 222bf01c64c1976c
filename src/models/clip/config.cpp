#include "models/clip/config.h"

#include <filesystem>
#include <fstream>

#include "models/clip/config_json.h"

namespace fs = std::filesystem;

namespace capforge::clip {

const char* format_name(Format f) {
  switch (f) {
    case Format::hf_clip:
      return "Hugging Face CLIP";
    case Format::open_clip:
      return "open_clip";
    case Format::siglip:
      return "SigLIP";
  }
  return "?";
}

namespace cfgjson {

json read_object(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(fmt::format("cannot read {}", path));
  json j = json::parse(f, nullptr, false);
  if (!j.is_object()) throw std::runtime_error(fmt::format("{} is not a JSON object", path));
  return j;
}

void check_tower(const TowerConfig& t, const std::string& where) {
  if (t.hidden <= 0 || t.heads <= 0 || t.layers <= 0 || t.ffn <= 0)
    throw std::runtime_error(
        fmt::format("{}: width, heads, layers and the MLP size must be positive", where));
  if (t.hidden % t.heads)
    throw std::runtime_error(
        fmt::format("{}: width {} is not divisible by the {} attention heads", where, t.hidden, t.heads));
}

Activation activation_named(const std::string& act, const std::string& where) {
  if (act == "quick_gelu") return Activation::quick_gelu;
  if (act == "gelu") return Activation::gelu;
  if (act == "gelu_pytorch_tanh" || act == "gelu_new" || act == "gelu_fast") return Activation::gelu_tanh;
  throw std::runtime_error(
      fmt::format("{}: hidden_act '{}' is not supported (quick_gelu, gelu, gelu_pytorch_tanh)", where, act));
}

void read_hf_tower(const json& j, TowerConfig& t, const std::string& where) {
  get(j, "hidden_size", t.hidden, where);
  get(j, "num_attention_heads", t.heads, where);
  get(j, "num_hidden_layers", t.layers, where);
  get(j, "intermediate_size", t.ffn, where);
  get(j, "layer_norm_eps", t.ln_eps, where);
  std::string act;
  get(j, "hidden_act", act, where);
  if (!act.empty()) t.act = activation_named(act, where);
  check_tower(t, where);
}

void read_mean_std(const json& j, const char* mean_key, const char* std_key, PreprocessConfig& p,
                   const std::string& where) {
  std::vector<float> mean, std;
  get(j, mean_key, mean, where);
  get(j, std_key, std, where);
  if (!mean.empty()) {
    if (mean.size() != 3) throw std::runtime_error(fmt::format("{}: {} needs 3 values", where, mean_key));
    std::copy(mean.begin(), mean.end(), p.mean.begin());
  }
  if (!std.empty()) {
    if (std.size() != 3) throw std::runtime_error(fmt::format("{}: {} needs 3 values", where, std_key));
    for (float s : std)
      if (!(s > 0)) throw std::runtime_error(fmt::format("{}: {} must be positive", where, std_key));
    std::copy(std.begin(), std.end(), p.std.begin());
  }
}

void read_square_preprocessor(const std::string& dir, int image_size, PreprocessConfig& p) {
  p.squash = true;
  p.do_center_crop = false;
  p.shortest_edge = p.crop = image_size;
  fs::path pre_path = fs::path(dir) / "preprocessor_config.json";
  if (fs::exists(pre_path)) {
    const std::string pw = pre_path.string();
    json pj = cfgjson::read_object(pw);
    get(pj, "do_resize", p.do_resize, pw);
    get(pj, "do_normalize", p.do_normalize, pw);
    cfgjson::read_mean_std(pj, "image_mean", "image_std", p, pw);
    int resample = 3;
    get(pj, "resample", resample, pw);
    if (resample == 2)
      p.interpolation = Interpolation::bilinear;
    else if (resample != 3)
      throw std::runtime_error(
          fmt::format("{}: resample {} is not supported (2 bilinear, 3 bicubic)", pw, resample));
    if (pj.contains("size") && pj["size"].is_object()) {
      int h = image_size, w = image_size;
      get(pj["size"], "height", h, pw);
      get(pj["size"], "width", w, pw);
      if (h != image_size || w != image_size)
        throw std::runtime_error(fmt::format("{}: size {}x{} differs from the vision tower's image_size {}",
                                             pw, w, h, image_size));
    }
    bool rescale = true;
    get(pj, "do_rescale", rescale, pw);
    if (!rescale) throw std::runtime_error(pw + ": do_rescale false is not supported");
  }
}

}  // namespace cfgjson

ClipConfig load_clip_config(const std::string& dir) {
  if (!fs::is_directory(dir)) throw std::runtime_error(fmt::format("{} is not a directory", dir));
  if (fs::exists(fs::path(dir) / "open_clip_config.json")) return load_open_clip_config(dir);
  fs::path cfg = fs::path(dir) / "config.json";
  if (!fs::exists(cfg)) {
    if (fs::exists(fs::path(dir) / "open_clip_pytorch_model.bin"))
      throw std::runtime_error(fmt::format(
          "{} has open_clip_pytorch_model.bin but no open_clip_config.json: an open_clip dir needs both",
          dir));
    throw std::runtime_error(fmt::format(
        "{} has neither config.json (Hugging Face CLIP or SigLIP) nor open_clip_config.json (open_clip)",
        dir));
  }
  auto j = cfgjson::read_object(cfg.string());
  std::string type = j.value("model_type", "");
  if (type == "clip") return load_hf_clip_config(dir);
  if (type == "siglip") return load_siglip_config(dir);
  if (type == "siglip2")
    throw std::runtime_error(fmt::format(
        "{}: model_type 'siglip2' is a NaFlex (variable-resolution) SigLIP 2, which is not supported; the "
        "fixed-resolution SigLIP 2 checkpoints (model_type 'siglip', e.g. google/siglip2-base-patch16-224) "
        "are",
        cfg.string()));
  throw std::runtime_error(fmt::format(
      "{}: model_type '{}' is not supported (clip, siglip; or an open_clip dir with open_clip_config.json)",
      cfg.string(), type));
}

}  // namespace capforge::clip
