// Tiny (or t5-base-sized) random-weight T5 models in llama.cpp's "t5" GGUF layout, as llama.cpp's
// convert_hf_to_gguf.py writes a converted Hugging Face T5ForConditionalGeneration, with a real
// SentencePiece tokenizer (tests/data/t5-vocab, made by tools/repair/make_t5_vocab.py).
//
// Variants: "v1_0" (original T5: ReLU FFN, no ffn_gate, LM head tied to the embeddings, so no
// output.weight tensor) and "v1_1" (Flan-T5: gated-GELU FFN with ffn_gate, untied output.weight).
// Relative attention biases only in block 0 of each stack (as in Hugging Face checkpoints).
// llama.cpp hard-codes the buckets' max_distance to 128 and does not apply HF's d_model**-0.5
// scale before a tied LM head (its logits are sqrt(d_model) x HF's for v1_0).
//
// Initialisation (a contract the repair tests rely on): linear weights N(0, gain^2/fan_in),
// embeddings N(0, embed_scale^2), untied output rows N(0, output_scale^2), norm weights
// N(1, 0.05^2). With shape()'s values for "tiny" (seed 5), top-1/top-2 logit gaps are large
// (median ~5-8 on the llama.cpp scale, 10th percentile ~0.5), greedy outputs depend on the input
// (12-15 distinct first tokens over 16 random inputs) and eos_boost (the EOS row of the LM head
// scaled) ends about half of them within 16 tokens (measured: v1_0 8/16, v1_1 8/16; other seeds
// vary from 1/16 to 10/16). v1_0 outputs repeat tokens more. Deterministic for a given spec.
#pragma once

#include <cstdint>
#include <string>

namespace capforge::test {

struct T5FixtureSpec {
  std::string variant = "v1_1";  // v1_0 | v1_1
  std::string vocab_gguf;        // tokenizer source; empty: tests/data/t5-vocab/t5-vocab.gguf
  int d_model = 64, d_ff = 160, layers = 2, decoder_layers = -1, heads = 4, d_kv = 16;
  int buckets = 32, max_distance = 128;  // llama.cpp supports only max_distance 128
  int context = 512;
  // 0: the vocab file's size. Larger: padded as t5-base is: first `extra_ids` <extra_id_N>
  // (USER_DEFINED, <extra_id_0> the highest id), then "[PADn]" (UNUSED) rows. The LM head's rows
  // for padding tokens are 0 (the embeddings' too when tied), so they are practically never
  // predicted.
  int vocab_size = 0, extra_ids = 100;
  // Initialisation knobs; the defaults are v1_1's tuned values (shape() sets v1_0's).
  float gain = 1.0f;            // linear weights: std gain / sqrt(fan_in)
  float cross_gain = 2.0f;      // decoder cross-attention output projection (input dependence)
  float embed_scale = 1.0f;     // token embeddings (the LM head too when tied)
  float output_scale = 3.0f;    // untied output.weight rows (v1_1): logit gaps
  float rel_bias_scale = 1.0f;  // relative attention bias tables
  float eos_boost = 2.0f;       // scales the EOS row of the LM head (the embedding when tied)
  uint32_t seed = 5;
  std::string dtype = "F32";  // F32 | F16 | Q8_0 (matrices and embeddings; norms and biases F32)
  float eps = 1e-6f;
  uint32_t decoder_start_token_id = 0;  // <pad>, as T5
  // v1_0 only: also write output.weight as a byte copy of token_embd.weight, as a tied v1.0
  // checkpoint converted from a pytorch_model.bin that stores lm_head.weight (the same model).
  bool duplicate_tied_output = false;
  // >= 0: that token's embedding row is NaN (a broken checkpoint: non-finite logits for inputs
  // holding it). Needs an untied head (v1_1) for the other inputs' logits to stay finite.
  int nan_token = -1;

  // "tiny" (d_model 64, d_ff 160, 2+2 layers, 4 heads, d_kv 16) or "base" (t5-base: 768, 3072,
  // 12+12 layers, 12 heads, d_kv 64, 32128 tokens; v1_1 gives Flan-T5's layout with t5-base's
  // sizes), with the variant's tuned initialisation (v1_0: cross_gain 8, rel_bias_scale 3, as a
  // tied head otherwise mostly repeats the previous token). Throws
  // std::invalid_argument for another name.
  static T5FixtureSpec shape(const std::string& name, const std::string& variant = "v1_1");
};

// Writes the GGUF; throws std::runtime_error on failure.
void write_t5_fixture(const T5FixtureSpec& spec, const std::string& path);

// tests/data/t5-vocab/t5-vocab.gguf in this source tree.
std::string t5_vocab_gguf();

}  // namespace capforge::test
