// Shared ggml plumbing for our model graphs: device choice, weight upload with dtype conversion.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"

namespace capforge {

// The device to run on: the first GPU when `gpu` and one is compiled in, else the CPU.
ggml_backend_dev_t pick_device(bool gpu);
// A backend on `dev`; CPU backends get `threads` threads (0: the CPUs this process may use).
ggml_backend_t init_backend(ggml_backend_dev_t dev, int threads);

// "f32", "f16", "q8_0" -> ggml type; throws on others.
ggml_type weight_type_from_name(const std::string& name);

// Asks the kernel for transparent huge pages over a host buffer's memory (a hint, ignored where
// THP is off): its untouched pages then fault in 2 MB at a time, which on a VM costs a fraction
// of 512 small faults (RN50x64 images +15%, a T5's bf16 conversion at load 2.8 -> 1.2 s). Call it
// before the buffer's pages are first written; buffers under 4 MB and device buffers are skipped.
void advise_huge_pages(ggml_backend_buffer_t buf);

// Host memory for weights that a decode step streams whole (nn/panels.h, nn/int8_blocked.h):
// 2 MiB-aligned, its whole 2 MiB pages advised huge (a hint: a TLB miss every 4 KiB otherwise, and
// a fault each at first touch); the tail past the last whole huge page stays in small pages, so
// rounding never makes memory resident for nothing. Freed with std::free. Throws std::bad_alloc.
struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
void* alloc_huge(size_t bytes);

// n values of `type` at src (f32, f16, bf16 or any type ggml dequantises; n whole blocks of it) as
// f32 at dst: the CPU backend's vectorised conversions for f16 and bf16 (the type traits' take one
// value at a time), the same values. std::invalid_argument for a type without a dequantiser.
void to_f32(ggml_type type, const void* src, float* dst, int64_t n);

// Copies f32 `values` into `t` (already allocated in a backend buffer), converting to t's type.
void upload_f32(ggml_tensor* t, const std::vector<float>& values);

// The stride in bytes between x's rows (dims 1..3 flattened; size-1 dims ignored), or 0 when they
// are not evenly spaced.
int64_t row_stride(const ggml_tensor* x);

// One forward pass of a graph of at most `max_nodes` nodes: builds it with build(ctx, gf) in the
// reusable metadata arena `meta`, allocates it with `alloc`, fills its inputs with set(g), computes
// it on `backend` and hands it to read(g) while its tensors are alive. `what` names the model in
// errors.
template <typename Build, typename Set, typename Read>
void compute_graph(ggml_backend_t backend, ggml_gallocr_t alloc, std::vector<uint8_t>& meta, size_t max_nodes,
                   const char* what, Build build, Set set, Read read) {
  const size_t need = ggml_tensor_overhead() * max_nodes + ggml_graph_overhead_custom(max_nodes, false);
  if (meta.size() < need) meta.resize(need);
  ggml_init_params ip{meta.size(), meta.data(), true};
  ggml_context* ctx = ggml_init(ip);
  struct Free {
    ggml_context* ctx;
    ~Free() { ggml_free(ctx); }
  } guard{ctx};
  ggml_cgraph* gf = ggml_new_graph_custom(ctx, max_nodes, false);
  auto g = build(ctx, gf);
  if (!ggml_gallocr_alloc_graph(alloc, gf))
    throw std::runtime_error(fmt::format("cannot allocate the {} compute graph", what));
  if (ggml_tensor* out = ggml_graph_node(gf, -1))
    advise_huge_pages(out->view_src ? out->view_src->buffer : out->buffer);
  set(g);
  ggml_status st = ggml_backend_graph_compute(backend, gf);
  if (st != GGML_STATUS_SUCCESS)
    throw std::runtime_error(fmt::format("{} graph failed ({})", what, ggml_status_to_string(st)));
  read(g);
}

}  // namespace capforge
