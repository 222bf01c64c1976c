#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <stdexcept>

#include "capforge/clip.h"
#include "models/clip/graph.h"
#include "models/clip/model.h"
#include "models/clip/preprocess.h"
#include "models/ggml_util.h"
#include "models/nn/dense.h"
#include "models/safetensors.h"

namespace capforge {

namespace {

// The weights file of each layout. Pickled checkpoints are never read: they can run code.
std::unique_ptr<SafetensorsModel> open_checkpoint(const std::string& dir, clip::Format f) {
  namespace fs = std::filesystem;
  if (f == clip::Format::open_clip) {
    fs::path st = fs::path(dir) / "open_clip_model.safetensors";
    if (fs::exists(st)) return SafetensorsModel::open_file(st.string());
    if (fs::exists(fs::path(dir) / "open_clip_pytorch_model.bin"))
      throw std::runtime_error(fmt::format(
          "{} has only open_clip_pytorch_model.bin, a pickle, which capforge never loads (it can run code). "
          "Convert it once where torch is installed: python3 -c \"import torch, safetensors.torch as s; "
          "s.save_file(torch.load('open_clip_pytorch_model.bin', map_location='cpu', weights_only=True), "
          "'open_clip_model.safetensors')\"",
          dir));
    throw std::runtime_error(
        fmt::format("{} has open_clip_config.json but no open_clip_model.safetensors", dir));
  }
  const fs::path d(dir);
  if (!fs::exists(d / "model.safetensors") && !fs::exists(d / "model.safetensors.index.json") &&
      fs::exists(d / "pytorch_model.bin"))
    throw std::runtime_error(fmt::format(
        "{} has only pytorch_model.bin, a pickle, which capforge never loads (it can run code); download the "
        "model.safetensors of the same repository",
        dir));
  return SafetensorsModel::open_dir(dir);
}

}  // namespace

ClipModel::ClipModel(const std::string& dir, const ClipParams& p) : params(p) {
  config = clip::load_clip_config(dir);
  tokenizer = clip::load_text_encoder(dir, config);
  if ((int)tokenizer->vocab_size() > config.text.vocab)
    throw std::runtime_error(
        fmt::format("{}: the tokenizer ({}) has {} tokens but the text tower's vocabulary is {}", dir,
                    tokenizer->describe(), tokenizer->vocab_size(), config.text.vocab));
  auto st = open_checkpoint(dir, config.format);
  const ggml_type matrix_type = weight_type_from_name(p.dtype);
  device = pick_device(p.gpu && matrix_type != GGML_TYPE_I8);  // int8 products exist on the CPU only
  graph_options.fast = p.dtype != "f32";
  if (matrix_type == GGML_TYPE_I8 && !nn::dense_uses_onednn(GGML_TYPE_I8))
    throw std::runtime_error(fmt::format(
        "{}: dtype int8 needs oneDNN's int8 kernels (a build with libdnnl-dev, a CPU with AVX512-VNNI or "
        "AVX-VNNI, and CAPFORGE_ONEDNN not 0), which this run lacks; use bf16 or q8_0",
        dir));
  try {
    weights = std::make_unique<clip::Weights>(*st, config, matrix_type, device);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{}: {}", dir, e.what()));
  }
}

std::shared_ptr<const ClipModel> load_clip(const std::string& dir, const ClipParams& params) {
  return std::make_shared<const ClipModel>(dir, params);
}

namespace {

std::vector<std::vector<float>> read_columns(ggml_tensor* t) {
  std::vector<float> all((size_t)ggml_nelements(t));
  ggml_backend_tensor_get(t, all.data(), 0, ggml_nbytes(t));
  size_t rows = (size_t)t->ne[0];
  std::vector<std::vector<float>> out;
  for (size_t i = 0; i + rows <= all.size(); i += rows)
    out.emplace_back(all.begin() + i, all.begin() + i + rows);
  return out;
}

void normalise(std::vector<float>& v) {
  double n = 0;
  for (float x : v) n += (double)x * x;
  float inv = n > 0 ? (float)(1.0 / std::sqrt(n)) : 0.0f;
  for (float& x : v) x *= inv;
}

int max_nodes(const clip::TowerConfig& t) { return 64 * t.layers + 256; }
int max_nodes(const clip::VisionConfig& v) {
  if (v.arch != clip::VisionArch::resnet) return max_nodes((const clip::TowerConfig&)v);
  int blocks = 0;
  for (int d : v.resnet.layers) blocks += d;
  return 32 * blocks + 512;
}

}  // namespace

ClipContext::Impl::Impl(std::shared_ptr<const ClipModel> m) : model(std::move(m)) {
  backend = init_backend(model->device, model->params.threads);
  alloc = ggml_gallocr_new(ggml_backend_get_default_buffer_type(backend));
}

ClipContext::Impl::~Impl() {
  if (alloc) ggml_gallocr_free(alloc);
  if (backend) ggml_backend_free(backend);
}

std::vector<std::vector<float>> ClipContext::Impl::run_vision(const std::vector<float>& pixels, int batch,
                                                              std::vector<std::vector<float>>* hidden) {
  const clip::ClipConfig& c = model->config;
  std::vector<std::vector<float>> out;
  compute_graph(
      backend, alloc, meta, (size_t)max_nodes(c.vision), "CLIP",
      [&](ggml_context* ctx, ggml_cgraph* gf) {
        return clip::build_vision(ctx, gf, c, model->weights->vision, batch, model->graph_options);
      },
      [&](clip::VisionGraph& g) {
        if (pixels.size() != (size_t)ggml_nelements(g.pixels))
          throw std::logic_error("pixel buffer size mismatch");
        ggml_backend_tensor_set(g.pixels, pixels.data(), 0, ggml_nbytes(g.pixels));
        for (const clip::IndexInput& in : g.indices)
          ggml_backend_tensor_set(in.tensor, in.values.data(), 0, ggml_nbytes(in.tensor));
      },
      [&](clip::VisionGraph& g) {
        out = read_columns(g.embedding);
        if (hidden && g.hidden) {
          std::vector<float> all((size_t)ggml_nelements(g.hidden));
          ggml_backend_tensor_get(g.hidden, all.data(), 0, ggml_nbytes(g.hidden));
          size_t per = (size_t)(g.hidden->ne[0] * g.hidden->ne[1]);
          hidden->clear();
          for (int b = 0; b < batch; ++b)
            hidden->emplace_back(all.begin() + b * per, all.begin() + (b + 1) * per);
        }
      });
  return out;
}

std::vector<std::vector<float>> ClipContext::Impl::run_text(const std::vector<std::vector<int>>& ids) {
  const clip::ClipConfig& c = model->config;
  const int B = (int)ids.size();
  int T = 1;
  for (auto& v : ids) T = std::max<int>(T, (int)v.size());
  if (T > c.text.max_positions)
    throw std::runtime_error(
        fmt::format("text of {} tokens exceeds the model's {} positions", T, c.text.max_positions));
  std::vector<int32_t> flat((size_t)B * T, c.text.pad_id), rows((size_t)B);
  for (int b = 0; b < B; ++b) {
    const auto& v = ids[(size_t)b];
    if (v.empty()) throw std::logic_error("run_text: empty token ids");
    std::copy(v.begin(), v.end(), flat.begin() + (size_t)b * T);
    // CLIP pools at EOS, the last token of each text; SigLIP at the last (padded) position
    rows[(size_t)b] = b * T + (c.text.pool_last ? T : (int)v.size()) - 1;
  }
  std::vector<std::vector<float>> out;
  compute_graph(
      backend, alloc, meta, (size_t)max_nodes(c.text), "CLIP",
      [&](ggml_context* ctx, ggml_cgraph* gf) {
        return clip::build_text(ctx, gf, c, model->weights->text, B, T, model->graph_options);
      },
      [&](clip::TextGraph& g) {
        ggml_backend_tensor_set(g.ids, flat.data(), 0, ggml_nbytes(g.ids));
        ggml_backend_tensor_set(g.pool_rows, rows.data(), 0, ggml_nbytes(g.pool_rows));
        if (g.mask) {
          std::vector<ggml_fp16_t> m((size_t)T * T);
          for (int q = 0; q < T; ++q)
            for (int k = 0; k < T; ++k) m[(size_t)q * T + k] = ggml_fp32_to_fp16(k <= q ? 0.0f : -INFINITY);
          ggml_backend_tensor_set(g.mask, m.data(), 0, ggml_nbytes(g.mask));
        }
      },
      [&](clip::TextGraph& g) { out = read_columns(g.embedding); });
  return out;
}

ClipContext::ClipContext(std::shared_ptr<const ClipModel> model)
    : impl_(std::make_unique<Impl>(std::move(model))) {}
ClipContext::~ClipContext() = default;

std::vector<int> ClipContext::tokenize(std::string_view text) const {
  return impl_->model->tokenizer->encode(text);
}

float ClipContext::match_probability(float cosine) const {
  const clip::ClipConfig& c = impl_->model->config;
  if (!c.sigmoid) return std::nanf("");
  const clip::Weights& w = *impl_->model->weights;
  return 1.0f / (1.0f + std::exp(-(std::exp(w.logit_scale) * cosine + w.logit_bias)));
}

std::string ClipContext::describe() const {
  const clip::ClipConfig& c = impl_->model->config;
  std::string vision = c.vision.arch == clip::VisionArch::resnet ? "ResNet" : "ViT";
  return fmt::format("{} {} image tower at {} px, {} text tower, {}", clip::format_name(c.format), vision,
                     c.vision.image_size, impl_->model->tokenizer->describe(),
                     c.sigmoid ? "sigmoid head" : "softmax head");
}

int ClipContext::embedding_dim() const { return impl_->model->config.projection_dim; }
int ClipContext::image_size() const { return impl_->model->config.vision.image_size; }

std::vector<std::vector<float>> ClipContext::embed_images(const std::vector<const Image*>& images) {
  const clip::ClipConfig& c = impl_->model->config;
  const size_t per = (size_t)3 * c.vision.image_size * c.vision.image_size;
  const size_t step = (size_t)std::max(1, impl_->model->params.image_batch);
  std::vector<std::vector<float>> out;
  std::vector<float> pixels;
  for (size_t i = 0; i < images.size(); i += step) {
    size_t n = std::min(step, images.size() - i);
    pixels.clear();
    pixels.reserve(n * per);
    for (size_t k = 0; k < n; ++k) clip::preprocess(*images[i + k], c.preprocess, pixels);
    for (auto& e : impl_->run_vision(pixels, (int)n)) {
      normalise(e);
      out.push_back(std::move(e));
    }
  }
  return out;
}

std::vector<std::vector<float>> ClipContext::embed_texts(const std::vector<std::string>& texts) {
  const size_t step = (size_t)std::max(1, impl_->model->params.text_batch);
  std::vector<std::vector<float>> out;
  for (size_t i = 0; i < texts.size(); i += step) {
    std::vector<std::vector<int>> ids;
    for (size_t k = i; k < std::min(texts.size(), i + step); ++k) ids.push_back(tokenize(texts[k]));
    for (auto& e : impl_->run_text(ids)) {
      normalise(e);
      out.push_back(std::move(e));
    }
  }
  return out;
}

float clip_cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d += (double)a[i] * b[i];
  return (float)d;
}

}  // namespace capforge
