#include "models/vlm/mmproj_bf16.h"

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>

#include <unistd.h>

#include "ggml.h"
#include "gguf.h"
#include "models/ggml_util.h"

namespace capforge::vlm {

namespace {

struct GgufFree {
  void operator()(gguf_context* g) const { gguf_free(g); }
};
struct GgmlFree {
  void operator()(ggml_context* c) const { ggml_free(c); }
};

bool converted(const char* name, const ggml_tensor* t) {
  const bool block = std::strncmp(name, "v.blk.", 6) == 0 || std::strncmp(name, "mm.", 3) == 0;
  return block && ggml_n_dims(t) == 2 && (t->type == GGML_TYPE_F16 || t->type == GGML_TYPE_F32) &&
         std::strstr(name, ".weight") != nullptr;
}

}  // namespace

std::string mmproj_as_bf16(const std::string& mmproj) {
  ggml_context* data_raw = nullptr;
  std::unique_ptr<gguf_context, GgufFree> src(gguf_init_from_file(mmproj.c_str(), {false, &data_raw}));
  std::unique_ptr<ggml_context, GgmlFree> data(data_raw);
  if (!src) throw std::runtime_error(fmt::format("cannot read {} to convert it to bf16", mmproj));
  const int64_t k = gguf_find_key(src.get(), "clip.projector_type");
  const std::string type = k >= 0 && gguf_get_kv_type(src.get(), k) == GGUF_TYPE_STRING
                               ? gguf_get_val_str(src.get(), k)
                               : "mlp";  // libmtmd's default for LLaVA files without the key
  if (type != "mlp" && type != "idefics3")
    throw std::invalid_argument(fmt::format(
        "--mmproj-dtype bf16 runs the mlp (LLaVA-1.5) and idefics3 (SmolVLM) projectors; {} is {}", mmproj,
        type));
  const int64_t n = gguf_get_n_tensors(src.get());
  size_t bytes = ggml_tensor_overhead() * (size_t)(n + 1);
  for (int64_t i = 0; i < n; ++i) {
    const ggml_tensor* t = ggml_get_tensor(data.get(), gguf_get_tensor_name(src.get(), i));
    bytes += ggml_nbytes(t) + 64;
  }
  std::unique_ptr<ggml_context, GgmlFree> ctx(ggml_init({bytes, nullptr, false}));
  if (!ctx) throw std::runtime_error("cannot allocate memory to convert the projector to bf16");
  std::unique_ptr<gguf_context, GgufFree> dst(gguf_init_empty());
  gguf_set_kv(dst.get(), src.get());
  for (int64_t i = 0; i < n; ++i) {
    const char* name = gguf_get_tensor_name(src.get(), i);
    const ggml_tensor* t = ggml_get_tensor(data.get(), name);
    const bool bf16 = converted(name, t);
    ggml_tensor* x = ggml_new_tensor(ctx.get(), bf16 ? GGML_TYPE_BF16 : t->type, GGML_MAX_DIMS, t->ne);
    ggml_set_name(x, name);
    if (!bf16) {
      std::memcpy(x->data, t->data, ggml_nbytes(t));
    } else if (t->type == GGML_TYPE_F32) {
      ggml_fp32_to_bf16_row((const float*)t->data, (ggml_bf16_t*)x->data, ggml_nelements(t));
    } else {
      std::unique_ptr<float[]> row(new float[(size_t)t->ne[0]]);
      for (int64_t r = 0; r < t->ne[1]; ++r) {
        to_f32(GGML_TYPE_F16, (const ggml_fp16_t*)t->data + r * t->ne[0], row.get(), t->ne[0]);
        ggml_fp32_to_bf16_row(row.get(), (ggml_bf16_t*)x->data + r * t->ne[0], t->ne[0]);
      }
    }
    gguf_add_tensor(dst.get(), x);
  }
  std::string path = (std::filesystem::temp_directory_path() / "capforge-mmproj-bf16-XXXXXX").string();
  const int fd = mkstemp(path.data());
  if (fd < 0) throw std::runtime_error("cannot create a temporary file for the bf16 projector");
  close(fd);
  if (!gguf_write_to_file(dst.get(), path.c_str(), false)) {
    std::remove(path.c_str());
    throw std::runtime_error(fmt::format("cannot write the bf16 projector to {} (disk full?)", path));
  }
  return path;
}

}  // namespace capforge::vlm
