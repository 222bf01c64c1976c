// Model-based caption repair through llama.cpp (LAION-COCO's last stage): any GGUF repair model,
// an encoder-decoder T5 / Flan-T5 (llama_encode + llama_decode) or a decoder-only instruct model
// (the caption placed in a prompt, wrapped in the model's chat template). The family is detected
// from the GGUF's metadata. Decoding follows Hugging Face's generate(): greedy, or beam search
// (num_beams, length_penalty, early_stopping) with HF's repetition-penalty semantics.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace capforge {

struct RepairParams {
  std::string model;  // GGUF path
  // T5: prepended to the caption (trusted text, e.g. "fix grammar: "); the caption itself is
  // untrusted text and is never parsed for special tokens.
  std::string prefix;
  // Decoder-only: the user message, a template with {caption} (untrusted, never parsed for special
  // tokens), wrapped in the chat template (empty: the model's own).
  std::string prompt =
      "Fix the grammar and punctuation of this image caption. Keep its meaning and wording. Reply "
      "with the corrected caption only.\n\n{caption}";
  std::string chat_template;
  int beams = 1;  // 1: greedy; N > 1: HF beam search with N beams (EOS: every end-of-generation token)
  float length_penalty = 1.0f;          // beam score = sum of log-probs / generated_length^length_penalty
  std::string early_stopping = "true";  // HF's early_stopping: "true", "false" or "never"
  // HF's RepetitionPenaltyLogitsProcessor over the decoder's ids, HF's input_ids (T5: decoder
  // start token and the generated ones; decoder-only: the prompt's and the generated ones): on raw
  // logits when greedy, on log-probs (log_softmax, not renormalised) in beam search. 1: off.
  float repetition_penalty = 1.0f;
  // New tokens at most: ceil(max_tokens_ratio * caption tokens) + max_tokens_extra.
  float max_tokens_ratio = 1.5f;
  int max_tokens_extra = 8;
  // Resources
  // "auto": capforge's own ggml T5 engine for a T5 (it computes each caption's cross-attention
  // keys/values once), libllama for a decoder-only model; "llama": libllama always (llama_encode +
  // llama_decode for a T5); "ggml": the ggml T5 engine (a T5 only). Anything else, or "ggml" with a
  // decoder-only model: std::invalid_argument. gpu, kv_type and flash_attn apply to libllama only;
  // the ggml engine runs on the CPU with f32 caches and `threads` threads.
  std::string engine = "auto";
  // The ggml T5 engine's matrices: "stored" (as the GGUF holds them) or "bf16" (f16/f32 matrices
  // and the token embedding converted at load, norms kept f32; ignored by libllama; bf16 products run on
  // oneDNN's kernels, ~2x an f16 file's speed on CPUs with AVX512-BF16; the logits move by bf16's rounding)
  // or "int8" (every matrix re-quantised to per-channel int8, each input row to 8 bits: VNNI
  // products; the logits move by int8's rounding, so some outputs change). Anything else:
  // std::invalid_argument.
  std::string weights = "stored";
  // Sequences in flight: captions x beams; the context and batch are sized for them. 0: the
  // engine's default, kParallelGgml on capforge's ggml T5 engine (a decode step reads each weight
  // once for more captions) and kParallelLlama on libllama (whose context, and KV cache, grows
  // with it), at least beams. llama.cpp's 256 sequence ids cap the captions per wave at 256 when greedy and
  // 256 / (2 x beams) with beams (a spare id per beam): a larger parallel is clamped to that
  // silently. Below beams (but not 0), or negative: std::invalid_argument. beams must be <= 128
  // (std::invalid_argument).
  int parallel = 0;
  static constexpr int kParallelGgml = 64, kParallelLlama = 32;
  int threads = 0;  // 0: the CPUs this process may use (affinity and CPU quota)
  bool gpu = true;
  std::string kv_type = "f16";  // KV cache type: f16 (llama.cpp's default) or f32
  bool flash_attn = false;
  const std::atomic<bool>* cancel = nullptr;  // set: repair() stops; unfinished get "interrupted"
};

struct RepairOutput {
  // The repaired caption: the generated tokens without special ones, whitespace-trimmed; for a
  // T5, HF's clean_up_tokenization_spaces too (" ." -> ".", " ," -> ",", " 's" -> "'s", ... as
  // transformers 4.47's clean_up_tokenization, which SimpleT5's predict() applies). Empty when
  // error is set or skipped is.
  std::string text;
  // Set when this caption could not be repaired: "interrupted" (cancel), "non-finite logits from
  // the model", a prefix / prompt that leaves no room for any caption token, or a llama.cpp failure.
  std::string error;
  // An empty or blank caption: not repaired, text "" (the input, trimmed), no error.
  bool skipped = false;
  // The caption was cut to its first input tokens to fit the model's context (T5: prefix + caption
  // + EOS within min(n_ctx_train, 2048), the model's training context kept as the cap although T5's relative
  // positions make it a soft limit; decoder-only: prompt + new tokens within min(n_ctx_train,
  // 4096)); the prefix / chat template are kept whole. text is the repair of the cut caption.
  bool truncated = false;
  int input_tokens = 0;   // T5: encoder tokens (prefix + caption + EOS); decoder-only: prompt tokens
  int output_tokens = 0;  // generated tokens, EOS excluded
  // greedy: sum of the chosen tokens' log-probs (log_softmax of the model's logits, before the
  // repetition penalty), the final EOS included; beams: HF's sequences_scores, the winning
  // hypothesis's sum of processed log-probs / generated_length^length_penalty.
  double score = 0;
};

// A loaded repair model, shared read-only by every Repairer.
class RepairModel {
 public:
  virtual ~RepairModel() = default;
  // "t5" (encoder-decoder) or "decoder" (decoder-only).
  virtual std::string family() const = 0;
  virtual std::string describe() const = 0;
};

// Loads and validates params.model; throws std::runtime_error naming the file and the problem
// (missing, not a GGUF, a projector or vocab-only file, no chat template for a decoder-only model
// without --repair-chat-template, ...).
std::shared_ptr<const RepairModel> load_repair_model(const RepairParams& params);

// Per-worker state (a llama context with many sequences). Not thread-safe.
class Repairer {
 public:
  // Throws std::invalid_argument for settings that cannot work (beams < 1 or > 128, parallel <
  // beams, a prompt without {caption}, a chat template that drops the user's message, ...).
  Repairer(std::shared_ptr<const RepairModel> model, const RepairParams& params);
  ~Repairer();
  Repairer(const Repairer&) = delete;
  Repairer& operator=(const Repairer&) = delete;

  // One output per caption, in order. A caption's output depends only on the caption, the model
  // and params (not on batching or the other captions).
  std::vector<RepairOutput> repair(const std::vector<std::string>& captions);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace capforge
