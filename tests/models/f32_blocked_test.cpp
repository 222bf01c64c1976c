// The f32 panels of the T5 engine's decode steps (nn/f32_blocked.h) against their contract: each
// output one fused multiply-add chain over k in order, then + the residual, bit for bit, at any
// row count and thread count. N covers a last panel with 1, 6, 13 and 25 live channels (one or both
// masks partial) and whole panels.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>

#include "models/nn/f32_blocked.h"
#include "support/cpu_graph.h"

namespace capforge {

namespace {

// A host f32 (or f16) matrix of N rows of K, as a T5 GGUF holds one.
struct HostMatrix {
  ggml_context* ctx;
  ggml_tensor* t;
  HostMatrix(ggml_type type, int64_t K, int64_t N) {
    ctx = ggml_init({ggml_tensor_overhead() + ggml_row_size(type, K) * (size_t)N + 64, nullptr, false});
    t = ggml_new_tensor_2d(ctx, type, K, N);
  }
  ~HostMatrix() { ggml_free(ctx); }
};

}  // namespace

TEST(F32Blocked, EachOutputIsOneFmaChainAtAnyRowsAndThreads) {
  std::mt19937 rng(7);
  std::normal_distribution<float> d;
  for (auto [K, N] : {std::pair<int64_t, int64_t>{37, 70}, {64, 32}, {130, 45}, {16, 1}, {20, 57}}) {
    HostMatrix m(GGML_TYPE_F32, K, N);
    auto* w = (float*)m.t->data;
    for (int64_t i = 0; i < K * N; ++i) w[i] = d(rng);
    const nn::F32Blocked b = nn::pack_f32_blocked(m.t);
    ASSERT_EQ(b.panels, (N + 31) / 32);
    for (int64_t M : {1, 7, 12, 13, 25}) {
      std::vector<float> x((size_t)(K * M)), r((size_t)(N * M));
      for (auto& v : x) v = d(rng) * 3;
      for (auto& v : r) v = d(rng);
      for (bool with_res : {false, true}) {
        std::vector<float> want((size_t)(N * M));
        for (int64_t row = 0; row < M; ++row)
          for (int64_t n = 0; n < N; ++n) {
            float s = 0.f;
            for (int64_t k = 0; k < K; ++k) s = std::fma(x[(size_t)(row * K + k)], w[n * K + k], s);
            want[(size_t)(row * N + n)] = with_res ? s + r[(size_t)(row * N + n)] : s;
          }
        test::CpuGraph g;
        ggml_tensor* tx = g.input(GGML_TYPE_F32, K, M);
        ggml_tensor* tr = with_res ? g.input(GGML_TYPE_F32, N, M) : nullptr;
        g.build(nn::dense_f32_blocked(g.ctx(), b, tx, tr));
        for (int threads : {1, 2, 3}) {
          g.set(tx, x);  // the graph's later ops may reuse an input's memory
          if (tr) g.set(tr, r);
          const auto got = g.compute(threads);
          ASSERT_EQ(got.size(), want.size());
          for (size_t i = 0; i < got.size(); ++i)
            ASSERT_EQ(got[i], want[i]) << "K " << K << " N " << N << " M " << M << " threads " << threads
                                       << " residual " << with_res << " at " << i;
        }
      }
    }
  }
}

TEST(F32Blocked, RefusesOtherTypes) {
  HostMatrix m(GGML_TYPE_F16, 32, 4);
  std::memset(m.t->data, 0, ggml_nbytes(m.t));
  EXPECT_THROW(nn::pack_f32_blocked(m.t), std::invalid_argument);
}

}  // namespace capforge
