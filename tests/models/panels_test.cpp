// The weight panels of the T5 engine's decode steps (nn/panels.h) against their contract: each
// output one fused multiply-add chain over k in order of the input and the weight's exact f32
// value, then + the residual, bit for bit, for f32, f16 and bf16 weights at any row count and
// thread count. N covers a last panel with 1, 6, 13 and 25 live channels (one or both
// masks partial) and whole panels.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>

#include "models/nn/panels.h"
#include "support/cpu_graph.h"

namespace capforge {

namespace {

// A host matrix of N rows of K, as a T5 GGUF holds one.
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

TEST(Panels, EachOutputIsOneFmaChainAtAnyRowsAndThreads) {
  std::mt19937 rng(7);
  std::normal_distribution<float> d;
  for (ggml_type type : {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16})
    for (auto [K, N] : {std::pair<int64_t, int64_t>{37, 70}, {64, 32}, {130, 45}, {16, 1}, {20, 57}}) {
      HostMatrix m(type, K, N);
      std::vector<float> w((size_t)(K * N));  // the stored values, exactly
      for (int64_t i = 0; i < K * N; ++i) {
        const float v = d(rng);
        if (type == GGML_TYPE_F16) {
          ((ggml_fp16_t*)m.t->data)[i] = ggml_fp32_to_fp16(v);
          w[(size_t)i] = ggml_fp16_to_fp32(((ggml_fp16_t*)m.t->data)[i]);
        } else if (type == GGML_TYPE_BF16) {
          ((ggml_bf16_t*)m.t->data)[i] = ggml_fp32_to_bf16(v);
          w[(size_t)i] = ggml_bf16_to_fp32(((ggml_bf16_t*)m.t->data)[i]);
        } else {
          ((float*)m.t->data)[i] = w[(size_t)i] = v;
        }
      }
      const nn::Panels b = nn::pack_panels(m.t);
      ASSERT_EQ(b.panels, (N + 31) / 32);
      ASSERT_EQ(b.type, type);
      for (int pack_threads : {1, 3}) {  // the layout does not depend on the packing threads
        const nn::Panels o = nn::pack_panels(m.t, pack_threads);
        ASSERT_EQ(std::memcmp(o.w.get(), b.w.get(), b.bytes()), 0)
            << "packed on " << pack_threads << " threads";
      }
      for (int64_t M : {1, 7, 12, 13, 25, 200}) {  // 200: row blocks, several when threads outnumber panels
        std::vector<float> x((size_t)(K * M)), r((size_t)(N * M));
        for (auto& v : x) v = d(rng) * 3;
        for (auto& v : r) v = d(rng);
        for (bool with_res : {false, true}) {
          std::vector<float> want((size_t)(N * M));
          for (int64_t row = 0; row < M; ++row)
            for (int64_t n = 0; n < N; ++n) {
              float s = 0.f;
              for (int64_t k = 0; k < K; ++k)
                s = std::fma(x[(size_t)(row * K + k)], w[(size_t)(n * K + k)], s);
              want[(size_t)(row * N + n)] = with_res ? s + r[(size_t)(row * N + n)] : s;
            }
          test::CpuGraph g;
          ggml_tensor* tx = g.input(GGML_TYPE_F32, K, M);
          ggml_tensor* tr = with_res ? g.input(GGML_TYPE_F32, N, M) : nullptr;
          g.build(nn::dense_panels(g.ctx(), b, tx, tr));
          for (int threads : {1, 2, 3, 16}) {
            g.set(tx, x);  // the graph's later ops may reuse an input's memory
            if (tr) g.set(tr, r);
            const auto got = g.compute(threads);
            ASSERT_EQ(got.size(), want.size());
            for (size_t i = 0; i < got.size(); ++i)
              ASSERT_EQ(got[i], want[i]) << ggml_type_name(type) << " K " << K << " N " << N << " M " << M
                                         << " threads " << threads << " residual " << with_res << " at " << i;
          }
        }
      }
    }
}

TEST(Panels, RefusesOtherTypes) {
  HostMatrix m(GGML_TYPE_Q8_0, 32, 4);
  std::memset(m.t->data, 0, ggml_nbytes(m.t));
  EXPECT_FALSE(nn::panels_take(GGML_TYPE_Q8_0));
  EXPECT_THROW(nn::pack_panels(m.t), std::invalid_argument);
}

}  // namespace capforge
