// Internal: the loaded BLIP captioner (Hugging Face BlipForConditionalGeneration) behind
// capforge/captioner.h, shared read-only by every worker's engine.
#pragma once

#include <memory>
#include <string>

#include "capforge/captioner.h"
#include "ggml-backend.h"
#include "models/blip/config.h"
#include "models/blip/graph.h"
#include "models/blip/tokenizer.h"
#include "models/blip/weights.h"

namespace capforge {

class BlipModel : public CaptionModel {
 public:
  // Reads params.model (a BLIP dir): config, tokenizer, safetensors weights converted to
  // params.dtype. Throws std::runtime_error naming the file or tensor at fault.
  explicit BlipModel(const CaptionerParams& params);
  std::string describe() const override;
  std::unique_ptr<Engine> start(std::shared_ptr<const CaptionModel> self,
                                const CaptionerParams& params) const override;

  std::string dir;
  blip::BlipConfig config;
  std::unique_ptr<blip::WordPieceTokenizer> tokenizer;
  ggml_backend_dev_t device = nullptr;
  std::unique_ptr<blip::Weights> weights;
  blip::GraphOptions graph;
};

std::shared_ptr<const CaptionModel> load_blip(const CaptionerParams& params);

namespace blip {
// The vision tower's last_hidden_state (post_layernorm) of `batch` preprocessed images (planar
// S x S x 3 floats each): [batch][tokens * hidden], class token first. For tests and tools.
std::vector<std::vector<float>> vision_states(const BlipModel& m, const std::vector<float>& pixels, int batch,
                                              int threads = 0);
}  // namespace blip

}  // namespace capforge
