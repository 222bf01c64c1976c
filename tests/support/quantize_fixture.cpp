// capforge-make-fixture quantize IN.gguf OUT.gguf TYPE: the weight types users download, made from a
// random-weight f32 fixture.
//   - a language model (any llama.cpp architecture) goes through llama_model_quantize, as
//     llama-quantize does: TYPE F32, F16, BF16, Q8_0, Q4_0, Q4_K_M, Q5_K_M or Q6_K;
//   - an mmproj (general.architecture "clip") only to F16, BF16 (or F32): tensors of two or more dims
//     become F16, except position embeddings; 1-d tensors and norms stay F32 (as convert_hf_to_gguf.py
//     writes `--outtype f16` mmprojs); BF16 makes the 2-d matrices BF16 and the rest as F16.
// Exit 0 on success, 1 when reading, quantising or writing failed, 2 on bad usage.
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "ggml.h"
#include "gguf.h"
#include "llama.h"

namespace capforge::test {

namespace {

std::string architecture(const std::string& path) {
  gguf_init_params p{true, nullptr};
  gguf_context* g = gguf_init_from_file(path.c_str(), p);
  if (!g) return "";
  int64_t k = gguf_find_key(g, "general.architecture");
  std::string arch = k >= 0 ? gguf_get_val_str(g, k) : "?";
  gguf_free(g);
  return arch;
}

int mmproj_to(const std::string& in, const std::string& out, ggml_type type) {
  const bool f16 = type != GGML_TYPE_F32;
  ggml_context* data = nullptr;
  gguf_init_params p{false, &data};
  gguf_context* src = gguf_init_from_file(in.c_str(), p);
  if (!src) return std::fprintf(stderr, "cannot read %s\n", in.c_str()), 1;
  gguf_context* dst = gguf_init_empty();
  gguf_set_kv(dst, src);
  gguf_set_val_u32(dst, "general.file_type", type == GGML_TYPE_F16 ? 1u : type == GGML_TYPE_BF16 ? 32u : 0u);
  const int64_t n = gguf_get_n_tensors(src);
  size_t bytes = ggml_tensor_overhead() * (size_t)(n + 1);
  for (int64_t i = 0; i < n; ++i)
    bytes += ggml_nbytes(ggml_get_tensor(data, gguf_get_tensor_name(src, i))) + 64;
  ggml_init_params ip{bytes, nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  for (int64_t i = 0; i < n; ++i) {
    const char* name = gguf_get_tensor_name(src, i);
    const ggml_tensor* t = ggml_get_tensor(data, name);
    const bool to16 =
        f16 && t->type == GGML_TYPE_F32 && ggml_n_dims(t) >= 2 && !std::strstr(name, "position_embd");
    // bf16: the matrices only (a 4-d convolution kernel stays f16, as ggml's im2col takes it)
    const bool to_bf16 = to16 && type == GGML_TYPE_BF16 && ggml_n_dims(t) == 2;
    const ggml_type as = !to16 ? t->type : to_bf16 ? GGML_TYPE_BF16 : GGML_TYPE_F16;
    ggml_tensor* x = ggml_new_tensor(ctx, as, GGML_MAX_DIMS, t->ne);
    ggml_set_name(x, name);
    if (as == GGML_TYPE_BF16)
      ggml_fp32_to_bf16_row((const float*)t->data, (ggml_bf16_t*)x->data, ggml_nelements(t));
    else if (as == GGML_TYPE_F16)
      ggml_fp32_to_fp16_row((const float*)t->data, (ggml_fp16_t*)x->data, ggml_nelements(t));
    else
      std::memcpy(x->data, t->data, ggml_nbytes(t));
    gguf_add_tensor(dst, x);
  }
  const bool ok = gguf_write_to_file(dst, out.c_str(), false);
  gguf_free(dst);
  gguf_free(src);
  ggml_free(ctx);
  ggml_free(data);
  if (!ok) return std::fprintf(stderr, "cannot write %s\n", out.c_str()), 1;
  return 0;
}

}  // namespace

int quantize_fixture(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s quantize IN.gguf OUT.gguf F32|F16|BF16|Q8_0|Q4_0|Q4_K_M|Q5_K_M|Q6_K\n",
                 argv[0]);
    return 2;
  }
  const std::string in = argv[2], out = argv[3], type = argv[4];
  const std::string arch = architecture(in);
  if (arch.empty()) return std::fprintf(stderr, "cannot read %s\n", in.c_str()), 1;
  if (arch == "clip") {
    if (type != "F16" && type != "BF16" && type != "F32")
      return std::fprintf(stderr, "an mmproj goes to F16, BF16 or F32 only\n"), 2;
    return mmproj_to(in, out,
                     type == "F16"    ? GGML_TYPE_F16
                     : type == "BF16" ? GGML_TYPE_BF16
                                      : GGML_TYPE_F32);
  }
  static const std::map<std::string, llama_ftype> types = {
      {"F32", LLAMA_FTYPE_ALL_F32},          {"F16", LLAMA_FTYPE_MOSTLY_F16},
      {"BF16", LLAMA_FTYPE_MOSTLY_BF16},     {"Q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},
      {"Q4_0", LLAMA_FTYPE_MOSTLY_Q4_0},     {"Q4_K_M", LLAMA_FTYPE_MOSTLY_Q4_K_M},
      {"Q5_K_M", LLAMA_FTYPE_MOSTLY_Q5_K_M}, {"Q6_K", LLAMA_FTYPE_MOSTLY_Q6_K}};
  auto it = types.find(type);
  if (it == types.end()) return std::fprintf(stderr, "unknown type %s\n", type.c_str()), 2;
  llama_backend_init();
  llama_model_quantize_params qp = llama_model_quantize_default_params();
  qp.ftype = it->second;
  const uint32_t rc = llama_model_quantize(in.c_str(), out.c_str(), &qp);
  llama_backend_free();
  if (rc != 0) return std::fprintf(stderr, "llama_model_quantize failed on %s\n", in.c_str()), 1;
  return 0;
}

}  // namespace capforge::test
