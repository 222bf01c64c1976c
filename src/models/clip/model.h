// Internal: the loaded model and the per-context runner behind capforge/clip.h.
#pragma once

#include <memory>
#include <vector>

#include "capforge/clip.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "models/clip/config.h"
#include "models/clip/graph.h"
#include "models/clip/text_encoder.h"
#include "models/clip/weights.h"

namespace capforge {

class ClipModel {
 public:
  ClipModel(const std::string& dir, const ClipParams& params);
  clip::ClipConfig config;
  std::unique_ptr<clip::TextEncoder> tokenizer;
  ClipParams params;
  ggml_backend_dev_t device = nullptr;
  std::unique_ptr<clip::Weights> weights;
  clip::GraphOptions graph_options;
};

struct ClipContext::Impl {
  explicit Impl(std::shared_ptr<const ClipModel> m);
  ~Impl();

  // Forward passes on preprocessed inputs. `pixels`: B planar images of S x S x 3 floats.
  // Embeddings come back projected but not normalised, [B][E]. With `hidden` (ViT towers), also the
  // last encoder layer's output for every token, [B][T * D], class token first.
  std::vector<std::vector<float>> run_vision(const std::vector<float>& pixels, int batch,
                                             std::vector<std::vector<float>>* hidden = nullptr);
  // `ids`: as the tokenizer gives them (padded already where the family pads).
  std::vector<std::vector<float>> run_text(const std::vector<std::vector<int>>& ids);

  std::shared_ptr<const ClipModel> model;
  ggml_backend_t backend = nullptr;
  ggml_gallocr_t alloc = nullptr;
  std::vector<uint8_t> meta;  // graph metadata arena
};

}  // namespace capforge
