// nn::attention_cpu, the towers' f32 attention kernel, against a plain double-precision softmax
// attention on the same inputs; and its contract that a query's result depends only on its own
// inputs (not on the batch, the other heads or the thread count).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "models/nn/attention_cpu.h"
#include "support/cpu_graph.h"

namespace capforge::nn {
namespace {

struct Shape {
  int64_t hd, H, Tq, Tk, B;
};

struct Inputs {
  Shape s;
  std::vector<float> q, k, v;     // [hd, H, T, B], ggml order
  std::vector<ggml_fp16_t> mask;  // [Tk, Tq] or empty
};

Inputs make(Shape s, bool causal, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 2.f);  // wide scores: a peaked softmax
  Inputs in{s, {}, {}, {}, {}};
  in.q.resize((size_t)(s.hd * s.H * s.Tq * s.B));
  in.k.resize((size_t)(s.hd * s.H * s.Tk * s.B));
  in.v.resize(in.k.size());
  for (auto* t : {&in.q, &in.k, &in.v})
    for (float& x : *t) x = d(rng);
  if (causal)
    for (int64_t i = 0; i < s.Tq; ++i)
      for (int64_t j = 0; j < s.Tk; ++j) in.mask.push_back(ggml_fp32_to_fp16(j <= i ? 0.f : -INFINITY));
  return in;
}

// attention_cpu on `in` with `threads` threads -> [hd*H, Tq, B]; `causal` passes the flag (with no
// mask) instead of in.mask
std::vector<float> run(const Inputs& in, float scale, int threads, bool causal = false) {
  const Shape s = in.s;
  test::CpuGraph g;
  ggml_tensor* q = g.input(GGML_TYPE_F32, s.hd, s.H, s.Tq, s.B);
  ggml_tensor* k = g.input(GGML_TYPE_F32, s.hd, s.H, s.Tk, s.B);
  ggml_tensor* v = g.input(GGML_TYPE_F32, s.hd, s.H, s.Tk, s.B);
  ggml_tensor* m = in.mask.empty() || causal ? nullptr : g.input(GGML_TYPE_F16, s.Tk, s.Tq);
  EXPECT_TRUE(attention_cpu_supports(q, k, v, m));
  g.build(attention_cpu(g.ctx(), q, k, v, m, scale, causal));
  g.set(q, in.q);
  g.set(k, in.k);
  g.set(v, in.v);
  if (m) g.set(m, in.mask);
  return g.compute(threads);
}

// softmax(scale q k^T + mask) v in double, for query i of head h in batch b
std::vector<double> reference(const Inputs& in, float scale, int64_t h, int64_t i, int64_t b) {
  const Shape s = in.s;
  auto at = [&](const std::vector<float>& t, int64_t T, int64_t j, int64_t d) {
    return (double)t[(size_t)(((b * T + j) * s.H + h) * s.hd + d)];
  };
  std::vector<double> w((size_t)s.Tk);
  double m = -INFINITY, l = 0;
  for (int64_t j = 0; j < s.Tk; ++j) {
    double dot = 0;
    for (int64_t d = 0; d < s.hd; ++d) dot += at(in.q, s.Tq, i, d) * at(in.k, s.Tk, j, d);
    w[(size_t)j] = dot * scale + (in.mask.empty() ? 0.0 : ggml_fp16_to_fp32(in.mask[(size_t)(i * s.Tk + j)]));
    m = std::max(m, w[(size_t)j]);
  }
  for (double& x : w) l += (x = std::exp(x - m));
  std::vector<double> o((size_t)s.hd, 0.0);
  for (int64_t d = 0; d < s.hd; ++d)
    for (int64_t j = 0; j < s.Tk; ++j) o[(size_t)d] += w[(size_t)j] / l * at(in.v, s.Tk, j, d);
  return o;
}

struct Case {
  const char* name;
  Shape shape;
  bool causal;
};

class AttentionCpuTest : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionCpuTest, MatchesADoubleSoftmaxAttention) {
  const Case c = GetParam();
  const Inputs in = make(c.shape, c.causal, 3);
  const float scale = 1.0f / std::sqrt((float)c.shape.hd);
  const auto y = run(in, scale, 2);
  double worst = 0;
  const Shape s = c.shape;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t i = 0; i < s.Tq; ++i)
      for (int64_t h = 0; h < s.H; ++h) {
        const auto want = reference(in, scale, h, i, b);
        for (int64_t d = 0; d < s.hd; ++d)
          worst = std::max(worst,
                           std::fabs(want[(size_t)d] - y[(size_t)(((b * s.Tq + i) * s.H + h) * s.hd + d)]));
      }
  EXPECT_LT(worst, 2e-5) << c.name;  // |v| ~ 2: f32 rounding of tens of products
}

TEST_P(AttentionCpuTest, EachQueryIndependentOfBatchAndThreads) {
  const Case c = GetParam();
  const Inputs in = make(c.shape, c.causal, 4);
  const auto all = run(in, 0.125f, 2);
  EXPECT_EQ(run(in, 0.125f, 1), all);
  EXPECT_EQ(run(in, 0.125f, 3), all);
  // the last batch entry alone
  const Shape s = c.shape;
  Inputs last = in;
  last.s.B = 1;
  const size_t nq = (size_t)(s.hd * s.H * s.Tq), nk = (size_t)(s.hd * s.H * s.Tk);
  last.q.assign(in.q.end() - (ptrdiff_t)nq, in.q.end());
  last.k.assign(in.k.end() - (ptrdiff_t)nk, in.k.end());
  last.v.assign(in.v.end() - (ptrdiff_t)nk, in.v.end());
  const auto alone = run(last, 0.125f, 2);
  EXPECT_EQ(0,
            std::memcmp(alone.data(), all.data() + all.size() - alone.size(), alone.size() * sizeof(float)));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionCpuTest,
    ::testing::Values(Case{"vit_b_32", {64, 3, 50, 50, 2}, false},          // 50 tokens: a partial key vector
                      Case{"clip_text_causal", {64, 2, 77, 77, 2}, true},   // 77: five key vectors
                      Case{"siglip_so400m_hd72", {72, 2, 9, 9, 3}, false},  // a head dim past 4 vectors' tail
                      Case{"attention_pool", {128, 4, 1, 197, 2}, false},   // one query, 197 keys
                      Case{"one_key", {16, 1, 3, 1, 1}, false}),
    [](const auto& info) { return std::string(info.param.name); });

// The causal flag (the f32 path, which has no mask input) gives a causal mask's bits.
TEST(AttentionCpu, CausalFlagEqualsACausalMask) {
  const Inputs in = make({64, 3, 77, 77, 2}, true, 9);
  for (int threads : {1, 2}) EXPECT_EQ(run(in, 0.125f, threads, true), run(in, 0.125f, threads)) << threads;
}

// A query whose every key is masked out gets zeros (not NaN).
TEST(AttentionCpu, AFullyMaskedQueryIsZero) {
  Inputs in = make({32, 1, 2, 5, 1}, true, 5);
  for (int64_t j = 0; j < 5; ++j) in.mask[(size_t)j] = ggml_fp32_to_fp16(-INFINITY);  // query 0: nothing
  const auto y = run(in, 0.2f, 1);
  for (int64_t d = 0; d < 32; ++d) EXPECT_EQ(y[(size_t)d], 0.0f);
  for (int64_t d = 32; d < 64; ++d) EXPECT_TRUE(std::isfinite(y[(size_t)d]));
}

}  // namespace
}  // namespace capforge::nn
