// Validation of user-supplied GGUF files before llama.cpp loads them.
#include <sys/stat.h>

#include <fmt/format.h>

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "core/log.h"
#include "ggml.h"
#include "gguf.h"
#include "models/gguf_hparams.h"
#include "models/vlm/model.h"
#include "mtmd-helper.h"

namespace capforge::vlm {

namespace {

struct GgufFree {
  void operator()(gguf_context* g) const { gguf_free(g); }
};
using Gguf = std::unique_ptr<gguf_context, GgufFree>;

Gguf open_gguf(const std::string& path, const char* what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw std::runtime_error(fmt::format("{} file {} does not exist", what, path));
  gguf_init_params p{true, nullptr};
  Gguf g(gguf_init_from_file(path.c_str(), p));
  if (!g)
    throw std::runtime_error(
        with_llama_errors(fmt::format("{} is not a valid GGUF file (corrupt or truncated?)", path)));
  // every tensor's data must lie inside the file
  size_t end = gguf_get_data_offset(g.get());
  for (int64_t i = 0; i < gguf_get_n_tensors(g.get()); ++i)
    end = std::max(end, gguf_get_data_offset(g.get()) + gguf_get_tensor_offset(g.get(), i) +
                            gguf_get_tensor_size(g.get(), i));
  if (end > (size_t)st.st_size)
    throw std::runtime_error(fmt::format("{} is truncated: its tensors need {} bytes, the file has {}", path,
                                         end, (long long)st.st_size));
  return g;
}

std::string str_key(gguf_context* g, const char* key) {
  int64_t k = gguf_find_key(g, key);
  if (k < 0 || gguf_get_kv_type(g, k) != GGUF_TYPE_STRING) return "";
  return gguf_get_val_str(g, k);
}

const char* type_name(gguf_type t) { return gguf_type_name(t); }

}  // namespace

void check_text_model(const std::string& path) {
  Gguf g = open_gguf(path, "model");
  std::string arch = str_key(g.get(), "general.architecture");
  if (arch == "clip" || gguf_find_key(g.get(), "clip.projector_type") >= 0)
    throw std::runtime_error(
        fmt::format("{} is a multimodal projector (mmproj), not a language model: pass it with "
                    "--mmproj and the text GGUF with --model",
                    path));
  if (arch.empty())
    throw std::runtime_error(fmt::format("{} has no general.architecture: not a llama.cpp model", path));
  if (gguf_find_key(g.get(), "tokenizer.ggml.tokens") < 0)
    throw std::runtime_error(fmt::format("{} has no tokenizer: not a usable language model", path));
  check_llama_hparams(g.get(), fmt::format("model {}", path));
}

void check_mmproj(const std::string& path, int text_embd) {
  Gguf g = open_gguf(path, "mmproj");
  gguf_context* c = g.get();
  if (gguf_find_key(c, "clip.projector_type") < 0 && gguf_find_key(c, "clip.has_vision_encoder") < 0)
    throw std::runtime_error(
        fmt::format("{} is not a multimodal projector (no clip.* keys; architecture '{}'): "
                    "--mmproj takes the mmproj GGUF published with the model",
                    path, str_key(c, "general.architecture")));
  // libmtmd asserts these types rather than checking them
  static const std::map<std::string, gguf_type> kTypes = {
      {"clip.has_vision_encoder", GGUF_TYPE_BOOL},
      {"clip.has_audio_encoder", GGUF_TYPE_BOOL},
      {"clip.use_gelu", GGUF_TYPE_BOOL},
      {"clip.use_silu", GGUF_TYPE_BOOL},
      {"clip.projector_type", GGUF_TYPE_STRING},
      {"clip.vision.image_size", GGUF_TYPE_UINT32},
      {"clip.vision.patch_size", GGUF_TYPE_UINT32},
      {"clip.vision.embedding_length", GGUF_TYPE_UINT32},
      {"clip.vision.feed_forward_length", GGUF_TYPE_UINT32},
      {"clip.vision.block_count", GGUF_TYPE_UINT32},
      {"clip.vision.attention.head_count", GGUF_TYPE_UINT32},
      {"clip.vision.projection_dim", GGUF_TYPE_UINT32},
      {"clip.vision.attention.layer_norm_epsilon", GGUF_TYPE_FLOAT32},
      {"clip.vision.image_mean", GGUF_TYPE_ARRAY},
      {"clip.vision.image_std", GGUF_TYPE_ARRAY},
      {"clip.vision.feature_layer", GGUF_TYPE_ARRAY},
  };
  for (auto& [key, want] : kTypes) {
    int64_t k = gguf_find_key(c, key.c_str());
    if (k >= 0 && gguf_get_kv_type(c, k) != want)
      throw std::runtime_error(fmt::format("{}: key {} has type {}, expected {}", path, key,
                                           type_name(gguf_get_kv_type(c, k)), type_name(want)));
  }
  int64_t hv = gguf_find_key(c, "clip.has_vision_encoder");
  if (hv < 0 || !gguf_get_val_bool(c, hv))
    throw std::runtime_error(fmt::format("{} has no vision encoder (audio-only projector?)", path));
  for (const char* key : {"clip.vision.image_size", "clip.vision.patch_size", "clip.vision.embedding_length",
                          "clip.vision.block_count", "clip.vision.attention.head_count"})
    if (gguf_find_key(c, key) < 0)
      throw std::runtime_error(fmt::format("{}: required key {} is missing", path, key));
  for (const char* key : {"clip.vision.image_mean", "clip.vision.image_std"}) {
    int64_t k = gguf_find_key(c, key);
    if (k >= 0 && (gguf_get_arr_type(c, k) != GGUF_TYPE_FLOAT32 || gguf_get_arr_n(c, k) < 3))
      throw std::runtime_error(fmt::format("{}: {} must hold 3 FLOAT32 values", path, key));
  }
  auto tensor = [&](const std::string& name) { return gguf_find_tensor(c, name.c_str()); };
  auto need = [&](const std::string& name) {
    if (tensor(name) < 0)
      throw std::runtime_error(fmt::format("{}: required tensor {} is missing", path, name));
  };
  need("v.patch_embd.weight");
  uint32_t blocks = gguf_get_val_u32(c, gguf_find_key(c, "clip.vision.block_count"));
  for (uint32_t i = 0; i < blocks; ++i)
    for (const char* t : {"attn_out.weight", "ffn_down.weight"}) need(fmt::format("v.blk.{}.{}", i, t));
  std::string proj = str_key(c, "clip.projector_type");
  if (proj == "mlp") {
    for (const char* t : {"mm.0.weight", "mm.0.bias", "mm.2.weight", "mm.2.bias", "v.position_embd.weight"})
      need(t);
  }
  // hyper-parameters, shapes, types, and the projection's width against the text model's
  check_mmproj_tensors(path, text_embd);
}

namespace {
std::mutex g_log_mu;
std::deque<std::string> g_errors;  // the last error lines (at most kKeepErrors)
constexpr size_t kKeepErrors = 3;

void on_log(ggml_log_level level, const char* text, void*) {
  std::string s = text ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (s.empty()) return;
  if (level == GGML_LOG_LEVEL_ERROR) {
    std::lock_guard lock(g_log_mu);
    g_errors.push_back(s);
    if (g_errors.size() > kKeepErrors) g_errors.pop_front();
  }
  spdlog::debug("llama.cpp: {}", s);
}
}  // namespace

void capture_llama_logs() {
  llama_log_set(on_log, nullptr);
  mtmd_helper_log_set(on_log, nullptr);  // also sets libmtmd's own
}

std::string with_llama_errors(const std::string& msg) {
  std::string e;
  {
    std::lock_guard lock(g_log_mu);
    for (const std::string& line : g_errors) e += (e.empty() ? "" : "; ") + line;
    g_errors.clear();
  }
  return e.empty() ? msg : msg + " (" + e + ")";
}

}  // namespace capforge::vlm
