#include "models/blip/model.h"

#include <fmt/format.h>

#include <filesystem>
#include <stdexcept>

#include "models/ggml_util.h"
#include "models/safetensors.h"

namespace fs = std::filesystem;

namespace capforge {

namespace {

std::unique_ptr<SafetensorsModel> open_weights(const std::string& dir) {
  const fs::path d(dir);
  if (!fs::exists(d / "model.safetensors") && !fs::exists(d / "model.safetensors.index.json")) {
    if (fs::exists(d / "pytorch_model.bin"))
      throw std::runtime_error(
          fmt::format("{} has only pytorch_model.bin, a pickle, which capforge never loads (it can run "
                      "code); download the "
                      "model.safetensors of the same repository",
                      dir));
    throw std::runtime_error(
        fmt::format("{} has no model.safetensors (or model.safetensors.index.json)", dir));
  }
  return SafetensorsModel::open_dir(dir);
}

ggml_type blip_weight_type(const std::string& dtype) {
  if (dtype == "f32") return GGML_TYPE_F32;
  if (dtype == "f16") return GGML_TYPE_F16;
  if (dtype == "bf16") return GGML_TYPE_BF16;
  throw std::invalid_argument(fmt::format("BLIP weights can be f32, f16 or bf16, not '{}'", dtype));
}

}  // namespace

BlipModel::BlipModel(const CaptionerParams& p) : dir(p.model) {
  const ggml_type type = blip_weight_type(p.dtype);
  if (!fs::is_directory(dir))
    throw std::runtime_error(fmt::format("BLIP model {} is not a directory (a Hugging Face BLIP dir)", dir));
  config = blip::load_blip_config(dir);
  tokenizer = std::make_unique<blip::WordPieceTokenizer>(blip::WordPieceTokenizer::load(dir));
  const blip::TextConfig& t = config.text;
  if ((int)tokenizer->size() > t.vocab)
    throw std::runtime_error(fmt::format("{}: the tokenizer has {} tokens but the decoder's vocabulary is {}",
                                         dir, tokenizer->size(), t.vocab));
  if (tokenizer->bos_id() != t.bos_id || tokenizer->sep_id() != t.sep_id)
    throw std::runtime_error(fmt::format(
        "{}: the tokenizer's [DEC] {} / [SEP] {} differ from config.json's bos_token_id {} / sep_token_id {}",
        dir, tokenizer->bos_id(), tokenizer->sep_id(), t.bos_id, t.sep_id));
  auto st = open_weights(dir);
  device = pick_device(p.gpu);
  graph.fast = type != GGML_TYPE_F32;
  try {
    weights = std::make_unique<blip::Weights>(*st, config, type, device);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{}: {}", dir, e.what()));
  }
}

std::string BlipModel::describe() const {
  const auto& v = config.vision;
  const auto& t = config.text;
  return fmt::format("BLIP ViT {}x{} layers @{}px/{} + BERT decoder {}x{} layers, {}", v.hidden, v.layers,
                     v.image_size, v.patch_size, t.hidden, t.layers, tokenizer->describe());
}

std::shared_ptr<const CaptionModel> load_blip(const CaptionerParams& params) {
  return std::make_shared<const BlipModel>(params);
}

}  // namespace capforge
