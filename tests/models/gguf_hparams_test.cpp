// check_llama_hparams (models/gguf_hparams.h): every key llama.cpp's loader asserts on instead of
// reporting is refused with the file and the key named; a sane set of keys passes.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>

#include "gguf.h"
#include "models/gguf_hparams.h"

namespace capforge {

namespace {

// The message check_llama_hparams throws for a llama model patched by `patch`, or "" when it passes.
std::string error_for(const std::function<void(gguf_context*)>& patch, const std::string& arch = "llama") {
  gguf_context* g = gguf_init_empty();
  gguf_set_val_str(g, "general.architecture", arch.c_str());
  gguf_set_val_u32(g, (arch + ".block_count").c_str(), 2);
  gguf_set_val_u32(g, (arch + ".context_length").c_str(), 512);
  gguf_set_val_f32(g, (arch + ".attention.layer_norm_rms_epsilon").c_str(), 1e-5f);
  const char* tokens[] = {"<pad>", "</s>", "a"};
  gguf_set_arr_str(g, "tokenizer.ggml.tokens", tokens, 3);
  if (patch) patch(g);
  std::string msg;
  try {
    check_llama_hparams(g, "model m.gguf");
  } catch (const std::runtime_error& e) {
    msg = e.what();
  }
  gguf_free(g);
  return msg;
}

}  // namespace

TEST(GgufHparams, SaneKeysPass) {
  EXPECT_EQ(error_for({}), "");
  EXPECT_EQ(error_for([](gguf_context* g) {
              gguf_set_val_u32(g, "llama.expert_count", 8);
              gguf_set_val_u32(g, "llama.expert_used_count", 2);
              gguf_set_val_str(g, "llama.rope.scaling.type", "yarn");
            }),
            "");
  EXPECT_EQ(error_for([](gguf_context* g) { gguf_set_val_u32(g, "t5.decoder_start_token_id", 0); }, "t5"),
            "");
  // HunYuan's dense models may carry an expert_used_count without experts; llama.cpp zeroes it
  EXPECT_EQ(error_for([](gguf_context* g) { gguf_set_val_u32(g, "hunyuan-dense.expert_used_count", 1); },
                      "hunyuan-dense"),
            "");
}

TEST(GgufHparams, KeysLlamaCppAssertsOnAreRefused) {
  struct Case {
    std::function<void(gguf_context*)> patch;
    const char* what;
    const char* arch = "llama";
  };
  const Case cases[] = {
      {[](gguf_context* g) { gguf_set_val_u32(g, "llama.block_count", 0); }, "llama.block_count = 0"},
      {[](gguf_context* g) { gguf_set_val_u64(g, "llama.block_count", (1ull << 32) + 2); },
       "llama.block_count"},
      {[](gguf_context* g) { gguf_set_val_str(g, "llama.block_count", "two"); }, "expected an integer"},
      {[](gguf_context* g) { gguf_set_val_u32(g, "llama.nextn_predict_layers", 3); },
       "nextn_predict_layers = 3"},
      {[](gguf_context* g) { gguf_set_val_str(g, "llama.rope.scaling.type", "bogus"); }, "'bogus'"},
      {[](gguf_context* g) { gguf_set_val_u32(g, "llama.expert_count", 4); }, "expert_used_count = 0"},
      {[](gguf_context* g) { gguf_set_val_u32(g, "llama.expert_used_count", 2); }, "without experts"},
      {[](gguf_context* g) {
         gguf_set_val_u32(g, "llama.expert_count", 4);
         const uint32_t used[] = {1, 9};  // one per block: the largest counts
         gguf_set_arr_data(g, "llama.expert_used_count", GGUF_TYPE_UINT32, used, 2);
       },
       "expert_used_count = 9"},
      {[](gguf_context* g) {
         gguf_set_val_u32(g, "llama.expert_count", 6);
         gguf_set_val_u32(g, "llama.expert_used_count", 2);
         gguf_set_val_u32(g, "llama.expert_group_count", 4);
       },
       "does not divide"},
      {[](gguf_context* g) { gguf_set_val_u32(g, "llama.expert_count", 5000); }, "expert_count = 5000"},
      {[](gguf_context* g) { gguf_set_val_u32(g, "llama.context_length", 0); }, "context_length = 0"},
      {[](gguf_context* g) { gguf_set_val_f32(g, "llama.attention.layer_norm_rms_epsilon", NAN); },
       "epsilon"},
      {[](gguf_context* g) { gguf_set_val_f32(g, "llama.attention.layer_norm_epsilon", -1.f); },
       "epsilon = -1"},
      {[](gguf_context* g) { gguf_set_val_u32(g, "t5.decoder_start_token_id", 3); },
       "decoder_start_token_id = 3", "t5"},
      {[](gguf_context* g) { gguf_set_val_u32(g, "t5.decoder_block_count", 0); }, "decoder_block_count = 0",
       "t5"},
  };
  for (const Case& c : cases) {
    const std::string msg = error_for(c.patch, c.arch);
    EXPECT_NE(msg.find("model m.gguf"), std::string::npos) << c.what << ": " << msg;
    EXPECT_NE(msg.find(c.what), std::string::npos) << c.what << ": " << msg;
  }
}

}  // namespace capforge
