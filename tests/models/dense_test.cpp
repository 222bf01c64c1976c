// nn::dense: the towers' weight products (oneDNN where available, ggml otherwise) against a plain
// double-precision product of the same (rounded) inputs, and the contract that a row's result
// depends on nothing but that row: not on the rows beside it, their count, or the thread count.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "models/nn/dense.h"
#include "models/nn/int8.h"
#include "support/cpu_graph.h"

namespace capforge::nn {
namespace {

constexpr int64_t K = 800, N = 72;  // K past one of oneDNN's K blocks, N a tail

// How Weights::run calls dense(): through the DenseFused form when `on`, with quick-GELU and a
// residual [N, rows] when given.
struct Fused {
  bool on = false, quick_gelu = false;
  std::vector<float> residual;
};

struct Weights {
  ggml_backend_t backend = ggml_backend_cpu_init();
  ggml_context* ctx = nullptr;
  ggml_backend_buffer_t buf = nullptr;
  ggml_tensor* w = nullptr;
  std::vector<float> values;  // as stored (rounded to the weight type)

  explicit Weights(ggml_type type) {
    ggml_init_params p{ggml_tensor_overhead() * 8, nullptr, true};
    ctx = ggml_init(p);
    // int8: packed rows (int8.h), and w the view of their values
    ggml_tensor* packed = type == GGML_TYPE_I8 ? ggml_new_tensor_2d(ctx, type, K + kInt8Tail, N) : nullptr;
    w = packed ? ggml_view_2d(ctx, packed, K, N, packed->nb[1], 0) : ggml_new_tensor_2d(ctx, type, K, N);
    buf = ggml_backend_alloc_ctx_tensors(ctx, backend);
    std::mt19937 rng(7);
    std::normal_distribution<float> d;
    values.resize(K * N);
    std::vector<uint8_t> raw(ggml_nbytes(packed ? packed : w));
    for (int64_t i = 0; i < K * N; ++i) values[i] = d(rng);
    if (packed) {
      // the documented scheme by hand: per row, q = round(w / (max|w| / 127))
      pack_int8_rows(values.data(), K, N, (int8_t*)raw.data());
      for (int64_t n = 0; n < N; ++n) {
        float amax = 0;
        for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(values[n * K + k]));
        for (int64_t k = 0; k < K; ++k) {
          const int8_t q = ((const int8_t*)raw.data())[n * (K + kInt8Tail) + k];
          EXPECT_EQ(q, (int8_t)std::nearbyint(values[n * K + k] / (amax / 127)));
          values[n * K + k] = q * (amax / 127);
        }
      }
      ggml_backend_tensor_set(packed, raw.data(), 0, raw.size());
      return;
    }
    for (int64_t i = 0; i < K * N; ++i) {
      const float v = values[i];
      if (type == GGML_TYPE_F32) {
        ((float*)raw.data())[i] = values[i] = v;
      } else if (type == GGML_TYPE_BF16) {
        ((ggml_bf16_t*)raw.data())[i] = ggml_fp32_to_bf16(v);
        values[i] = ggml_bf16_to_fp32(((ggml_bf16_t*)raw.data())[i]);
      } else {
        ((ggml_fp16_t*)raw.data())[i] = ggml_fp32_to_fp16(v);
        values[i] = ggml_fp16_to_fp32(((ggml_fp16_t*)raw.data())[i]);
      }
    }
    ggml_backend_tensor_set(w, raw.data(), 0, raw.size());
  }
  ~Weights() {
    ggml_backend_buffer_free(buf);
    ggml_free(ctx);
    ggml_backend_free(backend);
  }

  // dense(w, x, bias) for x = `rows` rows of K, computed with `threads` threads; no bias when empty.
  std::vector<float> run(const std::vector<float>& x, int threads, const std::vector<float>& bias = {},
                         const Fused& fused = {}) {
    const int64_t M = (int64_t)x.size() / K;
    test::CpuGraph g;
    ggml_tensor* in = g.input(GGML_TYPE_F32, K, M);
    ggml_init_params bp{ggml_tensor_overhead() * 2, nullptr, true};
    ggml_context* bias_ctx = ggml_init(bp);  // the bias: a weight of its own, in a host buffer
    ggml_tensor* b = nullptr;
    ggml_backend_buffer_t bias_buf = nullptr;
    if (!bias.empty()) {  // a weight: in its own host buffer, as loaded biases are
      b = ggml_new_tensor_1d(bias_ctx, GGML_TYPE_F32, N);
      bias_buf = ggml_backend_alloc_buffer(backend, ggml_nbytes(b) + 64);
      ggml_tallocr talloc = ggml_tallocr_new(bias_buf);
      EXPECT_EQ(ggml_tallocr_alloc(&talloc, b), GGML_STATUS_SUCCESS);
      ggml_backend_tensor_set(b, bias.data(), 0, bias.size() * sizeof(float));
    }
    ggml_tensor* res = fused.residual.empty() ? nullptr : g.input(GGML_TYPE_F32, N, M);
    g.build(fused.on ? dense(g.ctx(), w, in, DenseFused{b, fused.quick_gelu, res})
                     : dense(g.ctx(), w, in, b));
    g.set(in, x);
    if (res) g.set(res, fused.residual);
    const auto y = g.compute(threads);
    if (bias_buf) ggml_backend_buffer_free(bias_buf);
    ggml_free(bias_ctx);
    return y;
  }
};

std::vector<float> inputs(int64_t rows, unsigned seed);

// dense_gathered(w, table, idx, G) on `table` (rows of K / G), computed with `threads` threads
std::vector<float> run_gathered(Weights& w, const std::vector<float>& table, const std::vector<int32_t>& idx,
                                int groups, int threads) {
  const int64_t C = K / groups, T = (int64_t)table.size() / C;
  test::CpuGraph g;
  ggml_tensor* tab = g.input(GGML_TYPE_F32, C, T);
  ggml_tensor* ids = g.input(GGML_TYPE_I32, (int64_t)idx.size());
  g.build(dense_gathered(g.ctx(), w.w, tab, ids, groups));
  g.set(tab, table);
  g.set(ids, idx);
  return g.compute(threads);
}

std::vector<float> inputs(int64_t rows, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d;
  std::vector<float> x((size_t)(rows * K));
  for (float& v : x) v = d(rng);
  return x;
}

class DenseTest : public ::testing::TestWithParam<ggml_type> {};

// int8's input rows as the documented scheme rounds them: per row, the range [min(0, x), max(0, x)]
// in 255 steps, zero on a step.
std::vector<float> int8_rounded(std::vector<float> x) {
  for (size_t r = 0; r < x.size() / K; ++r) {
    float* row = x.data() + r * K;
    const float lo = std::min(0.f, *std::min_element(row, row + K)),
                hi = std::max(0.f, *std::max_element(row, row + K));
    const float scale = (hi - lo) / 255, zero = std::nearbyint(-lo / scale);
    for (int64_t k = 0; k < K; ++k)
      row[k] = (std::min(std::max(std::nearbyint(row[k] * (1 / scale)) + zero, 0.f), 255.f) - zero) * scale;
  }
  return x;
}

bool runs(ggml_type type) { return type != GGML_TYPE_I8 || dense_uses_onednn(type); }

TEST_P(DenseTest, MatchesAPlainProduct) {
  const ggml_type type = GetParam();
  if (!runs(type)) GTEST_SKIP() << "int8 needs oneDNN and VNNI";
  Weights w(type);
  auto x = inputs(37, 1);
  const auto y = w.run(x, 2);
  // bf16 weights take their input rounded to bf16, f32 weights take it as is; f16 goes to ggml,
  // which rounds its input to f16; int8 quantises each row
  if (type == GGML_TYPE_I8) x = int8_rounded(x);
  const auto rounded = [&](float v) {
    if (type == GGML_TYPE_BF16) return ggml_bf16_to_fp32(ggml_fp32_to_bf16(v));
    if (type == GGML_TYPE_F16) return ggml_fp16_to_fp32(ggml_fp32_to_fp16(v));
    return v;
  };
  double worst = 0;
  for (int64_t r = 0; r < 37; ++r)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0, scale = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double t = (double)rounded(x[(size_t)(r * K + k)]) * w.values[(size_t)(n * K + k)];
        s += t;
        scale += std::fabs(t);
      }
      worst = std::max(worst, std::fabs(s - y[(size_t)(r * N + n)]) / scale);
    }
  EXPECT_LT(worst, 1e-6) << "relative to sum |x_k w_k|";
  std::printf("%s weights (oneDNN: %s): max error relative to sum|x w| %.2g\n", ggml_type_name(type),
              dense_uses_onednn(type) ? "yes" : "no", worst);
}

// Gathered rows multiply exactly as the same rows laid out by hand do (index T: a zero row), at
// any thread count.
TEST_P(DenseTest, GatheredEqualsDenseOverTheGatheredRows) {
  if (!runs(GetParam())) GTEST_SKIP() << "int8 needs oneDNN and VNNI";
  Weights w(GetParam());
  const int groups = 4;
  const int64_t C = K / groups, T = 32, P = 300;  // P past one gathered block (256 rows)
  const auto table = inputs(T * C / K, 3);        // T rows of C
  ASSERT_EQ((int64_t)table.size(), T * C);
  std::vector<int32_t> idx((size_t)(P * groups));
  std::mt19937 rng(4);
  for (auto& i : idx) i = (int32_t)(rng() % (T + 1));  // T: the zero row
  std::vector<float> cols((size_t)(P * K), 0.0f);
  for (int64_t p = 0; p < P; ++p)
    for (int64_t g = 0; g < groups; ++g)
      if (int32_t i = idx[(size_t)(p * groups + g)]; i < T)
        std::copy_n(table.begin() + i * C, C, cols.begin() + p * K + g * C);
  const auto want = w.run(cols, 2);
  for (int threads : {1, 2, 3})
    EXPECT_EQ(run_gathered(w, table, idx, groups, threads), want) << threads << " threads";
}

// A bias is added to every row after the product, exactly as a separate add would.
TEST_P(DenseTest, BiasIsAddedToEachRow) {
  if (!runs(GetParam())) GTEST_SKIP() << "int8 needs oneDNN and VNNI";
  Weights w(GetParam());
  const auto x = inputs(300, 6);  // past one block of rows, and a padded last block
  std::vector<float> bias((size_t)N);
  for (int64_t n = 0; n < N; ++n) bias[(size_t)n] = 0.25f * (float)n - 3.0f;
  const auto plain = w.run(x, 2), with = w.run(x, 2, bias);
  for (size_t i = 0; i < plain.size(); ++i) ASSERT_EQ(with[i], plain[i] + bias[i % N]) << "element " << i;
}

// The fused epilogue: bias, quick-GELU (x * sigmoid(1.702 x), to a few ulp), then the residual
// (bit for bit a separate add).
TEST_P(DenseTest, FusedEpilogueMatchesSeparateSteps) {
  if (!runs(GetParam())) GTEST_SKIP() << "int8 needs oneDNN and VNNI";
  Weights w(GetParam());
  const int64_t M = 300;
  const auto x = inputs(M, 8);
  std::vector<float> bias((size_t)N), residual((size_t)(M * N));
  for (int64_t n = 0; n < N; ++n) bias[(size_t)n] = 0.5f * (float)(n % 7) - 1.5f;
  for (size_t i = 0; i < residual.size(); ++i) residual[i] = (float)(i % 13) * 0.37f - 2.0f;
  const auto biased = w.run(x, 2, bias);
  const auto with_res = w.run(x, 2, bias, {true, false, residual});
  for (size_t i = 0; i < biased.size(); ++i) ASSERT_EQ(with_res[i], biased[i] + residual[i]) << i;
  const auto gelu = w.run(x, 2, bias, {true, true, residual});
  double worst = 0;
  for (size_t i = 0; i < biased.size(); ++i) {
    const double v = biased[i], want = v / (1 + std::exp(-1.702 * v)) + residual[i];
    worst = std::max(worst, std::fabs(gelu[i] - want) / (std::fabs(v) + std::fabs(residual[i]) + 1e-3));
  }
  EXPECT_LT(worst, 1e-6);
  EXPECT_EQ(w.run(x, 1, bias, {true, true, residual}), gelu) << "one thread";
}

class DenseOneDnnTest : public ::testing::TestWithParam<ggml_type> {};

TEST_P(DenseOneDnnTest, EachRowIndependentOfItsBatchAndThreads) {
  if (!dense_uses_onednn(GetParam())) GTEST_SKIP() << "no oneDNN in this build or for this CPU";
  Weights w(GetParam());
  // 300 rows: 150 per thread, in oneDNN calls of 152 (rounded up) rows; alone, calls of 8 to 200
  const int64_t M = 300;
  const auto x = inputs(M, 2);
  const auto all = w.run(x, 2);
  for (int threads : {1, 3}) EXPECT_EQ(w.run(x, threads), all) << threads << " threads";
  // the rows [from, from + n) alone give the same bits as in the whole batch
  for (auto [from, n] :
       {std::pair<int64_t, int64_t>{0, 1}, {7, 1}, {3, 17}, {20, 25}, {0, 128}, {1, 129}, {40, 200}}) {
    std::vector<float> part(x.begin() + from * K, x.begin() + (from + n) * K);
    const auto y = w.run(part, 2);
    EXPECT_EQ(0, std::memcmp(y.data(), all.data() + from * N, y.size() * sizeof(float)))
        << "rows " << from << ".." << from + n << " alone";
  }
}

const auto kTypeName = [](const auto& info) { return std::string(ggml_type_name(info.param)); };
INSTANTIATE_TEST_SUITE_P(Types, DenseTest,
                         ::testing::Values(GGML_TYPE_F32, GGML_TYPE_BF16, GGML_TYPE_F16, GGML_TYPE_I8),
                         kTypeName);
// the types dense() gives oneDNN
INSTANTIATE_TEST_SUITE_P(Types, DenseOneDnnTest,
                         ::testing::Values(GGML_TYPE_F32, GGML_TYPE_BF16, GGML_TYPE_I8), kTypeName);

// int8 against the exact f32 product: the quantisation error stays small (1% of sum |x w| here,
// where the inputs are Gaussian), so a tower's embeddings stay near f32's.
TEST(DenseInt8, NearTheFloatProduct) {
  if (!runs(GGML_TYPE_I8)) GTEST_SKIP() << "int8 needs oneDNN and VNNI";
  Weights w(GGML_TYPE_I8);
  std::mt19937 rng(7);  // the same draws as Weights' values before quantisation
  std::normal_distribution<float> d;
  std::vector<float> exact((size_t)(K * N));
  for (float& v : exact) v = d(rng);
  const auto x = inputs(16, 5);
  const auto y = w.run(x, 2);
  double worst = 0;
  for (int64_t r = 0; r < 16; ++r)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0, scale = 0;
      for (int64_t k = 0; k < K; ++k) {
        s += (double)x[(size_t)(r * K + k)] * exact[(size_t)(n * K + k)];
        scale += std::fabs((double)x[(size_t)(r * K + k)] * exact[(size_t)(n * K + k)]);
      }
      worst = std::max(worst, std::fabs(s - y[(size_t)(r * N + n)]) / scale);
    }
  EXPECT_LT(worst, 1e-2);
  EXPECT_GT(worst, 1e-5) << "suspiciously exact for int8";
  std::printf("int8: max error relative to sum|x w| %.2g\n", worst);
}

// A broken model file's non-finite weights and a non-finite activation row stay defined (q in
// range, NaN as 0; never undefined behaviour or a crash) and are not hidden: their scale is NaN, so
// every output they touch is NaN, as in f32 arithmetic. All-zero and subnormal rows keep a finite
// scale.
TEST(DenseInt8, NonFiniteWeightsAndRowsGiveNaN) {
  const float inf = INFINITY, nan = NAN;
  const std::vector<float> w = {1.f, nan, -2.f, 0.5f,  // a NaN among finite values
                                inf, 1.f, 0.f,  -1.f,  // an infinity
                                0.f, 0.f, 0.f,  0.f};  // all zero
  std::vector<int8_t> packed(3 * (4 + kInt8Tail));
  pack_int8_rows(w.data(), 4, 3, packed.data());
  for (int n = 0; n < 3; ++n) {
    float scale;
    std::memcpy(&scale, packed.data() + n * (4 + kInt8Tail) + 4, sizeof scale);
    if (n < 2)
      EXPECT_TRUE(std::isnan(scale)) << "row " << n;
    else
      EXPECT_TRUE(std::isfinite(scale) && scale > 0) << "row " << n;
  }
  EXPECT_EQ(packed[1], 0) << "NaN weight";
  EXPECT_EQ(packed[0], 64);  // 1 / (2 / 127), rounded
  int i = 0;
  for (const std::vector<float>& row : {std::vector<float>{nan, 1.f, -1.f, 2.f},
                                        {inf, -inf, 0.f, 1.f},
                                        {0.f, 0.f, 0.f, 0.f},
                                        {1e-44f, 0.f, 0.f, 0.f}}) {
    std::vector<uint8_t> q(row.size());
    const RowQuant r = quantize_row_u8(row.data(), (int64_t)row.size(), q.data());
    if (i++ < 2)
      EXPECT_TRUE(std::isnan(r.scale)) << "row " << i;
    else
      EXPECT_TRUE(std::isfinite(r.scale) && r.scale > 0) << "row " << i;
    EXPECT_GE(r.zero, 0);
    EXPECT_LE(r.zero, 255);
  }
}

}  // namespace
}  // namespace capforge::nn
