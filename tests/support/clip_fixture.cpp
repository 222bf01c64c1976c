#include "support/clip_fixture.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

#include "ggml.h"
#include "gguf.h"
#include "models/clip/tokenizer.h"

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace capforge::test {

namespace {

// A small OpenAI-format merges file: the vocabulary is every byte, every byte + "</w>", these
// merges, and the two special tokens.
const char* kMerges[] = {"t h",      "th e</w>", "a </w>", "c a",   "ca t</w>",  "d o",
                         "do g</w>", "o f</w>",  "p h",    "o t",   "ph ot",     "phot o</w>",
                         "r e",      "re d</w>", "b l",    "bl u",  "blu e</w>", "o n</w>",
                         "i n</w>",  "s q",      "sq u",   "squ a", "squa r",    "squar e</w>"};

std::string merges_file() {
  std::string s = "#version: fixture\n";
  for (const char* m : kMerges) s += std::string(m) + "\n";
  return s;
}

}  // namespace

ClipFixture::ClipFixture(const ClipFixtureSpec& s) : spec_(s) {
  vocab_size = std::max(s.vocab_rows, 512 + (int)std::size(kMerges) + 2);
  std::mt19937 rng(s.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float mean, float stddev) {
    FixtureTensor t;
    t.shape = shape;
    int64_t n = 1;
    for (auto d : shape) n *= d;
    t.data.resize((size_t)n);
    for (auto& v : t.data) v = mean + stddev * normal(rng);
    tensors[name] = std::move(t);
  };
  auto tower = [&](const std::string& p, int D, int F, int L) {
    for (int i = 0; i < L; ++i) {
      std::string l = fmt::format("{}.encoder.layers.{}.", p, i);
      for (auto n : {"layer_norm1", "layer_norm2"}) {
        add(l + n + ".weight", {D}, 1.0f, 0.1f);
        add(l + n + ".bias", {D}, 0.0f, 0.1f);
      }
      for (auto n : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
        add(l + "self_attn." + n + ".weight", {D, D}, 0.0f, s.scale);
        add(l + "self_attn." + n + ".bias", {D}, 0.0f, 0.1f);
      }
      add(l + "mlp.fc1.weight", {F, D}, 0.0f, s.scale);
      add(l + "mlp.fc1.bias", {F}, 0.0f, 0.1f);
      add(l + "mlp.fc2.weight", {D, F}, 0.0f, s.scale);
      add(l + "mlp.fc2.bias", {D}, 0.0f, 0.1f);
    }
  };
  const int Dt = s.text_hidden, Dv = s.vision_hidden, P = s.patch_size, G = s.image_size / s.patch_size;
  add("text_model.embeddings.token_embedding.weight", {vocab_size, Dt}, 0.0f, 1.0f);
  add("text_model.embeddings.position_embedding.weight", {s.max_positions, Dt}, 0.0f, 0.5f);
  tower("text_model", Dt, s.text_ffn, s.text_layers);
  add("text_model.final_layer_norm.weight", {Dt}, 1.0f, 0.1f);
  add("text_model.final_layer_norm.bias", {Dt}, 0.0f, 0.1f);
  add("text_projection.weight", {s.projection_dim, Dt}, 0.0f, s.scale);
  add("vision_model.embeddings.class_embedding", {Dv}, 0.0f, 1.0f);
  add("vision_model.embeddings.patch_embedding.weight", {Dv, 3, P, P}, 0.0f, s.scale);
  add("vision_model.embeddings.position_embedding.weight", {G * G + 1, Dv}, 0.0f, 0.5f);
  add("vision_model.pre_layrnorm.weight", {Dv}, 1.0f, 0.1f);
  add("vision_model.pre_layrnorm.bias", {Dv}, 0.0f, 0.1f);
  tower("vision_model", Dv, s.vision_ffn, s.vision_layers);
  add("vision_model.post_layernorm.weight", {Dv}, 1.0f, 0.1f);
  add("vision_model.post_layernorm.bias", {Dv}, 0.0f, 0.1f);
  add("visual_projection.weight", {s.projection_dim, Dv}, 0.0f, s.scale);
  tensors["logit_scale"] = {{}, {2.6592f}};
}

void write_safetensors(const std::string& path, const std::map<std::string, FixtureTensor>& tensors,
                       const std::string& dtype) {
  size_t elem = dtype == "F32" ? 4 : 2;
  ordered_json header = ordered_json::object();
  std::string data;
  for (auto& [name, t] : tensors) {
    size_t begin = data.size();
    if (dtype == "F32") {
      data.append((const char*)t.data.data(), t.data.size() * 4);
    } else {
      std::vector<uint16_t> half(t.data.size());
      if (dtype == "F16")
        ggml_fp32_to_fp16_row(t.data.data(), (ggml_fp16_t*)half.data(), (int64_t)half.size());
      else
        ggml_fp32_to_bf16_row(t.data.data(), (ggml_bf16_t*)half.data(), (int64_t)half.size());
      data.append((const char*)half.data(), half.size() * 2);
    }
    header[name] = {
        {"dtype", dtype}, {"shape", t.shape}, {"data_offsets", {begin, begin + t.data.size() * elem}}};
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8) h += ' ';
  uint64_t len = h.size();
  std::ofstream f(path, std::ios::binary);
  f.write((const char*)&len, 8);
  f << h << data;
  if (!f) throw std::runtime_error("cannot write " + path);
}

void ClipFixture::save_hf(const std::string& dir) const {
  fs::create_directories(dir);
  const ClipFixtureSpec& s = spec_;
  ordered_json cfg = {{"architectures", {"CLIPModel"}},
                      {"model_type", "clip"},
                      {"projection_dim", s.projection_dim},
                      {"logit_scale_init_value", 2.6592},
                      {"text_config",
                       {{"hidden_size", s.text_hidden},
                        {"intermediate_size", s.text_ffn},
                        {"num_attention_heads", s.text_heads},
                        {"num_hidden_layers", s.text_layers},
                        {"max_position_embeddings", s.max_positions},
                        {"vocab_size", vocab_size},
                        {"hidden_act", s.act},
                        {"layer_norm_eps", 1e-5}}},
                      {"vision_config",
                       {{"hidden_size", s.vision_hidden},
                        {"intermediate_size", s.vision_ffn},
                        {"num_attention_heads", s.vision_heads},
                        {"num_hidden_layers", s.vision_layers},
                        {"image_size", s.image_size},
                        {"patch_size", s.patch_size},
                        {"hidden_act", s.act},
                        {"layer_norm_eps", 1e-5}}}};
  std::ofstream(fs::path(dir) / "config.json") << cfg.dump(2);
  ordered_json pre = {{"crop_size", {{"height", s.image_size}, {"width", s.image_size}}},
                      {"do_center_crop", true},
                      {"do_normalize", true},
                      {"do_resize", true},
                      {"image_mean", {0.48145466, 0.4578275, 0.40821073}},
                      {"image_std", {0.26862954, 0.26130258, 0.27577711}},
                      {"resample", 3},
                      {"size", {{"shortest_edge", s.image_size}}}};
  std::ofstream(fs::path(dir) / "preprocessor_config.json") << pre.dump(2);
  if (!s.openai_vocab.empty()) {
    clip::Tokenizer::from_openai_bpe(s.openai_vocab).save_hf(dir);
  } else {
    std::string merges_path = (fs::path(dir) / "openai_merges.txt").string();
    std::ofstream(merges_path) << merges_file();
    clip::Tokenizer::from_openai_bpe(merges_path).save_hf(dir);
    fs::remove(merges_path);
  }
  if (s.shards <= 1) {
    write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, s.dtype);
    return;
  }
  std::vector<std::map<std::string, FixtureTensor>> parts((size_t)s.shards);
  ordered_json weight_map = ordered_json::object();
  size_t i = 0;
  for (auto& [name, t] : tensors) {
    size_t k = i++ % parts.size();
    parts[k][name] = t;
    weight_map[name] = fmt::format("model-{:05d}-of-{:05d}.safetensors", k + 1, parts.size());
  }
  for (size_t k = 0; k < parts.size(); ++k)
    write_safetensors(
        (fs::path(dir) / fmt::format("model-{:05d}-of-{:05d}.safetensors", k + 1, parts.size())).string(),
        parts[k], s.dtype);
  std::ofstream(fs::path(dir) / "model.safetensors.index.json")
      << ordered_json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump(2);
}

void ClipFixture::save_mmproj(const std::string& path, int text_embd, int projector_hidden) const {
  const ClipFixtureSpec& s = spec_;
  const int D = s.vision_hidden, G = s.image_size / s.patch_size, N = G * G, M = projector_hidden,
            E = text_embd;
  gguf_context* g = gguf_init_empty();
  gguf_set_val_str(g, "general.architecture", "clip");
  gguf_set_val_bool(g, "clip.has_vision_encoder", true);
  gguf_set_val_str(g, "clip.projector_type", "mlp");
  gguf_set_val_bool(g, "clip.use_gelu", false);  // quick_gelu
  gguf_set_val_u32(g, "clip.vision.embedding_length", (uint32_t)D);
  gguf_set_val_u32(g, "clip.vision.feed_forward_length", (uint32_t)s.vision_ffn);
  gguf_set_val_u32(g, "clip.vision.block_count", (uint32_t)s.vision_layers);
  gguf_set_val_u32(g, "clip.vision.attention.head_count", (uint32_t)s.vision_heads);
  gguf_set_val_u32(g, "clip.vision.projection_dim", (uint32_t)E);
  gguf_set_val_f32(g, "clip.vision.attention.layer_norm_epsilon", 1e-5f);
  gguf_set_val_u32(g, "clip.vision.image_size", (uint32_t)s.image_size);
  gguf_set_val_u32(g, "clip.vision.patch_size", (uint32_t)s.patch_size);
  const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f},
              stdv[3] = {0.26862954f, 0.26130258f, 0.27577711f};
  gguf_set_arr_data(g, "clip.vision.image_mean", GGUF_TYPE_FLOAT32, mean, 3);
  gguf_set_arr_data(g, "clip.vision.image_std", GGUF_TYPE_FLOAT32, stdv, 3);
  const int32_t feature_layer[1] = {s.vision_layers};  // run every block
  gguf_set_arr_data(g, "clip.vision.feature_layer", GGUF_TYPE_INT32, feature_layer, 1);

  std::vector<std::pair<std::string, FixtureTensor>> out;
  auto hf = [&](const std::string& n) { return tensors.at("vision_model." + n); };
  out.push_back({"v.patch_embd.weight", hf("embeddings.patch_embedding.weight")});
  out.push_back({"v.class_embd", hf("embeddings.class_embedding")});
  FixtureTensor pos = hf("embeddings.position_embedding.weight");  // [N+1, D], class row first
  FixtureTensor reordered = pos;
  for (int j = 0; j < N; ++j)
    std::memcpy(&reordered.data[(size_t)j * D], &pos.data[(size_t)(j + 1) * D], D * 4);
  std::memcpy(&reordered.data[(size_t)N * D], &pos.data[0], D * 4);
  out.push_back({"v.position_embd.weight", reordered});
  out.push_back({"v.pre_ln.weight", hf("pre_layrnorm.weight")});
  out.push_back({"v.pre_ln.bias", hf("pre_layrnorm.bias")});
  for (int i = 0; i < s.vision_layers; ++i) {
    std::string l = fmt::format("encoder.layers.{}.", i), b = fmt::format("v.blk.{}.", i);
    for (auto [ours, theirs] :
         {std::pair{"attn_q", "self_attn.q_proj"}, std::pair{"attn_k", "self_attn.k_proj"},
          std::pair{"attn_v", "self_attn.v_proj"}, std::pair{"attn_out", "self_attn.out_proj"},
          std::pair{"ln1", "layer_norm1"}, std::pair{"ln2", "layer_norm2"}, std::pair{"ffn_up", "mlp.fc1"},
          std::pair{"ffn_down", "mlp.fc2"}}) {
      out.push_back({b + ours + ".weight", hf(l + theirs + ".weight")});
      out.push_back({b + ours + ".bias", hf(l + theirs + ".bias")});
    }
  }
  std::mt19937 rng(s.seed + 99);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  auto rnd = [&](std::vector<int64_t> shape) {
    FixtureTensor t{shape, {}};
    int64_t n = 1;
    for (auto d : shape) n *= d;
    for (int64_t k = 0; k < n; ++k) t.data.push_back(normal(rng));
    return t;
  };
  out.push_back({"mm.0.weight", rnd({M, D})});
  out.push_back({"mm.0.bias", rnd({M})});
  out.push_back({"mm.2.weight", rnd({E, M})});
  out.push_back({"mm.2.bias", rnd({E})});

  size_t bytes = ggml_tensor_overhead() * (out.size() + 4);
  for (auto& [n, t] : out) bytes += t.data.size() * 4 + 64;
  ggml_init_params ip{bytes, nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  for (auto& [name, t] : out) {
    int64_t ne[4] = {1, 1, 1, 1};
    int nd = (int)t.shape.size();
    for (int i = 0; i < nd; ++i) ne[i] = t.shape[(size_t)(nd - 1 - i)];
    ggml_tensor* x = ggml_new_tensor(ctx, GGML_TYPE_F32, nd, ne);
    ggml_set_name(x, name.c_str());
    std::memcpy(x->data, t.data.data(), t.data.size() * 4);
    gguf_add_tensor(g, x);
  }
  bool ok = gguf_write_to_file(g, path.c_str(), false);
  gguf_free(g);
  ggml_free(ctx);
  if (!ok) throw std::runtime_error("cannot write " + path);
}

}  // namespace capforge::test
