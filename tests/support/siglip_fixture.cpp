#include "support/siglip_fixture.h"

#include <fmt/format.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

#include "support/clip_fixture.h"

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace capforge::test {

namespace {

// Enough varied text (accents, CJK, digits, punctuation) for a few hundred pieces.
std::string corpus() {
  const char* lines[] = {
      "a photo of a cat sitting on a red sofa",
      "two dogs running on the beach at sunset",
      "a blue square next to a yellow circle",
      "the quick brown fox jumps over the lazy dog",
      "café crème brûlée naïve façade résumé",
      "東京の夜景 と 富士山",
      "北京 上海 广州 深圳",
      "a picture of 3 apples and 12 oranges",
      "Street art in São Paulo, Brazil!",
      "über schöne grüße aus münchen",
      "an aerial view of a city with tall buildings",
      "close-up of a green leaf with water drops",
      "a man riding a bicycle down a busy street",
      "a bowl of ramen with eggs and noodles 🍜",
      "vintage poster: 'Visit Paris' (1920s)",
      "a triangle, a square and a circle on white",
  };
  std::string s;
  for (int rep = 0; rep < 8; ++rep)
    for (const char* l : lines) s += std::string(l) + "\n";
  return s;
}

void train(const SiglipFixtureSpec& s, const fs::path& prefix) {
  fs::path text = prefix.string() + ".txt";
  std::ofstream(text) << corpus();
  std::string args = fmt::format(
      "--input={} --model_prefix={} --vocab_size={} --num_threads=1 --minloglevel=2 "
      "--hard_vocab_limit=false --character_coverage=1.0 ",
      text.string(), prefix.string(), s.spm_vocab);
  if (s.siglip2)  // Gemma: BPE with byte fallback, no normalisation, no dummy prefix
    args +=
        "--model_type=bpe --byte_fallback=true --pad_id=0 --eos_id=1 --bos_id=2 --unk_id=3 --pad_piece=<pad> "
        "--eos_piece=<eos> --bos_piece=<bos> --unk_piece=<unk> --normalization_rule_name=identity "
        "--remove_extra_whitespaces=false --add_dummy_prefix=false";
  else  // SigLIP (T5-style): unigram, </s> is eos and pad
    args +=
        "--model_type=unigram --pad_id=0 --eos_id=1 --unk_id=2 --bos_id=-1 --pad_piece=<pad> "
        "--eos_piece=</s> "
        "--unk_piece=<unk>";
  auto st = sentencepiece::SentencePieceTrainer::Train(args);
  fs::remove(text);
  if (!st.ok()) throw std::runtime_error("SentencePiece training failed: " + st.ToString());
  fs::remove(prefix.string() + ".vocab");
}

}  // namespace

int write_siglip_fixture(const SiglipFixtureSpec& s, const std::string& dir) {
  fs::create_directories(dir);
  const fs::path model = fs::path(dir) / (s.siglip2 ? "tokenizer.model" : "spiece.model");
  fs::path prefix = fs::path(dir) / "spm-train";
  train(s, prefix);
  fs::rename(prefix.string() + ".model", model);
  sentencepiece::SentencePieceProcessor sp;
  if (!sp.Load(model.string()).ok()) throw std::runtime_error("cannot reload " + model.string());
  const int vocab = sp.GetPieceSize(), rows = std::max(vocab, s.vocab_rows);

  std::map<std::string, FixtureTensor> t;
  std::mt19937 rng(s.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float mean, float sd) {
    FixtureTensor x{shape, {}};
    int64_t n = 1;
    for (auto d : shape) n *= d;
    x.data.resize((size_t)n);
    for (auto& v : x.data) v = mean + sd * normal(rng);
    t[name] = std::move(x);
  };
  auto layers = [&](const std::string& p, int D, int F, int L) {
    for (int i = 0; i < L; ++i) {
      std::string l = fmt::format("{}.encoder.layers.{}.", p, i);
      for (auto n : {"layer_norm1", "layer_norm2"})
        add(l + n + ".weight", {D}, 1.0f, 0.1f), add(l + n + ".bias", {D}, 0, 0.1f);
      for (auto n : {"q_proj", "k_proj", "v_proj", "out_proj"})
        add(l + "self_attn." + n + ".weight", {D, D}, 0, s.scale),
            add(l + "self_attn." + n + ".bias", {D}, 0, 0.1f);
      add(l + "mlp.fc1.weight", {F, D}, 0, s.scale), add(l + "mlp.fc1.bias", {F}, 0, 0.1f);
      add(l + "mlp.fc2.weight", {D, F}, 0, s.scale), add(l + "mlp.fc2.bias", {D}, 0, 0.1f);
    }
  };
  const int Dt = s.text_hidden, Dv = s.vision_hidden, P = s.patch_size, G = s.image_size / s.patch_size;
  add("text_model.embeddings.token_embedding.weight", {rows, Dt}, 0, 1.0f);
  add("text_model.embeddings.position_embedding.weight", {s.max_positions, Dt}, 0, 0.5f);
  layers("text_model", Dt, s.text_ffn, s.text_layers);
  add("text_model.final_layer_norm.weight", {Dt}, 1.0f, 0.1f),
      add("text_model.final_layer_norm.bias", {Dt}, 0, 0.1f);
  add("text_model.head.weight", {Dv, Dt}, 0, s.scale), add("text_model.head.bias", {Dv}, 0, 0.1f);
  add("vision_model.embeddings.patch_embedding.weight", {Dv, 3, P, P}, 0, s.scale);
  add("vision_model.embeddings.patch_embedding.bias", {Dv}, 0, 0.1f);
  add("vision_model.embeddings.position_embedding.weight", {G * G, Dv}, 0, 0.5f);
  layers("vision_model", Dv, s.vision_ffn, s.vision_layers);
  add("vision_model.post_layernorm.weight", {Dv}, 1.0f, 0.1f),
      add("vision_model.post_layernorm.bias", {Dv}, 0, 0.1f);
  const std::string h = "vision_model.head.";
  add(h + "probe", {1, 1, Dv}, 0, 1.0f);
  add(h + "attention.in_proj_weight", {3 * Dv, Dv}, 0, s.scale),
      add(h + "attention.in_proj_bias", {3 * Dv}, 0, 0.1f);
  add(h + "attention.out_proj.weight", {Dv, Dv}, 0, s.scale),
      add(h + "attention.out_proj.bias", {Dv}, 0, 0.1f);
  add(h + "layernorm.weight", {Dv}, 1.0f, 0.1f), add(h + "layernorm.bias", {Dv}, 0, 0.1f);
  add(h + "mlp.fc1.weight", {s.vision_ffn, Dv}, 0, s.scale), add(h + "mlp.fc1.bias", {s.vision_ffn}, 0, 0.1f);
  add(h + "mlp.fc2.weight", {Dv, s.vision_ffn}, 0, s.scale), add(h + "mlp.fc2.bias", {Dv}, 0, 0.1f);
  t["logit_scale"] = {{1}, {std::log(10.0f)}};
  t["logit_bias"] = {{1}, {-10.0f}};
  write_safetensors((fs::path(dir) / "model.safetensors").string(), t, s.dtype);

  const int pad = s.siglip2 ? 0 : 1;
  auto tower = [&](int d, int heads, int layers_n, int ffn) {
    return ordered_json{
        {"hidden_size", d},         {"num_attention_heads", heads},      {"num_hidden_layers", layers_n},
        {"intermediate_size", ffn}, {"hidden_act", "gelu_pytorch_tanh"}, {"layer_norm_eps", 1e-6}};
  };
  ordered_json text = tower(Dt, s.text_heads, s.text_layers, s.text_ffn);
  text["vocab_size"] = rows, text["max_position_embeddings"] = s.max_positions, text["pad_token_id"] = pad;
  text["projection_size"] = Dv;
  ordered_json vision = tower(Dv, s.vision_heads, s.vision_layers, s.vision_ffn);
  vision["image_size"] = s.image_size, vision["patch_size"] = P, vision["num_channels"] = 3;
  ordered_json cfg = {{"architectures", {"SiglipModel"}},
                      {"model_type", "siglip"},
                      {"text_config", text},
                      {"vision_config", vision}};
  std::ofstream(fs::path(dir) / "config.json") << cfg.dump(2);
  ordered_json pre = {{"do_normalize", true},
                      {"do_rescale", true},
                      {"do_resize", true},
                      {"image_mean", {0.5, 0.5, 0.5}},
                      {"image_std", {0.5, 0.5, 0.5}},
                      {"image_processor_type", "SiglipImageProcessor"},
                      {"resample", s.siglip2 ? 2 : 3},
                      {"rescale_factor", 1.0 / 255},
                      {"size", {{"height", s.image_size}, {"width", s.image_size}}}};
  std::ofstream(fs::path(dir) / "preprocessor_config.json") << pre.dump(2);
  ordered_json tok;
  if (s.siglip2)
    tok = {{"tokenizer_class", "GemmaTokenizer"},
           {"add_bos_token", false},
           {"add_eos_token", true},
           {"do_lower_case", true},
           {"bos_token", "<bos>"},
           {"eos_token", "<eos>"},
           {"pad_token", "<pad>"},
           {"unk_token", "<unk>"},
           {"model_max_length", s.max_positions},
           {"padding_side", "right"}};
  else
    tok = {{"tokenizer_class", "SiglipTokenizer"},
           {"do_lower_case", true},
           {"eos_token", "</s>"},
           {"pad_token", "</s>"},
           {"unk_token", "<unk>"},
           {"model_max_length", s.max_positions}};
  std::ofstream(fs::path(dir) / "tokenizer_config.json") << tok.dump(2);
  return vocab;
}

}  // namespace capforge::test
