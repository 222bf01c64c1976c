#include "models/clip/text_encoder.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "models/clip/sp_tokenizer.h"
#include "models/clip/tokenizer.h"

namespace fs = std::filesystem;

namespace capforge::clip {

namespace {

class BpeEncoder : public TextEncoder {
 public:
  BpeEncoder(Tokenizer t, int context, std::string what)
      : tok_(std::move(t)), context_(context), what_(std::move(what)) {}
  std::vector<int> encode(std::string_view text) const override { return tok_.encode(text, context_); }
  size_t vocab_size() const override { return tok_.vocab_size(); }
  std::string describe() const override { return what_; }

 private:
  Tokenizer tok_;
  int context_;
  std::string what_;
};

class SpEncoder : public TextEncoder {
 public:
  SpEncoder(SpTokenizer t, std::string what) : tok_(std::move(t)), what_(std::move(what)) {}
  std::vector<int> encode(std::string_view text) const override { return tok_.encode(text); }
  size_t vocab_size() const override { return tok_.vocab_size(); }
  std::string describe() const override { return what_; }

 private:
  SpTokenizer tok_;
  std::string what_;
};

nlohmann::json read_json_if(const fs::path& p) {
  if (!fs::exists(p)) return nlohmann::json::object();
  std::ifstream f(p);
  auto j = nlohmann::json::parse(f, nullptr, false);
  if (!j.is_object()) throw std::runtime_error(fmt::format("{} is not a JSON object", p.string()));
  return j;
}

// A special token as tokenizer_config.json / special_tokens_map.json spell it: "x" or {"content": "x"}.
std::string token_field(const nlohmann::json& j, const char* key, std::string fallback) {
  if (!j.contains(key)) return fallback;
  const auto& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return fallback;
}

std::unique_ptr<TextEncoder> siglip_encoder(const fs::path& dir, const ClipConfig& c) {
  auto cfg = read_json_if(dir / "tokenizer_config.json");
  auto special = read_json_if(dir / "special_tokens_map.json");
  for (auto& [k, v] : special.items()) cfg[k] = v;  // the map wins where both name a token
  std::string cls = cfg.value("tokenizer_class", "");
  SpOptions o;
  o.pad_to = c.text.pad_to;
  if (fs::exists(dir / "spiece.model") && (cls.empty() || cls.starts_with("Siglip"))) {
    o.lower_case = cfg.value("do_lower_case", true);
    o.eos_token = token_field(cfg, "eos_token", "</s>");
    o.pad_token = token_field(cfg, "pad_token", "</s>");
    o.unk_token = token_field(cfg, "unk_token", "<unk>");
    return std::make_unique<SpEncoder>(SpTokenizer((dir / "spiece.model").string(), o),
                                       "SiglipTokenizer (spiece.model)");
  }
  if (fs::exists(dir / "tokenizer.model") && (cls.empty() || cls.starts_with("Gemma"))) {
    // SigLIP 2: Gemma's tokenizer as its checkpoints configure it (no canonicalisation; pad 0)
    o.siglip_canonicalize = false;
    o.unk_prefix = false;
    // As HF's slow GemmaTokenizer runs it: do_lower_case in the config is never applied there; BOS/EOS
    // as HF's SigLIP 2 converter sets them (no BOS, EOS) unless the config says otherwise.
    o.lower_case = false;
    o.add_bos = cfg.value("add_bos_token", false);
    o.add_eos = cfg.value("add_eos_token", true);
    o.bos_token = token_field(cfg, "bos_token", "<bos>");
    o.eos_token = token_field(cfg, "eos_token", "<eos>");
    o.pad_token = token_field(cfg, "pad_token", "<pad>");
    o.unk_token = token_field(cfg, "unk_token", "<unk>");
    return std::make_unique<SpEncoder>(SpTokenizer((dir / "tokenizer.model").string(), o),
                                       "GemmaTokenizer (tokenizer.model)");
  }
  if (fs::exists(dir / "tokenizer.json"))
    throw std::runtime_error(
        fmt::format("{}: only tokenizer.json is present; capforge needs the SentencePiece model "
                    "(spiece.model for SigLIP, "
                    "tokenizer.model for SigLIP 2) from the same repository",
                    dir.string()));
  throw std::runtime_error(
      fmt::format("{} has no spiece.model or tokenizer.model (tokenizer_class '{}')", dir.string(), cls));
}

}  // namespace

std::string openai_bpe_path() {
  if (const char* d = std::getenv("CAPFORGE_DATA"); d && *d)
    return (fs::path(d) / "clip" / "bpe_simple_vocab_16e6.txt.gz").string();
  return (fs::path(CAPFORGE_DATA_DIR) / "clip" / "bpe_simple_vocab_16e6.txt.gz").string();
}

std::unique_ptr<TextEncoder> load_text_encoder(const std::string& d, const ClipConfig& c) {
  const fs::path dir(d);
  const int ctx = c.text.max_positions;
  switch (c.format) {
    case Format::hf_clip:
      return std::make_unique<BpeEncoder>(Tokenizer::from_hf_dir(d), ctx,
                                          "CLIP BPE (vocab.json, merges.txt)");
    case Format::open_clip: {
      if (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt"))
        return std::make_unique<BpeEncoder>(Tokenizer::from_hf_dir(d), ctx,
                                            "CLIP BPE (vocab.json, merges.txt)");
      std::string bpe = openai_bpe_path();
      if (!fs::exists(bpe))
        throw std::runtime_error(fmt::format(
            "{} has no vocab.json/merges.txt and OpenAI's BPE vocabulary is not at {} (set CAPFORGE_DATA to "
            "the folder holding clip/bpe_simple_vocab_16e6.txt.gz)",
            d, bpe));
      return std::make_unique<BpeEncoder>(Tokenizer::from_openai_bpe(bpe), ctx,
                                          "OpenAI BPE (bpe_simple_vocab_16e6.txt.gz)");
    }
    case Format::siglip:
      return siglip_encoder(dir, c);
  }
  throw std::logic_error("unknown format");
}

}  // namespace capforge::clip
