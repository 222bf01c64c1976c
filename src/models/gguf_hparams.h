// Checks of a language model GGUF's hyper-parameter keys that llama.cpp's loader asserts on
// (GGML_ASSERT: an abort of the whole process) instead of reporting, run before llama.cpp sees
// the file, so that a hostile or broken file gets an error naming it and the key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

struct gguf_context;

namespace capforge {

// `what` names the file in messages ("model /x.gguf", "repair model /y.gguf"). Checks, for the
// file's general.architecture A, whichever of these keys are present (missing ones are
// llama.cpp's to report, which it does without aborting):
//   A.block_count in 1..512 (llama.cpp's LLAMA_MAX_LAYERS), A.nextn_predict_layers <= it;
//   A.expert_count <= 1024, A.expert_used_count (a number or one per block) 1..expert_count when
//   there are experts and 0 when there are none (HunYuan's dense models: ignored with at most one
//   expert, as llama.cpp does), A.expert_group_count and
//   A.expert_group_used_count as llama.cpp asserts them;
//   A.rope.scaling.type one of none, linear, yarn, longrope;
//   A.context_length >= 1; A.attention.layer_norm_epsilon and ..._rms_epsilon finite, >= 0;
//   A.decoder_start_token_id (T5) -1 or a token of tokenizer.ggml.tokens.
// Integer keys of any GGUF integer type; a key of the wrong kind (a string for a count) is an
// error. Throws std::runtime_error.
void check_llama_hparams(gguf_context* g, const std::string& what);

// Key `key_id`'s value when it is a GGUF integer of any width (a u64 over INT64_MAX saturates);
// nullopt for any other type (floats, bools, strings, arrays).
std::optional<int64_t> gguf_integer(gguf_context* g, int64_t key_id);

}  // namespace capforge
