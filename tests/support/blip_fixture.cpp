#include "support/blip_fixture.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

#include "ggml.h"

namespace fs = std::filesystem;
using nlohmann::json;  // sorted keys, as transformers' to_json_string(sort_keys=True) writes them

namespace capforge::test {

namespace {

// The tiny WordPiece vocabulary after its specials: punctuation, digits, letters, words, pieces.
std::vector<std::string> tiny_tokens() {
  std::vector<std::string> v;
  for (char c : std::string("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~0123456789abcdefghijklmnopqrstuvwxyz"))
    v.emplace_back(1, c);
  const char* words[] = {
      "a",      "an",     "the",      "of",     "on",    "in",      "with",     "at",       "and",    "to",
      "is",     "are",    "there",    "this",   "next",  "picture", "photo",    "image",    "view",   "close",
      "up",     "dog",    "cat",      "man",    "woman", "people",  "person",   "child",    "bird",   "horse",
      "car",    "bus",    "train",    "bike",   "boat",  "plane",   "tree",     "grass",    "water",  "beach",
      "sky",    "cloud",  "sun",      "street", "road",  "city",    "building", "house",    "room",   "table",
      "chair",  "sofa",   "bed",      "window", "door",  "wall",    "floor",    "food",     "plate",  "pizza",
      "red",    "blue",   "green",    "yellow", "black", "white",   "orange",   "purple",   "gray",   "brown",
      "square", "circle", "triangle", "shape",  "line",  "pattern", "color",    "colorful", "small",  "large",
      "big",    "two",    "three",    "four",   "many",  "some",    "sitting",  "standing", "run",    "walk",
      "play",   "hold",   "eat",      "look",   "top",   "front",   "back",     "side",     "left",   "right",
      "over",   "under",  "near",     "from",   "his",   "her",     "their",    "its",      "bright", "dark"};
  for (const char* w : words) v.emplace_back(w);
  for (const char* p : {"##s", "##es", "##ing", "##ed", "##er", "##ers", "##ly", "##y", "##ful", "##ness"})
    v.emplace_back(p);
  for (char c : std::string("abcdefghijklmnopqrstuvwxyz0123456789")) v.push_back(std::string("##") + c);
  std::vector<std::string> once;  // "a" is a letter and a word, "##s" a suffix and a letter: list each once
  for (auto& t : v)
    if (std::find(once.begin(), once.end(), t) == once.end()) once.push_back(t);
  return once;
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

// safetensors as save_pretrained writes it (the Rust writer): {"__metadata__": {"format": "pt"}}
// first (from_pretrained refuses a file without it), then the tensors in name order; streamed.
void write_st(const fs::path& path, const std::map<std::string, FixtureTensor>& tensors,
              const std::string& dtype) {
  const size_t elem = dtype == "F32" ? 4 : 2;
  nlohmann::ordered_json header = {{"__metadata__", {{"format", "pt"}}}};
  size_t offset = 0;
  for (auto& [name, t] : tensors) {
    header[name] = {
        {"dtype", dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.data.size() * elem}}};
    offset += t.data.size() * elem;
  }
  std::string h = header.dump();
  while (h.size() % 8) h += ' ';
  const uint64_t len = h.size();
  std::ofstream f(path, std::ios::binary);
  f.write((const char*)&len, 8);
  f << h;
  std::vector<uint16_t> half;
  for (auto& [name, t] : tensors) {
    if (dtype == "F32") {
      f.write((const char*)t.data.data(), (std::streamsize)(t.data.size() * 4));
      continue;
    }
    half.resize(t.data.size());
    if (dtype == "F16")
      ggml_fp32_to_fp16_row(t.data.data(), (ggml_fp16_t*)half.data(), (int64_t)half.size());
    else
      ggml_fp32_to_bf16_row(t.data.data(), (ggml_bf16_t*)half.data(), (int64_t)half.size());
    f.write((const char*)half.data(), (std::streamsize)(half.size() * 2));
  }
  if (!f) throw std::runtime_error("cannot write " + path.string());
}

void merge(const fs::path& path, json j, const std::string& patch) {
  if (!patch.empty()) j.merge_patch(json::parse(patch));
  std::ofstream f(path);
  f << j.dump(2) << "\n";
  if (!f) throw std::runtime_error("cannot write " + path.string());
}

}  // namespace

BlipFixtureSpec BlipFixtureSpec::shape(const std::string& name) {
  BlipFixtureSpec s;
  if (name == "tiny") return s;
  if (name != "base" && name != "large") throw std::invalid_argument("unknown BLIP shape " + name);
  const bool large = name == "large";
  s.vision_hidden = large ? 1024 : 768, s.vision_heads = large ? 16 : 12, s.vision_layers = large ? 24 : 12;
  s.vision_ffn = 4 * s.vision_hidden, s.image_size = 384, s.patch_size = 16;
  s.text_hidden = 768, s.text_heads = 12, s.text_layers = 12, s.text_ffn = 3072, s.max_positions = 512;
  s.bert_vocab = true;
  return s;
}

std::vector<std::string> blip_vocab(const BlipFixtureSpec& s) {
  if (!s.bert_vocab) {
    std::vector<std::string> v = {"[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (auto& t : tiny_tokens()) v.push_back(t);
    return v;
  }
  // bert-base-uncased's special ids: [PAD] 0, [unused0..98] 1-99, [UNK] 100, [CLS] 101, [SEP] 102,
  // [MASK] 103, [unused99..993] 104-998, then tokens; the rest is filled with more [unusedN].
  std::vector<std::string> v = {"[PAD]"};
  int unused = 0;
  while (v.size() < 100) v.push_back(fmt::format("[unused{}]", unused++));
  for (auto t : {"[UNK]", "[CLS]", "[SEP]", "[MASK]"}) v.emplace_back(t);
  while (v.size() < 999) v.push_back(fmt::format("[unused{}]", unused++));
  for (auto& t : tiny_tokens()) v.push_back(t);
  while (v.size() < 30522) v.push_back(fmt::format("[unused{}]", unused++));
  return v;
}

std::vector<std::pair<std::string, FixtureTensor>> blip_tensors(const BlipFixtureSpec& s) {
  std::vector<std::pair<std::string, FixtureTensor>> t;
  std::mt19937 rng(s.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float mean, float sd) {
    FixtureTensor x{shape, std::vector<float>((size_t)numel(shape))};
    for (auto& v : x.data) v = mean + sd * normal(rng);
    t.emplace_back(name, std::move(x));
  };
  // nn.Linear: weight [out, in] with std scale/sqrt(in), bias 0.1
  auto linear = [&](const std::string& name, int out, int in) {
    add(name + ".weight", {out, in}, 0.0f, s.scale / std::sqrt((float)in));
    add(name + ".bias", {out}, 0.0f, 0.1f);
  };
  auto norm = [&](const std::string& name, int d) {
    add(name + ".weight", {d}, 1.0f, 0.1f);
    add(name + ".bias", {d}, 0.0f, 0.1f);
  };
  const int Dv = s.vision_hidden, Dt = s.text_hidden, P = s.patch_size, G = s.image_size / s.patch_size;
  const int V = (int)blip_vocab(s).size() + 2;
  const std::string ve = "vision_model.embeddings.";
  add(ve + "class_embedding", {1, 1, Dv}, 0.0f, 0.5f);
  add(ve + "position_embedding", {1, G * G + 1, Dv}, 0.0f, 0.5f);
  add(ve + "patch_embedding.weight", {Dv, 3, P, P}, 0.0f, s.scale / std::sqrt(3.0f * P * P));
  add(ve + "patch_embedding.bias", {Dv}, 0.0f, 0.1f);
  for (int i = 0; i < s.vision_layers; ++i) {
    const std::string l = fmt::format("vision_model.encoder.layers.{}.", i);
    linear(l + "self_attn.qkv", 3 * Dv, Dv);
    linear(l + "self_attn.projection", Dv, Dv);
    norm(l + "layer_norm1", Dv);
    linear(l + "mlp.fc1", s.vision_ffn, Dv);
    linear(l + "mlp.fc2", Dv, s.vision_ffn);
    norm(l + "layer_norm2", Dv);
  }
  norm("vision_model.post_layernorm", Dv);
  const std::string te = "text_decoder.bert.embeddings.";
  add(te + "word_embeddings.weight", {V, Dt}, 0.0f, 1.0f);
  add(te + "position_embeddings.weight", {s.max_positions, Dt}, 0.0f, 0.5f);
  norm(te + "LayerNorm", Dt);
  for (int i = 0; i < s.text_layers; ++i) {
    const std::string l = fmt::format("text_decoder.bert.encoder.layer.{}.", i);
    for (const char* a : {"attention", "crossattention"}) {
      const int kv_in = std::string(a) == "attention" ? Dt : Dv;
      linear(l + a + ".self.query", Dt, Dt);
      linear(l + a + ".self.key", Dt, kv_in);
      linear(l + a + ".self.value", Dt, kv_in);
      linear(l + a + ".output.dense", Dt, Dt);
      norm(l + a + ".output.LayerNorm", Dt);
    }
    linear(l + "intermediate.dense", s.text_ffn, Dt);
    linear(l + "output.dense", Dt, s.text_ffn);
    norm(l + "output.LayerNorm", Dt);
  }
  const std::string cp = "text_decoder.cls.predictions.";
  add(cp + "bias", {V}, 0.0f, 0.1f);
  linear(cp + "transform.dense", Dt, Dt);
  norm(cp + "transform.LayerNorm", Dt);
  if (s.tie_decoder) {
    for (size_t i = 0; i < t.size(); ++i)
      if (t[i].first == te + "word_embeddings.weight") {
        FixtureTensor copy = t[i].second;
        t.emplace_back(cp + "decoder.weight", std::move(copy));
        break;
      }
  } else {
    add(cp + "decoder.weight", {V, Dt}, 0.0f, s.scale / std::sqrt((float)Dt));
  }
  return t;
}

int write_blip_fixture(const BlipFixtureSpec& s, const std::string& dir) {
  if (s.image_size % s.patch_size || s.vision_hidden % s.vision_heads || s.text_hidden % s.text_heads)
    throw std::invalid_argument("inconsistent BLIP fixture dimensions");
  fs::create_directories(dir);
  const fs::path d(dir);
  const std::vector<std::string> vocab = blip_vocab(s);
  const int V = (int)vocab.size() + 2;
  auto id = [&](const std::string& tok) {
    return (int)(std::find(vocab.begin(), vocab.end(), tok) - vocab.begin());
  };

  // weights
  auto tensors = blip_tensors(s);
  for (const std::string& n : {s.drop_tensor, s.misshape_tensor})
    if (!n.empty() && std::none_of(tensors.begin(), tensors.end(), [&](auto& t) { return t.first == n; }))
      throw std::invalid_argument("the BLIP fixture has no tensor " + n);
  std::vector<std::pair<std::string, FixtureTensor>> kept;
  for (auto& [name, x] : tensors) {
    if (name == s.drop_tensor) continue;
    if (name == s.misshape_tensor) {
      std::mt19937 rng(s.seed + 7);
      std::normal_distribution<float> normal(0.0f, 0.1f);
      x.shape[0] += 1;
      while ((int64_t)x.data.size() < numel(x.shape)) x.data.push_back(normal(rng));
    }
    kept.emplace_back(name, std::move(x));
  }
  tensors.clear();
  const size_t elem = s.dtype == "F32" ? 4 : 2;
  const int shards = std::max(1, std::min(s.shards, (int)kept.size()));
  if (shards == 1) {
    std::map<std::string, FixtureTensor> all;
    for (auto& [name, x] : kept) all[name] = std::move(x);
    write_st(d / "model.safetensors", all, s.dtype);
  } else {  // like save_pretrained: consecutive runs of the state_dict, about equal in bytes
    size_t total = 0, done = 0;
    for (auto& [name, x] : kept) total += x.data.size() * elem;
    json weight_map = json::object();
    std::vector<std::map<std::string, FixtureTensor>> parts((size_t)shards);
    for (size_t i = 0, k = 0; i < kept.size(); ++i) {
      size_t left = kept.size() - i;  // keep at least one tensor for each remaining shard
      if (k + 1 < (size_t)shards && !parts[k].empty() &&
          (done >= total * (k + 1) / shards || left <= (size_t)shards - 1 - k))
        ++k;
      done += kept[i].second.data.size() * elem;
      weight_map[kept[i].first] = fmt::format("model-{:05d}-of-{:05d}.safetensors", k + 1, shards);
      parts[k][kept[i].first] = std::move(kept[i].second);
    }
    for (size_t k = 0; k < parts.size(); ++k)
      write_st(d / fmt::format("model-{:05d}-of-{:05d}.safetensors", k + 1, shards), parts[k], s.dtype);
    merge(d / "model.safetensors.index.json",
          {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}, "");
  }

  // config.json: BlipConfig.to_dict() fields of the published checkpoints
  json text = {{"attention_probs_dropout_prob", 0.0},
               {"bos_token_id", V - 2},
               {"encoder_hidden_size", s.vision_hidden},
               {"eos_token_id", 2},
               {"hidden_act", "gelu"},
               {"hidden_dropout_prob", 0.0},
               {"hidden_size", s.text_hidden},
               {"initializer_range", 0.02},
               {"intermediate_size", s.text_ffn},
               {"is_decoder", true},
               {"label_smoothing", 0.0},
               {"layer_norm_eps", 1e-12},
               {"max_position_embeddings", s.max_positions},
               {"model_type", "blip_text_model"},
               {"num_attention_heads", s.text_heads},
               {"num_hidden_layers", s.text_layers},
               {"pad_token_id", id("[PAD]")},
               {"projection_dim", 768},
               {"sep_token_id", id("[SEP]")},
               {"use_cache", true},
               {"vocab_size", V}};
  json vision = {{"attention_dropout", 0.0},
                 {"hidden_act", "gelu"},
                 {"hidden_size", s.vision_hidden},
                 {"image_size", s.image_size},
                 {"initializer_range", 1e-10},
                 {"intermediate_size", s.vision_ffn},
                 {"layer_norm_eps", 1e-5},
                 {"model_type", "blip_vision_model"},
                 {"num_attention_heads", s.vision_heads},
                 {"num_channels", 3},
                 {"num_hidden_layers", s.vision_layers},
                 {"patch_size", s.patch_size},
                 {"projection_dim", 512}};
  const char* torch_dtype = s.dtype == "F16" ? "float16" : s.dtype == "BF16" ? "bfloat16" : "float32";
  merge(d / "config.json",
        {{"architectures", {"BlipForConditionalGeneration"}},
         {"image_text_hidden_size", 256},
         {"initializer_factor", 1.0},
         {"initializer_range", 0.02},
         {"label_smoothing", 0.0},
         {"logit_scale_init_value", 2.6592},
         {"model_type", "blip"},
         {"projection_dim", 512},
         {"text_config", text},
         {"torch_dtype", torch_dtype},
         {"transformers_version", "4.47.0"},
         {"vision_config", vision}},
        s.config_patch);

  // preprocessor_config.json: BlipImageProcessor, square bicubic resize, OpenAI CLIP mean/std
  merge(d / "preprocessor_config.json",
        {{"do_convert_rgb", true},
         {"do_normalize", true},
         {"do_rescale", true},
         {"do_resize", true},
         {"image_mean", {0.48145466, 0.4578275, 0.40821073}},
         {"image_processor_type", "BlipImageProcessor"},
         {"image_std", {0.26862954, 0.26130258, 0.27577711}},
         {"processor_class", "BlipProcessor"},
         {"resample", 3},
         {"rescale_factor", 1.0 / 255},
         {"size", {{"height", s.image_size}, {"width", s.image_size}}}},
        s.preprocessor_patch);

  // tokenizer: BertTokenizer (uncased) + [DEC] (bos) and [ENC] appended after vocab.txt
  {
    std::ofstream f(d / "vocab.txt");
    for (auto& t : vocab) f << t << "\n";
    if (!f) throw std::runtime_error("cannot write vocab.txt");
  }
  auto added = [](const std::string& content) {
    return json{{"content", content}, {"lstrip", false},      {"normalized", false},
                {"rstrip", false},    {"single_word", false}, {"special", true}};
  };
  json decoder = json::object();
  for (auto t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) decoder[std::to_string(id(t))] = added(t);
  if (!s.vocab_without_dec) decoder[std::to_string(V - 2)] = added("[DEC]");
  decoder[std::to_string(V - 1)] = added("[ENC]");
  json tok = {{"added_tokens_decoder", decoder},
              {"additional_special_tokens", {"[ENC]"}},
              {"clean_up_tokenization_spaces", true},
              {"cls_token", "[CLS]"},
              {"do_basic_tokenize", true},
              {"do_lower_case", true},
              {"mask_token", "[MASK]"},
              {"model_max_length", 512},
              {"never_split", nullptr},
              {"pad_token", "[PAD]"},
              {"processor_class", "BlipProcessor"},
              {"sep_token", "[SEP]"},
              {"strip_accents", nullptr},
              {"tokenize_chinese_chars", true},
              {"tokenizer_class", "BertTokenizer"},
              {"unk_token", "[UNK]"}};
  json map = {{"additional_special_tokens", {"[ENC]"}},
              {"cls_token", "[CLS]"},
              {"mask_token", "[MASK]"},
              {"pad_token", "[PAD]"},
              {"sep_token", "[SEP]"},
              {"unk_token", "[UNK]"}};
  if (!s.vocab_without_dec) tok["bos_token"] = "[DEC]", map["bos_token"] = "[DEC]";
  merge(d / "tokenizer_config.json", tok, "");
  merge(d / "special_tokens_map.json", map, "");
  return V;
}

}  // namespace capforge::test
