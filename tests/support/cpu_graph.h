// A ggml graph on the CPU backend for kernel tests: declare inputs in ctx(), build() the graph of
// an output, set() the inputs, compute() with a thread count and read the f32 result. Inputs keep
// their values between computes, so one graph can run at several thread counts.
#pragma once

#include <gtest/gtest.h>

#include <vector>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"

namespace capforge::test {

class CpuGraph {
 public:
  CpuGraph() {
    ggml_init_params p{ggml_tensor_overhead() * 64 + ggml_graph_overhead(), nullptr, true};
    ctx_ = ggml_init(p);
  }
  ~CpuGraph() {
    if (alloc_) ggml_gallocr_free(alloc_);
    ggml_free(ctx_);
    ggml_backend_free(backend_);
  }
  CpuGraph(const CpuGraph&) = delete;
  CpuGraph& operator=(const CpuGraph&) = delete;

  ggml_context* ctx() { return ctx_; }
  ggml_backend_t backend() { return backend_; }
  // A new input tensor (set it after build()).
  ggml_tensor* input(ggml_type type, int64_t ne0, int64_t ne1 = 1, int64_t ne2 = 1, int64_t ne3 = 1) {
    ggml_tensor* t = ggml_new_tensor_4d(ctx_, type, ne0, ne1, ne2, ne3);
    ggml_set_input(t);
    return t;
  }
  // Allocates the graph that computes `out`.
  void build(ggml_tensor* out) {
    out_ = out;
    ggml_set_output(out);
    gf_ = ggml_new_graph(ctx_);
    ggml_build_forward_expand(gf_, out);
    alloc_ = ggml_gallocr_new(ggml_backend_get_default_buffer_type(backend_));
    EXPECT_TRUE(ggml_gallocr_alloc_graph(alloc_, gf_));
  }
  template <class T>
  void set(ggml_tensor* t, const std::vector<T>& values) {
    ggml_backend_tensor_set(t, values.data(), 0, values.size() * sizeof(T));
  }
  std::vector<float> compute(int threads) {
    ggml_backend_cpu_set_n_threads(backend_, threads);
    EXPECT_EQ(ggml_backend_graph_compute(backend_, gf_), GGML_STATUS_SUCCESS);
    std::vector<float> y((size_t)ggml_nelements(out_));
    ggml_backend_tensor_get(out_, y.data(), 0, y.size() * sizeof(float));
    return y;
  }

 private:
  ggml_backend_t backend_ = ggml_backend_cpu_init();
  ggml_context* ctx_ = nullptr;
  ggml_gallocr_t alloc_ = nullptr;
  ggml_cgraph* gf_ = nullptr;
  ggml_tensor* out_ = nullptr;
};

}  // namespace capforge::test
