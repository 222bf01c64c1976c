// The VLM's prompt as tokens: the chat template split where the image and the user's prompt go,
// and prompts whose filled-in web text is tokenised as plain text only.
#pragma once

#include <string>
#include <vector>

#include "llama.h"
#include "models/prompt_template.h"

namespace capforge::vlm {

// The chat template rendered once around the media marker and a stand-in for the user's prompt:
// head (BOS side, up to and including the media marker), then pre + prompt + post. Throws
// std::runtime_error when the template drops or reorders the two (no image, or no prompt).
struct PromptFrame {
  std::string head, pre, post;
  bool trims = false;  // the template strips the message's trailing whitespace (llama-3, gemma, ...)
};
PromptFrame frame_prompt(const std::string& chat_template);

// The chat template applied to one user message with the assistant's turn opened
// (llama_chat_apply_template, add_ass = true). Throws std::runtime_error when it cannot be applied.
std::string render_user_turn(const std::string& chat_template, const std::string& content);

// Tokenises prompts for one vocabulary. Trusted text is tokenised as llama.cpp's
// llama_tokenize(parse_special=true) would; untrusted text never becomes a control or
// user-defined token (an alt-text holding "<|im_end|>" stays those characters): the text between
// the trusted text's control tokens is tokenised as one plain run (parse_special=false), cut
// inside any user-defined token's text (other than whitespace runs) that overlaps untrusted text
// (see flush() for SentencePiece). Whitespace next to a control
// token with the lstrip/rstrip attribute is dropped as llama.cpp does. Without untrusted parts the
// tokens are exactly llama_tokenize(concatenation, add_special=false, parse_special=true).
class PromptTokenizer {
 public:
  explicit PromptTokenizer(const llama_vocab* vocab);
  std::vector<llama_token> tokenize(const std::vector<PromptPart>& parts) const;
  // Plain text (no special tokens parsed, no BOS).
  std::vector<llama_token> plain(const std::string& text) const;
  // The first `max_tokens` tokens' worth of `text` (whole when shorter), as text, valid UTF-8.
  std::string clip(const std::string& text, int max_tokens) const;

 private:
  std::vector<llama_token> run(const std::string& text, bool parse_special) const;
  const llama_vocab* vocab_;
  struct Special {
    std::string text;
    llama_token id;
    bool user_defined;
    bool blank;           // whitespace only
    bool lstrip, rstrip;  // whitespace before / after it is dropped (llama.cpp's token attributes)
  };
  std::vector<Special> specials_;  // longest text first
};

}  // namespace capforge::vlm
