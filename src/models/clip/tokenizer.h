// OpenAI CLIP's byte-level BPE tokenizer, exactly: text cleanup (HTML unescaped twice,
// whitespace collapsed, lower-cased), CLIP's pre-tokenization pattern with Unicode categories
// from utf8proc, BPE with "</w>" word ends, BOS 49406 / EOS 49407, context 77.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace capforge::clip {

class Tokenizer {
 public:
  // Hugging Face layout: DIR/vocab.json + DIR/merges.txt.
  static Tokenizer from_hf_dir(const std::string& dir);
  // OpenAI's bpe_simple_vocab_16e6.txt(.gz): the merges from which the vocabulary derives.
  static Tokenizer from_openai_bpe(const std::string& path);

  // BOS + tokens + EOS, cut to BOS + (context - 2) tokens + EOS. No padding.
  std::vector<int> encode(std::string_view text, int context = 77) const;
  // Tokens of the cleaned text, without BOS/EOS or truncation.
  std::vector<int> encode_raw(std::string_view text) const;
  // Writes vocab.json + merges.txt (Hugging Face layout) for this vocabulary.
  void save_hf(const std::string& dir) const;
  int bos() const { return bos_; }
  int eos() const { return eos_; }
  size_t vocab_size() const { return vocab_.size(); }

 private:
  Tokenizer();
  void build_from_merges(const std::vector<std::pair<std::string, std::string>>& merges);
  std::vector<std::string> bpe(const std::string& token) const;
  int id_of(const std::string& piece) const;

  std::unordered_map<std::string, int> vocab_;
  std::unordered_map<std::string, int> ranks_;  // "first second" -> merge rank
  std::vector<std::pair<std::string, std::string>> merges_;
  std::array<std::string, 256> byte_encoder_;
  int bos_ = 49406, eos_ = 49407;
  struct Cache {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<std::string>> pieces;
  };
  std::unique_ptr<Cache> cache_ = std::make_unique<Cache>();  // BPE results by pre-token
};

// The text cleanup alone (exposed for tests): Python's html.unescape applied twice, \s+ -> " ",
// strip, lower-case.
std::string clean_text(std::string_view text);
// Python's html.unescape.
std::string html_unescape(std::string_view text);
// CLIP's pre-tokenization of cleaned text (exposed for tests).
std::vector<std::string> pretokenize(std::string_view cleaned);

}  // namespace capforge::clip
