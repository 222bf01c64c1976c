// Internal: the loaded repair model behind capforge/repair.h (a libllama model, T5 or
// decoder-only), checked before llama.cpp sees the file.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "capforge/repair.h"
#include "llama.h"

namespace capforge::repair {

class T5Weights;

// "auto", "llama" or "ggml" (RepairParams::engine); throws std::invalid_argument otherwise.
void check_engine_name(const std::string& engine);
// "stored" or "bf16" (RepairParams::weights); throws std::invalid_argument otherwise.
void check_weights_name(const std::string& weights);

class LlamaRepairModel : public RepairModel {
 public:
  // Throws std::runtime_error naming the file and the problem; std::invalid_argument for a bad
  // params.engine (or "ggml" for a model that is not a T5).
  explicit LlamaRepairModel(const RepairParams& params);
  ~LlamaRepairModel() override;
  std::string family() const override { return t5 ? "t5" : "decoder"; }
  std::string describe() const override;

  std::string path;
  // "llama" (libllama runs the model) or "ggml" (capforge's T5 engine runs t5w; llama.cpp then
  // loads the file vocab-only, for the tokenizer and hyperparameters)
  std::string engine = "llama";
  std::shared_ptr<const T5Weights> t5w;
  llama_model* model = nullptr;
  const llama_vocab* vocab = nullptr;
  int n_vocab = 0;
  int n_embd = 0;
  int n_ctx_train = 0;
  bool t5 = false;  // encoder-decoder (llama_encode + llama_decode)
  // Multiplies llama.cpp's logits. 1, except for a T5 whose output layer is tied to the token
  // embeddings (T5 v1.0: the GGUF has no output.weight, or, converted from a checkpoint that stores
  // lm_head.weight, an output.weight byte-equal to token_embd.weight): Hugging Face scales the decoder output
  // by d_model^-0.5 before the LM head and llama.cpp does not, so its logits are sqrt(d_model) times HF's;
  // 1/sqrt(n_embd) brings them back (softmax-based scores and penalties depend on it).
  float logit_scale = 1.0f;
  std::vector<llama_token> eog;  // end-of-generation tokens (HF's eos_token_id list)
  // Tokens left out of the output text, as HF's decode(skip_special_tokens=True): control and
  // unknown tokens, and T5's <extra_id_N> sentinels (user-defined in a converted GGUF, special
  // tokens in HF).
  std::vector<char> hidden;
  llama_token decoder_start = -1;  // T5: the decoder's first input token
  std::string chat_template;       // decoder-only: resolved (a built-in name or the text)
};

// Checks `path` is a GGUF language model llama.cpp can load as a repair model: it exists, is a
// complete GGUF with an architecture, a tokenizer and weights (not vocab-only), and is not a
// projector. Returns whether it has an `output.weight` tensor. Throws std::runtime_error.
bool check_repair_gguf(const std::string& path);

// Whether `path`'s LM head is tied to its token embeddings: no `output.weight`, or one with
// token_embd.weight's type, shape and bytes (both tensors are read from the file). For a file
// check_repair_gguf accepted; false when the file cannot be read.
bool output_tied_to_embeddings(const std::string& path);

// Routes llama.cpp's log to capforge's debug log (once per process).
void init_llama_once();

}  // namespace capforge::repair
