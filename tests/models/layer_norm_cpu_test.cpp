// nn::layer_norm_cpu (the fast path's one-op layer norm) against a double-precision layer norm, on
// contiguous rows and on rows at a stride (a view), at any thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "models/nn/layer_norm_cpu.h"
#include "support/cpu_graph.h"

namespace capforge::nn {
namespace {

// layer_norm_cpu over `rows` rows of D taken every `pitch` floats of x; returns [D, rows]
std::vector<float> run(const std::vector<float>& x, int64_t D, int64_t pitch, int64_t rows,
                       const std::vector<float>& w, const std::vector<float>& b, int threads) {
  test::CpuGraph g;
  ggml_tensor* in = g.input(GGML_TYPE_F32, pitch, rows);
  ggml_tensor* tw = g.input(GGML_TYPE_F32, D);
  ggml_tensor* tb = g.input(GGML_TYPE_F32, D);
  ggml_tensor* view = ggml_view_2d(g.ctx(), in, D, rows, in->nb[1], 0);
  EXPECT_TRUE(layer_norm_cpu_supports(view, tw, tb));
  g.build(layer_norm_cpu(g.ctx(), view, tw, tb, 1e-5f));
  g.set(in, x);
  g.set(tw, w);
  g.set(tb, b);
  return g.compute(threads);
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
