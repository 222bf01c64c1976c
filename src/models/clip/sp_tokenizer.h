// SentencePiece tokenizers of the SigLIP family through libsentencepiece, reproducing Hugging
// Face's slow tokenizers: SiglipTokenizer (spiece.model: ASCII punctuation removed, whitespace
// collapsed, lower-cased, no dummy prefix, "</s>" appended) and the Gemma tokenizer of SigLIP 2
// (tokenizer.model). Text is always text: markers such as "</s>" or "<pad>" in the input are
// tokenised as characters, never turned into special tokens.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace capforge::clip {

struct SpOptions {
  bool siglip_canonicalize = true;  // SiglipTokenizer: drop string.punctuation, collapse whitespace
  bool lower_case = true;
  bool unk_prefix = true;  // SiglipTokenizer's "<unk>" + "▁" + text trick (dummy prefix disabled)
  bool add_bos = false, add_eos = true;
  int pad_to = 64;  // pad (and truncate) to this many ids
  std::string pad_token = "</s>", eos_token = "</s>", bos_token = "<bos>", unk_token = "<unk>";
};

class SpTokenizer {
 public:
  // Loads `model_file`; throws naming it when it cannot be read or lacks a special token.
  SpTokenizer(const std::string& model_file, const SpOptions& o);
  ~SpTokenizer();
  SpTokenizer(SpTokenizer&&) noexcept;

  // Ids as the model takes them: [BOS] pieces [EOS], truncated to pad_to (EOS kept), padded.
  std::vector<int> encode(std::string_view text) const;
  // The pieces' ids of the normalised text, no specials (exposed for tests).
  std::vector<int> encode_raw(std::string_view text) const;
  size_t vocab_size() const;
  int pad_id() const { return pad_id_; }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  SpOptions o_;
  int pad_id_ = 0, eos_id_ = -1, bos_id_ = -1;
  size_t unk_pieces_ = 0;  // pieces the "<unk>" prefix encodes to
};

// SiglipTokenizer.canonicalize_text: Python's string.punctuation removed, \s+ -> " ", stripped.
std::string siglip_canonicalize(std::string_view text);
// Lower-casing per code point with utf8proc's simple case mapping (Python's str.lower() differs
// only where the full mapping expands, e.g. U+0130 -> i + U+0307).
std::string lower_utf8(std::string_view text);

}  // namespace capforge::clip
