#include "support/open_clip_fixture.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <vector>

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace capforge::test {

namespace {

// Random tensors in the spec's seeded stream.
class Gen {
 public:
  explicit Gen(uint32_t seed, std::map<std::string, FixtureTensor>& out) : rng_(seed), out_(out) {}
  void normal(const std::string& name, std::vector<int64_t> shape, float mean, float stddev) {
    std::normal_distribution<float> d(0.0f, 1.0f);
    fill(name, std::move(shape), [&] { return mean + stddev * d(rng_); });
  }
  void uniform(const std::string& name, std::vector<int64_t> shape, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    fill(name, std::move(shape), [&] { return d(rng_); });
  }
  // Weights whose product with O(1) inputs stays O(1): std 1/sqrt(fan_in), fan_in = all but dim 0.
  void kaiming(const std::string& name, std::vector<int64_t> shape) {
    int64_t fan_in = 1;
    for (size_t i = 1; i < shape.size(); ++i) fan_in *= shape[i];
    normal(name, std::move(shape), 0.0f, 1.0f / std::sqrt((float)fan_in));
  }
  void layer_norm(const std::string& p, int64_t d) {
    normal(p + ".weight", {d}, 1.0f, 0.1f);
    normal(p + ".bias", {d}, 0.0f, 0.1f);
  }
  void linear(const std::string& p, int64_t out, int64_t in) {
    kaiming(p + ".weight", {out, in});
    normal(p + ".bias", {out}, 0.0f, 0.1f);
  }
  // BatchNorm2d in eval: gamma around `gain`, random running statistics (var > 0).
  void batch_norm(const std::string& p, int64_t c, float gain) {
    normal(p + ".weight", {c}, gain, 0.1f * gain);
    normal(p + ".bias", {c}, 0.0f, 0.1f);
    normal(p + ".running_mean", {c}, 0.0f, 0.1f);
    uniform(p + ".running_var", {c}, 0.5f, 1.5f);
  }

 private:
  template <typename F>
  void fill(const std::string& name, std::vector<int64_t> shape, F value) {
    FixtureTensor t;
    int64_t n = 1;
    for (auto d : shape) n *= d;
    t.shape = std::move(shape);
    t.data.resize((size_t)n);
    for (auto& v : t.data) v = value();
    out_[name] = std::move(t);
  }
  std::mt19937 rng_;
  std::map<std::string, FixtureTensor>& out_;
};

// OpenAI's Transformer: {prefix}transformer.resblocks.{i}.{ln_1, attn.in_proj_*, attn.out_proj, ln_2,
// mlp.c_fc, mlp.c_proj}, MLP ratio 4.
void resblocks(Gen& g, const std::string& prefix, int64_t d, int layers) {
  for (int i = 0; i < layers; ++i) {
    const std::string p = fmt::format("{}transformer.resblocks.{}.", prefix, i);
    g.layer_norm(p + "ln_1", d);
    g.kaiming(p + "attn.in_proj_weight", {3 * d, d});
    g.normal(p + "attn.in_proj_bias", {3 * d}, 0.0f, 0.1f);
    g.linear(p + "attn.out_proj", d, d);
    g.layer_norm(p + "ln_2", d);
    g.linear(p + "mlp.c_fc", 4 * d, d);
    g.linear(p + "mlp.c_proj", d, 4 * d);
  }
}

// ModifiedResNet: stem conv1..3 + bn1..3, layer1..4 of Bottlenecks, attnpool.
void resnet(Gen& g, const OpenClipFixtureSpec& s) {
  auto conv_bn = [&](const std::string& conv, const std::string& bn, int64_t cout, int64_t cin, int64_t k,
                     float gain) {
    g.kaiming(conv, {cout, cin, k, k});
    g.batch_norm(bn, cout, gain);
  };
  const int64_t w = s.rn_width;
  conv_bn("visual.conv1.weight", "visual.bn1", w / 2, 3, 3, 1.0f);
  conv_bn("visual.conv2.weight", "visual.bn2", w / 2, w / 2, 3, 1.0f);
  conv_bn("visual.conv3.weight", "visual.bn3", w, w / 2, 3, 1.0f);
  int64_t inplanes = w;
  for (int st = 0; st < 4; ++st) {
    const int64_t planes = w << st;
    for (int i = 0; i < s.rn_layers[(size_t)st]; ++i) {
      const std::string p = fmt::format("visual.layer{}.{}.", st + 1, i);
      const bool down = i == 0 && (st > 0 || inplanes != planes * 4);
      conv_bn(p + "conv1.weight", p + "bn1", planes, inplanes, 1, 1.0f);
      conv_bn(p + "conv2.weight", p + "bn2", planes, planes, 3, 1.0f);
      conv_bn(p + "conv3.weight", p + "bn3", planes * 4, planes, 1, 0.25f);  // small residual updates
      // Sequential("-1": AvgPool2d, "0": Conv2d, "1": BatchNorm2d)
      if (down) conv_bn(p + "downsample.0.weight", p + "downsample.1", planes * 4, inplanes, 1, 1.0f);
      inplanes = planes * 4;
    }
  }
  const int64_t c = w * 32, grid = s.image_size / 32;
  g.normal("visual.attnpool.positional_embedding", {grid * grid + 1, c}, 0.0f, 1.0f / std::sqrt((float)c));
  for (const char* n : {"q_proj", "k_proj", "v_proj"}) g.linear(fmt::format("visual.attnpool.{}", n), c, c);
  g.linear("visual.attnpool.c_proj", s.embed_dim, c);
}

void vit(Gen& g, const OpenClipFixtureSpec& s) {
  const int64_t d = s.vit_width, p = s.patch_size, grid = s.image_size / s.patch_size;
  const float scale = 1.0f / std::sqrt((float)d);
  g.normal("visual.class_embedding", {d}, 0.0f, scale);
  g.normal("visual.positional_embedding", {grid * grid + 1, d}, 0.0f, scale);
  g.kaiming("visual.conv1.weight", {d, 3, p, p});
  g.layer_norm("visual.ln_pre", d);
  resblocks(g, "visual.", d, s.vit_layers);
  g.layer_norm("visual.ln_post", d);
  g.normal("visual.proj", {d, s.embed_dim}, 0.0f, scale);  // x @ proj
}

// Rewrites the safetensors file at `path` with an I64 scalar 0 appended under each name (the
// shared writer stores floats only).
void append_i64_scalars(const std::string& path, const std::vector<std::string>& names) {
  std::ifstream in(path, std::ios::binary);
  uint64_t len = 0;
  in.read((char*)&len, 8);
  std::string h(len, '\0');
  in.read(h.data(), (std::streamsize)len);
  if (!in) throw std::runtime_error("cannot read back " + path);
  ordered_json header = ordered_json::parse(h);
  const uint64_t data_size = fs::file_size(path) - 8 - len;
  for (size_t i = 0; i < names.size(); ++i)
    header[names[i]] = {{"dtype", "I64"},
                        {"shape", ordered_json::array()},
                        {"data_offsets", {data_size + 8 * i, data_size + 8 * (i + 1)}}};
  std::string nh = header.dump();
  while ((nh.size() + 8) % 8) nh += ' ';
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    uint64_t nlen = nh.size();
    out.write((const char*)&nlen, 8);
    out << nh;
    if (data_size) out << in.rdbuf();
    out << std::string(8 * names.size(), '\0');  // little-endian 0
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  in.close();
  fs::rename(tmp, path);
}

}  // namespace

OpenClipFixtureSpec open_clip_shape(const std::string& name) {
  OpenClipFixtureSpec s;
  if (name == "rn-tiny") return s;
  if (name == "rn50x64") {
    s.image_size = 448, s.rn_layers = {3, 15, 36, 10}, s.rn_width = 128, s.embed_dim = 1024;
    s.text_width = 1024, s.text_heads = 16, s.text_layers = 12;
    return s;
  }
  s.resnet = false;
  if (name == "vit-tiny") {
    s.image_size = 32, s.patch_size = 8, s.vit_width = 64, s.vit_layers = 2, s.head_width = 16;
    return s;
  }
  if (name == "vit-l-14") {
    s.image_size = 224, s.patch_size = 14, s.vit_width = 1024, s.vit_layers = 24, s.head_width = 64;
    s.embed_dim = 768, s.text_width = 768, s.text_heads = 12, s.text_layers = 12;
    return s;
  }
  throw std::invalid_argument("unknown open_clip fixture shape '" + name +
                              "' (rn-tiny, rn50x64, vit-tiny, vit-l-14)");
}

std::map<std::string, FixtureTensor> open_clip_tensors(const OpenClipFixtureSpec& s) {
  std::map<std::string, FixtureTensor> t;
  Gen g(s.seed, t);
  const int64_t dt = s.text_width;
  g.normal("token_embedding.weight", {s.vocab_size, dt}, 0.0f, 0.5f);
  g.normal("positional_embedding", {s.context_length, dt}, 0.0f, 0.1f);
  resblocks(g, "", dt, s.text_layers);
  g.layer_norm("ln_final", dt);
  g.normal("text_projection", {dt, s.embed_dim}, 0.0f, 1.0f / std::sqrt((float)dt));  // x @ text_projection
  if (s.resnet)
    resnet(g, s);
  else
    vit(g, s);
  t["logit_scale"] = {{}, {std::log(100.0f)}};
  return t;
}

void save_open_clip(const OpenClipFixtureSpec& s, const std::string& dir) {
  fs::create_directories(dir);
  ordered_json vision;
  if (s.resnet)
    vision = {{"image_size", s.image_size},
              {"layers", s.rn_layers},
              {"width", s.rn_width},
              {"head_width", s.head_width},
              {"patch_size", nullptr}};
  else
    vision = {{"image_size", s.image_size},
              {"layers", s.vit_layers},
              {"width", s.vit_width},
              {"patch_size", s.patch_size},
              {"head_width", s.head_width}};
  ordered_json cfg = {{"model_cfg",
                       {{"embed_dim", s.embed_dim},
                        {"quick_gelu", s.quick_gelu},
                        {"vision_cfg", vision},
                        {"text_cfg",
                         {{"context_length", s.context_length},
                          {"vocab_size", s.vocab_size},
                          {"width", s.text_width},
                          {"heads", s.text_heads},
                          {"layers", s.text_layers}}}}},
                      {"preprocess_cfg",
                       {{"mean", {0.48145466, 0.4578275, 0.40821073}},
                        {"std", {0.26862954, 0.26130258, 0.27577711}},
                        {"interpolation", "bicubic"},
                        {"resize_mode", "shortest"}}}};
  std::ofstream(fs::path(dir) / "open_clip_config.json") << cfg.dump(2);

  std::map<std::string, FixtureTensor> tensors = open_clip_tensors(s);
  std::vector<std::string> counters;
  if (s.resnet && s.bn_counters)
    for (auto& [name, t] : tensors)
      if (name.ends_with(".running_var"))
        counters.push_back(name.substr(0, name.size() - 11) + "num_batches_tracked");
  const std::string path = (fs::path(dir) / "open_clip_model.safetensors").string();
  write_safetensors(path, tensors, s.dtype);
  if (!counters.empty()) append_i64_scalars(path, counters);
}

}  // namespace capforge::test
