// The text side of a CLIP-family model's input: text -> the token ids its text tower takes
// (special tokens, truncation and padding included), whatever the tokenizer family.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "models/clip/config.h"

namespace capforge::clip {

class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  virtual std::vector<int> encode(std::string_view text) const = 0;
  virtual size_t vocab_size() const = 0;
  virtual std::string describe() const = 0;  // "OpenAI BPE (vocab.json)", "SentencePiece (spiece.model)", ...
};

// The tokenizer of the model in `dir`:
//   Hugging Face CLIP: vocab.json + merges.txt;
//   open_clip: vocab.json + merges.txt when the dir has them, else OpenAI's
//     bpe_simple_vocab_16e6.txt.gz shipped with capforge (openai_bpe_path());
//   SigLIP: spiece.model (SiglipTokenizer) or tokenizer.model (SigLIP 2's Gemma tokenizer).
std::unique_ptr<TextEncoder> load_text_encoder(const std::string& dir, const ClipConfig& c);

// Where capforge's copy of OpenAI's BPE merges lives: $CAPFORGE_DATA/clip/... when set, else the
// source tree's data/clip/.
std::string openai_bpe_path();

}  // namespace capforge::clip
