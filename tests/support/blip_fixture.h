// Random-weight BLIP captioners written as Hugging Face publishes BlipForConditionalGeneration
// (Salesforce/blip-image-captioning-base and -large): config.json (model_type blip),
// model.safetensors (or shards + model.safetensors.index.json) holding exactly the tensors that
// transformers 4.47's save_pretrained writes, preprocessor_config.json (BlipImageProcessor),
// vocab.txt, tokenizer_config.json and special_tokens_map.json (BertTokenizer with [DEC] as bos and
// [ENC] as an additional special token, ids vocab and vocab + 1).
//
// save_pretrained's key set (checked against BlipForConditionalGeneration(config).state_dict()):
// every parameter except text_decoder.cls.predictions.decoder.bias (the same tensor as
// text_decoder.cls.predictions.bias, listed in _tied_weights_keys). decoder.weight is NOT tied to
// word_embeddings in transformers' BLIP and is stored; position_ids buffers are not persistent.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "support/clip_fixture.h"

namespace capforge::test {

struct BlipFixtureSpec {
  int vision_hidden = 32, vision_heads = 2, vision_layers = 2, vision_ffn = 64;
  int image_size = 32, patch_size = 8;
  int text_hidden = 32, text_heads = 2, text_layers = 2, text_ffn = 64, max_positions = 64;
  bool bert_vocab = false;    // a 30522-line vocab.txt with BERT's special ids (else the tiny one)
  std::string dtype = "F32";  // stored dtype: F32, F16, BF16
  uint32_t seed = 1;
  float scale = 1.0f;  // gain: matrices (nn.Linear, the patch conv) have std scale / sqrt(fan_in)
  int shards = 1;      // > 1: model-0000i-of-0000n.safetensors + model.safetensors.index.json
  // decoder.weight = word_embeddings (as in the published checkpoints, trained tied); by default
  // an independent random matrix, so a loader that ignores the stored head is caught.
  bool tie_decoder = false;

  // Broken variants for error-path tests.
  std::string drop_tensor;         // omit this tensor
  std::string misshape_tensor;     // write this tensor with its first dimension one larger
  bool vocab_without_dec = false;  // no [DEC] in tokenizer_config.json / special_tokens_map.json
  std::string config_patch;        // JSON merged (RFC 7386 merge patch) into config.json
  std::string preprocessor_patch;  // JSON merged into preprocessor_config.json

  // tiny (tests), base (blip-image-captioning-base), large (blip-image-captioning-large).
  // Throws std::invalid_argument for another name.
  static BlipFixtureSpec shape(const std::string& name);
};

// The tokenizer vocabulary (vocab.txt lines) the spec writes; text_config.vocab_size is its size + 2.
std::vector<std::string> blip_vocab(const BlipFixtureSpec& spec);

// Every tensor save_pretrained writes, in state_dict order (before drop/misshape).
std::vector<std::pair<std::string, FixtureTensor>> blip_tensors(const BlipFixtureSpec& spec);

// Writes the directory (created). Returns text_config.vocab_size.
int write_blip_fixture(const BlipFixtureSpec& spec, const std::string& dir);

}  // namespace capforge::test
