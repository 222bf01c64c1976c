#include "models/ggml_util.h"

#include <fmt/format.h>

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <thread>

#include "core/cpus.h"
#include "ggml-cpu.h"

namespace capforge {

ggml_backend_dev_t pick_device(bool gpu) {
  if (gpu)
    if (auto* d = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_GPU)) return d;
  auto* cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
  if (!cpu) throw std::runtime_error("ggml has no CPU backend");
  return cpu;
}

void advise_huge_pages(ggml_backend_buffer_t buf) {
  if (!buf || !ggml_backend_buffer_is_host(buf)) return;
  const size_t page = 4096, size = ggml_backend_buffer_get_size(buf);
  if (size < (4u << 20)) return;
  const auto base = (uintptr_t)ggml_backend_buffer_get_base(buf);
  const uintptr_t from = (base + page - 1) / page * page, to = (base + size) / page * page;
  if (to > from) madvise((void*)from, to - from, MADV_HUGEPAGE);  // a hint: failure changes nothing
}

void* alloc_huge(size_t bytes) {
  constexpr size_t kHuge = 2u << 20;
  void* mem = nullptr;
  if (posix_memalign(&mem, kHuge, std::max<size_t>(bytes, 64)) != 0) throw std::bad_alloc();
  if (const size_t whole = bytes / kHuge * kHuge; whole > 0)
    madvise(mem, whole, MADV_HUGEPAGE);  // a hint: failure changes nothing
  return mem;
}

ggml_backend_t init_backend(ggml_backend_dev_t dev, int threads) {
  ggml_backend_t b = ggml_backend_dev_init(dev, nullptr);
  if (!b) throw std::runtime_error(fmt::format("cannot start the {} backend", ggml_backend_dev_name(dev)));
  if (ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU)
    ggml_backend_cpu_set_n_threads(b, threads > 0 ? threads : available_cpus());
  return b;
}

ggml_type weight_type_from_name(const std::string& name) {
  if (name == "f32") return GGML_TYPE_F32;
  if (name == "f16") return GGML_TYPE_F16;
  if (name == "bf16") return GGML_TYPE_BF16;
  if (name == "q8_0") return GGML_TYPE_Q8_0;
  if (name == "int8") return GGML_TYPE_I8;  // per-channel int8 matrices for nn::dense (nn/int8.h)
  throw std::runtime_error("unsupported --dtype '" + name + "' (f32, f16, bf16, q8_0, int8)");
}

void upload_f32(ggml_tensor* t, const std::vector<float>& v) {
  if ((int64_t)v.size() != ggml_nelements(t))
    throw std::logic_error(
        fmt::format("upload of {} values into {} ({} elements)", v.size(), t->name, ggml_nelements(t)));
  if (t->type == GGML_TYPE_F32) {
    ggml_backend_tensor_set(t, v.data(), 0, v.size() * sizeof(float));
    return;
  }
  std::vector<uint8_t> buf(ggml_nbytes(t));
  if (t->type == GGML_TYPE_F16) {
    ggml_fp32_to_fp16_row(v.data(), (ggml_fp16_t*)buf.data(), (int64_t)v.size());
  } else if (t->type == GGML_TYPE_BF16) {
    ggml_fp32_to_bf16_row(v.data(), (ggml_bf16_t*)buf.data(), (int64_t)v.size());
  } else {
    int64_t row = t->ne[0], rows = ggml_nelements(t) / row;
    ggml_quantize_chunk(t->type, v.data(), buf.data(), 0, rows, row, nullptr);
  }
  ggml_backend_tensor_set(t, buf.data(), 0, buf.size());
}

void to_f32(ggml_type type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case GGML_TYPE_F32:
      std::memcpy(dst, src, (size_t)n * sizeof(float));
      return;
    case GGML_TYPE_F16:
      return ggml_cpu_fp16_to_fp32((const ggml_fp16_t*)src, dst, n);
    case GGML_TYPE_BF16:
      return ggml_cpu_bf16_to_fp32((const ggml_bf16_t*)src, dst, n);
    default:
      if (const auto to_float = ggml_get_type_traits(type)->to_float) return to_float(src, dst, n);
      throw std::invalid_argument(fmt::format("cannot dequantise type {}", ggml_type_name(type)));
  }
}

int64_t row_stride(const ggml_tensor* x) {
  int64_t stride = 0, span = 0;
  for (int d = 1; d < GGML_MAX_DIMS; ++d) {
    if (x->ne[d] == 1) continue;  // a size-1 dim's stride is free
    if (stride == 0)
      stride = (int64_t)x->nb[d];
    else if ((int64_t)x->nb[d] != span)
      return 0;
    span = (int64_t)x->nb[d] * x->ne[d];
  }
  return stride ? stride : (int64_t)(x->ne[0] * sizeof(float));
}

}  // namespace capforge
