// open_clip directories: open_clip_config.json ({"model_cfg": {...}, "preprocess_cfg": {...}}) as
// open_clip's hub export writes it, for OpenAI ResNet (vision_cfg.layers is a list of four) and
// ViT towers with OpenAI's text tower. Defaults are open_clip's CLIPVisionCfg / CLIPTextCfg.
#include <cmath>
#include <filesystem>

#include "models/clip/config.h"
#include "models/clip/config_json.h"

namespace fs = std::filesystem;

namespace capforge::clip {

using cfgjson::get;
using cfgjson::json;

namespace {

// Options of open_clip's towers that change the computation and that capforge does not implement:
// refused by name rather than silently computed differently.
void refuse_set(const json& j, const std::string& where, std::initializer_list<const char*> keys) {
  for (const char* k : keys)
    if (j.contains(k) && !j[k].is_null() && j[k] != false && j[k] != json(""))
      throw std::runtime_error(
          fmt::format("{}: '{}' is not supported by capforge's open_clip loader", where, k));
}

void refuse_unless(const json& j, const char* key, const char* allowed, const std::string& where) {
  std::string v;
  get(j, key, v, where);
  if (!v.empty() && v != allowed)
    throw std::runtime_error(fmt::format("{}: {} '{}' is not supported ('{}')", where, key, v, allowed));
}

}  // namespace

ClipConfig load_open_clip_config(const std::string& dir) {
  fs::path path = fs::path(dir) / "open_clip_config.json";
  const std::string file = path.string();
  json root = cfgjson::read_object(file);
  if (!root.contains("model_cfg") || !root["model_cfg"].is_object())
    throw std::runtime_error(file + ": no 'model_cfg' object");
  const json& m = root["model_cfg"];
  const json vis = m.contains("vision_cfg") ? m["vision_cfg"] : json::object();
  const json txt = m.contains("text_cfg") ? m["text_cfg"] : json::object();
  const std::string vw = file + " model_cfg.vision_cfg", tw = file + " model_cfg.text_cfg";
  ClipConfig c;
  c.format = Format::open_clip;
  get(m, "embed_dim", c.projection_dim, file + " model_cfg");
  if (c.projection_dim <= 0) throw std::runtime_error(file + ": model_cfg.embed_dim must be positive");
  bool quick = false;
  get(m, "quick_gelu", quick, file + " model_cfg");
  const Activation act = quick ? Activation::quick_gelu : Activation::gelu;
  c.logit_scale = std::log(1.0f / 0.07f);
  refuse_set(m, file + " model_cfg", {"custom_text", "init_logit_bias"});

  // vision tower
  refuse_set(vis, vw,
             {"timm_model_name", "attentional_pool", "global_average_pool", "ls_init_value", "proj_bias",
              "act_kwargs", "norm_kwargs"});
  refuse_unless(vis, "pool_type", "tok", vw);
  VisionConfig& v = c.vision;
  v.ln_eps = 1e-5f;
  v.act = act;
  if (vis.contains("image_size") && !vis["image_size"].is_number_integer())
    throw std::runtime_error(vw + ": image_size must be one integer (square images)");
  get(vis, "image_size", v.image_size, vw);
  int width = 768;
  get(vis, "width", width, vw);
  int head_width = 64;
  get(vis, "head_width", head_width, vw);
  if (width <= 0 || head_width <= 0) throw std::runtime_error(vw + ": width and head_width must be positive");
  if (vis.contains("layers") && vis["layers"].is_array()) {
    v.arch = VisionArch::resnet;
    v.head = VisionHead::attn_pool;
    auto layers = vis["layers"].get<std::vector<int>>();
    if (layers.size() != 4) throw std::runtime_error(vw + ": a ResNet's 'layers' needs four stage depths");
    for (int i = 0; i < 4; ++i) {
      if (layers[(size_t)i] <= 0) throw std::runtime_error(vw + ": ResNet stage depths must be positive");
      v.resnet.layers[(size_t)i] = layers[(size_t)i];
    }
    v.resnet.width = width;
    v.resnet.heads = width * 32 / head_width;  // open_clip: vision_heads = width * 32 // head_width
    if (v.image_size % 32)
      throw std::runtime_error(fmt::format("{}: image_size {} is not a multiple of 32", vw, v.image_size));
    v.patch_size = 32;  // the tower downsamples by 32: grid() is the attention pool's side
    v.class_token = false;
    if (v.resnet.heads <= 0 || v.resnet.embed_dim() % v.resnet.heads)
      throw std::runtime_error(fmt::format("{}: {} attention-pool heads do not divide {}", vw, v.resnet.heads,
                                           v.resnet.embed_dim()));
  } else {
    v.arch = VisionArch::vit;
    v.head = VisionHead::class_token;
    get(vis, "layers", v.layers, vw);
    get(vis, "patch_size", v.patch_size, vw);
    double mlp_ratio = 4.0;
    get(vis, "mlp_ratio", mlp_ratio, vw);
    bool no_ln_pre = false;
    get(vis, "no_ln_pre", no_ln_pre, vw);
    bool final_ln_after_pool = false;
    get(vis, "final_ln_after_pool", final_ln_after_pool, vw);  // same numbers for the class token
    v.pre_ln = !no_ln_pre;
    v.hidden = width;
    v.heads = width / head_width;
    v.ffn = (int)(width * mlp_ratio);
    cfgjson::check_tower(v, vw);
    if (v.patch_size <= 0 || v.image_size % v.patch_size)
      throw std::runtime_error(fmt::format("{}: image_size {} is not a multiple of patch_size {}", vw,
                                           v.image_size, v.patch_size));
  }

  // text tower (OpenAI's)
  refuse_set(txt, tw,
             {"hf_model_name", "hf_tokenizer_name", "embed_cls", "ls_init_value", "act_kwargs", "norm_kwargs",
              "proj_bias"});
  refuse_unless(txt, "pool_type", "argmax", tw);
  refuse_unless(txt, "proj_type", "linear", tw);
  TextConfig& t = c.text;
  t.ln_eps = 1e-5f;
  t.act = act;
  t.hidden = 512, t.heads = 8, t.layers = 12;
  get(txt, "context_length", t.max_positions, tw);
  get(txt, "vocab_size", t.vocab, tw);
  get(txt, "width", t.hidden, tw);
  get(txt, "heads", t.heads, tw);
  get(txt, "layers", t.layers, tw);
  double mlp_ratio = 4.0;
  get(txt, "mlp_ratio", mlp_ratio, tw);
  t.ffn = (int)(t.hidden * mlp_ratio);
  bool no_causal = false;
  get(txt, "no_causal_mask", no_causal, tw);
  t.causal = !no_causal;
  cfgjson::check_tower(t, tw);

  // preprocessing: open_clip's defaults are OpenAI's (shortest side bicubic, center crop)
  PreprocessConfig& p = c.preprocess;
  p.shortest_edge = p.crop = v.image_size;
  p.round_crop = true;
  if (root.contains("preprocess_cfg") && root["preprocess_cfg"].is_object()) {
    const json& pc = root["preprocess_cfg"];
    const std::string pw = file + " preprocess_cfg";
    cfgjson::read_mean_std(pc, "mean", "std", p, pw);
    std::string interp = "bicubic", mode = "shortest";
    get(pc, "interpolation", interp, pw);
    get(pc, "resize_mode", mode, pw);
    if (interp == "bilinear")
      p.interpolation = Interpolation::bilinear;
    else if (interp != "bicubic")
      throw std::runtime_error(
          fmt::format("{}: interpolation '{}' is not supported (bicubic, bilinear)", pw, interp));
    if (mode == "squash")
      p.squash = true;
    else if (mode != "shortest")
      throw std::runtime_error(
          fmt::format("{}: resize_mode '{}' is not supported (shortest, squash)", pw, mode));
    if (pc.contains("size") && pc["size"].is_number_integer() && pc["size"].get<int>() != v.image_size)
      throw std::runtime_error(fmt::format("{}: size {} differs from vision_cfg.image_size {}", pw,
                                           pc["size"].get<int>(), v.image_size));
  }
  return c;
}

}  // namespace capforge::clip
