// nn::layer_norm_cpu (the fast path's one-op layer norm) against a double-precision layer norm, on
// contiguous rows and on rows at a stride (a view), at any thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "models/nn/layer_norm_cpu.h"

namespace capforge::nn {
namespace {

// layer_norm_cpu over `rows` rows of D taken every `pitch` floats of x; returns [D, rows]
std::vector<float> run(const std::vector<float>& x, int64_t D, int64_t pitch, int64_t rows,
                       const std::vector<float>& w, const std::vector<float>& b, int threads) {
  ggml_backend_t backend = ggml_backend_cpu_init();
  ggml_init_params p{ggml_tensor_overhead() * 16 + ggml_graph_overhead(), nullptr, true};
  ggml_context* g = ggml_init(p);
  ggml_tensor* in = ggml_new_tensor_2d(g, GGML_TYPE_F32, pitch, rows);
  ggml_tensor* tw = ggml_new_tensor_1d(g, GGML_TYPE_F32, D);
  ggml_tensor* tb = ggml_new_tensor_1d(g, GGML_TYPE_F32, D);
  for (ggml_tensor* t : {in, tw, tb}) ggml_set_input(t);
  ggml_tensor* view = ggml_view_2d(g, in, D, rows, in->nb[1], 0);
  EXPECT_TRUE(layer_norm_cpu_supports(view, tw, tb));
  ggml_tensor* out = layer_norm_cpu(g, view, tw, tb, 1e-5f);
  ggml_set_output(out);
  ggml_cgraph* gf = ggml_new_graph(g);
  ggml_build_forward_expand(gf, out);
  ggml_gallocr_t alloc = ggml_gallocr_new(ggml_backend_get_default_buffer_type(backend));
  EXPECT_TRUE(ggml_gallocr_alloc_graph(alloc, gf));
  ggml_backend_tensor_set(in, x.data(), 0, x.size() * sizeof(float));
  ggml_backend_tensor_set(tw, w.data(), 0, w.size() * sizeof(float));
  ggml_backend_tensor_set(tb, b.data(), 0, b.size() * sizeof(float));
  ggml_backend_cpu_set_n_threads(backend, threads);
  EXPECT_EQ(ggml_backend_graph_compute(backend, gf), GGML_STATUS_SUCCESS);
  std::vector<float> y((size_t)(D * rows));
  ggml_backend_tensor_get(out, y.data(), 0, y.size() * sizeof(float));
  ggml_gallocr_free(alloc);
  ggml_free(g);
  ggml_backend_free(backend);
  return y;
}

TEST(LayerNormCpu, MatchesADoubleLayerNorm) {
  // whole vectors, a partial last vector, less than one; rows contiguous and at a stride (a view)
  for (auto [D, pitch] : {std::pair<int64_t, int64_t>{768, 768}, {768, 773}, {100, 105}, {7, 7}, {7, 12}}) {
    const int64_t rows = 37;
    std::mt19937 rng(1);
    std::normal_distribution<float> d(0.5f, 3.0f);  // off-centre rows: the mean matters
    std::vector<float> x((size_t)(pitch * rows)), w((size_t)D), b((size_t)D);
    for (float& v : x) v = d(rng);
    for (float& v : w) v = d(rng);
    for (float& v : b) v = d(rng);
    const auto y = run(x, D, pitch, rows, w, b, 2);
    double worst = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = x.data() + r * pitch;
      double mean = 0, var = 0;
      for (int64_t i = 0; i < D; ++i) mean += row[i];
      mean /= (double)D;
      for (int64_t i = 0; i < D; ++i) var += (row[i] - mean) * (row[i] - mean);
      var /= (double)D;
      for (int64_t i = 0; i < D; ++i) {
        const double want = (row[i] - mean) / std::sqrt(var + 1e-5) * w[(size_t)i] + b[(size_t)i];
        worst = std::max(worst, std::fabs(want - y[(size_t)(r * D + i)]) / (std::fabs(w[(size_t)i]) + 1.0));
      }
    }
    EXPECT_LT(worst, 1e-5) << "D = " << D;
    EXPECT_EQ(run(x, D, pitch, rows, w, b, 1), y) << "D = " << D << ": one thread";
  }
}

}  // namespace
}  // namespace capforge::nn
