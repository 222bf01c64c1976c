#include "models/nn/int8_blocked.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include <omp.h>

#include "core/cpus.h"
#include "models/ggml_util.h"
#include "models/nn/int8.h"
#include "models/nn/simd.h"

namespace capforge::nn {

namespace {

constexpr int64_t kLanes = 16;  // channels per block (one 512-bit register of int32 sums)
constexpr int kRows = 8;        // input rows per register tile (16 accumulators: 8 rows x 2 blocks)

// A quantised input row as op 1 writes it: k4 * 4 u8 values (zeros past K), then the RowQuant.
int64_t quant_row_bytes(int64_t k4) { return k4 * 4 + (int64_t)sizeof(RowQuant); }

RowQuant row_quant_of(const uint8_t* row, int64_t k4) {
  RowQuant r;
  std::memcpy(&r, row + k4 * 4, sizeof r);
  return r;
}

// Where a tile's results go: row r of the tile at y + r * ldy (its 32 channels' live ones, mask
// m0 / m1 per block), plus res + r * ldr when res is set; the pair's weight scales and sums.
struct TileOut {
  float* y;
  int64_t ldy;
  const float* res;
  int64_t ldr;
  const float* scale;
  const int32_t* sum;
  uint16_t m0, m1;
};

// acc[r][c] (r < rows, c < 32) = the integer products of rows a[r] (lda bytes apart) with the
// pair of blocks at w (two blocks of k4 x 64 bytes).
void tile_plain(const uint8_t* a, int64_t lda, int rows, const int8_t* w, int64_t k4, int32_t (*acc)[32]) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < 32; ++c) {
      const int8_t* wb = w + (c / kLanes) * k4 * 64 + (c % kLanes) * 4;
      int32_t s = 0;
      for (int64_t k = 0; k < k4; ++k)
        for (int j = 0; j < 4; ++j) s += (int32_t)a[r * lda + k * 4 + j] * wb[k * 64 + j];
      acc[r][c] = s;
    }
}

#if defined(__x86_64__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define CF_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

// The integer products of rows a[r] (lda bytes apart, each followed by its RowQuant at k4 * 4) with
// the pair of blocks at w, rescaled in registers: int8_rescale_row's expression, operation for
// operation (the same bits), then + the residual.
template <int R>
CF_VNNI void tile_vnni(const uint8_t* a, int64_t lda, const int8_t* w, int64_t k4, const TileOut& o) {
  const int8_t* w1 = w + k4 * 64;
  __m512i c0[R], c1[R];
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_si512();
  for (int64_t k = 0; k < k4; ++k) {
    const __m512i x0 = _mm512_load_si512(w + k * 64), x1 = _mm512_load_si512(w1 + k * 64);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      int32_t four;
      std::memcpy(&four, a + r * lda + k * 4, 4);
      const __m512i b = _mm512_set1_epi32(four);
      c0[r] = _mm512_dpbusd_epi32(c0[r], b, x0);
      c1[r] = _mm512_dpbusd_epi32(c1[r], b, x1);
    }
  }
  const __m512 s0 = _mm512_loadu_ps(o.scale), s1 = _mm512_loadu_ps(o.scale + 16);
  const __m512i u0 = _mm512_loadu_si512(o.sum), u1 = _mm512_loadu_si512(o.sum + 16);
  for (int r = 0; r < R; ++r) {
    const RowQuant q = row_quant_of(a + r * lda, k4);
    const __m512i vz = _mm512_set1_epi32(q.zero);
    const __m512 vs = _mm512_set1_ps(q.scale);
    __m512 v0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(c0[r], _mm512_mullo_epi32(vz, u0))),
                              _mm512_mul_ps(vs, s0));
    __m512 v1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(c1[r], _mm512_mullo_epi32(vz, u1))),
                              _mm512_mul_ps(vs, s1));
    float* y = o.y + r * o.ldy;
    if (o.res) {
      const float* rr = o.res + r * o.ldr;
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(o.m0, rr));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(o.m1, rr + 16));
    }
    _mm512_mask_storeu_ps(y, o.m0, v0);
    _mm512_mask_storeu_ps(y + 16, o.m1, v1);
  }
}

template <int... Rs>
void tile_vnni_rows(std::integer_sequence<int, Rs...>, const uint8_t* a, int64_t lda, int rows,
                    const int8_t* w, int64_t k4, const TileOut& o) {
  (void)((rows == Rs + 1 ? (tile_vnni<Rs + 1>(a, lda, w, k4, o), true) : false) || ...);
}

// tile_vnni with `rows` (1..kRows) as a compile-time count.
void tile_vnni_any(const uint8_t* a, int64_t lda, int rows, const int8_t* w, int64_t k4, const TileOut& o) {
  tile_vnni_rows(std::make_integer_sequence<int, kRows>{}, a, lda, rows, w, k4, o);
}
#pragma GCC diagnostic pop
#endif

bool vnni() {
#if defined(__x86_64__)
  static const bool yes = has_avx512() && __builtin_cpu_supports("avx512vnni");
  return yes;
#else
  return false;
#endif
}

// tile_vnni's results from plain loops (CPUs without AVX512-VNNI; the same bits).
void tile_plain_out(const uint8_t* a, int64_t lda, int rows, const int8_t* w, int64_t k4, int64_t nc,
                    const TileOut& o) {
  alignas(64) int32_t acc[kRows][32];
  tile_plain(a, lda, rows, w, k4, acc);
  for (int r = 0; r < rows; ++r) {
    float* y = o.y + r * o.ldy;
    int8_rescale_row(acc[r], row_quant_of(a + r * lda, k4), o.scale, o.sum, nullptr, nc, y);
    if (o.res)
      for (int64_t c = 0; c < nc; ++c) y[c] += o.res[r * o.ldr + c];
  }
}

// op 1: dst row m (quant_row_bytes) = src[0]'s f32 row m quantised; thread ith takes a share of rows.
void quantize_op(ggml_tensor* dst, int ith, int nth, void* wp) {
  const auto& w = *(const Int8Blocked*)wp;
  const ggml_tensor* x = dst->src[0];
  const int64_t M = ggml_nrows(x);
  for (int64_t m = M * ith / nth; m < M * (ith + 1) / nth; ++m) {
    auto* row = (uint8_t*)dst->data + m * dst->nb[1];
    std::memset(row + w.K, 0, (size_t)(w.k4 * 4 - w.K));
    const RowQuant r = quantize_row_u8((const float*)((const char*)x->data + m * x->nb[1]), w.K, row);
    std::memcpy(row + w.k4 * 4, &r, sizeof r);
  }
}

// op 2: dst [N, M] f32 = the products of src[0]'s quantised rows (+ src[1]); thread ith takes a
// share of the block pairs (32 channels each), every row.
void product_op(ggml_tensor* dst, int ith, int nth, void* wp) {
  const auto& w = *(const Int8Blocked*)wp;
  const ggml_tensor* qx = dst->src[0];
  const ggml_tensor* res = dst->src[1];
  const int64_t M = ggml_nrows(qx), lda = (int64_t)qx->nb[1], pairs = w.blocks / 2;
  const bool fast = vnni();
  for (int64_t p = pairs * ith / nth; p < pairs * (ith + 1) / nth; ++p) {
    const int64_t c0 = p * 32, nc = std::min<int64_t>(32, w.N - c0);
    const int8_t* wb = w.q.get() + p * 2 * w.k4 * 64;
    TileOut o;
    o.scale = w.scale.data() + c0;  // both padded to whole blocks (zeros past N)
    o.sum = w.sum.data() + c0;
    o.m0 = first_lanes(nc), o.m1 = first_lanes(nc - 16);
    o.ldy = (int64_t)(dst->nb[1] / sizeof(float));
    o.ldr = res ? (int64_t)(res->nb[1] / sizeof(float)) : 0;
    even_tiles(M, kRows, [&](int64_t m0, int rows) {
      const auto* a = (const uint8_t*)qx->data + m0 * lda;
      o.y = (float*)((char*)dst->data + m0 * dst->nb[1]) + c0;
      o.res = res ? (const float*)((const char*)res->data + m0 * res->nb[1]) + c0 : nullptr;
#if defined(__x86_64__)
      if (fast) return tile_vnni_any(a, lda, rows, wb, w.k4, o);
#endif
      tile_plain_out(a, lda, rows, wb, w.k4, nc, o);
    });
  }
}

}  // namespace

bool int8_blocked_vnni() { return vnni(); }

namespace {

// The blocked layout of N channels of K inputs; rows(n, scratch) gives channel n's K f32 weights
// (a pointer into the source, or scratch [K] filled).
template <class Rows>
Int8Blocked pack_blocked(int64_t K, int64_t N, int threads, const Rows& rows) {
  if (K > 65536) throw std::invalid_argument("int8 weights: rows longer than 65536 values");
  Int8Blocked b;
  b.K = K, b.N = N, b.k4 = (K + 3) / 4, b.blocks = (N + 31) / 32 * 2;
  b.q.reset((int8_t*)alloc_huge(b.bytes()));
  const int64_t channels = b.blocks * kLanes;
  b.scale.assign((size_t)channels, 0.f);
  b.sum.assign((size_t)channels, 0);
  // blocks of 16 channels per thread (each owns whole cache lines of q); every byte written once.
  // Each thread's buffers are allocated here, outside the parallel loop, which must not throw.
  threads = threads > 0 ? threads : available_cpus();
  const size_t row_len = (size_t)(b.k4 * 4 + kInt8Tail);
  std::vector<int8_t> row_buf(row_len * (size_t)threads);
  std::vector<float> scratch_buf((size_t)K * (size_t)threads);
#pragma omp parallel for schedule(static, 1) num_threads(threads)
  for (int64_t blk = 0; blk < b.blocks; ++blk) {
    int8_t* row = row_buf.data() + row_len * (size_t)omp_get_thread_num();
    float* scratch = scratch_buf.data() + (size_t)K * (size_t)omp_get_thread_num();
    int8_t* dst = b.q.get() + blk * b.k4 * 64;
    for (int64_t l = 0; l < kLanes; ++l) {
      const int64_t n = blk * kLanes + l;
      std::fill(row, row + row_len, 0);
      if (n < N) {
        pack_int8_rows(rows(n, scratch), K, 1, row);
        int8_channel_terms(row, K, 1, K + kInt8Tail, &b.scale[(size_t)n], &b.sum[(size_t)n]);
        std::fill(row + K, row + row_len, 0);  // zero inputs past K (over the row's tail)
      }
      for (int64_t g = 0; g < b.k4; ++g) std::memcpy(dst + g * 64 + l * 4, row + g * 4, 4);
    }
  }
  return b;
}

}  // namespace

Int8Blocked pack_int8_blocked(const float* w, int64_t K, int64_t N, int threads) {
  return pack_blocked(K, N, threads, [&](int64_t n, float*) { return w + n * K; });
}

Int8Blocked pack_int8_blocked(const ggml_tensor* w, int threads) {
  const int64_t K = w->ne[0], N = ggml_nrows(w);
  if (w->type != GGML_TYPE_F32 && !ggml_get_type_traits(w->type)->to_float)
    throw std::invalid_argument(std::string("int8 weights: cannot dequantise type ") +
                                ggml_type_name(w->type));
  const char* data = (const char*)w->data;
  return pack_blocked(K, N, threads, [&](int64_t n, float* scratch) {
    const char* src = data + (size_t)n * w->nb[1];
    if (w->type == GGML_TYPE_F32) return (const float*)src;
    to_f32(w->type, src, scratch, K);
    return (const float*)scratch;
  });
}

ggml_tensor* dense_int8_blocked(ggml_context* ctx, const Int8Blocked& w, ggml_tensor* x,
                                ggml_tensor* residual) {
  GGML_ASSERT(x->type == GGML_TYPE_F32 && x->ne[0] == w.K && ggml_is_contiguous_rows(x));
  void* wp = const_cast<Int8Blocked*>(&w);
  const int64_t M = ggml_nrows(x);
  ggml_tensor* xs[1] = {x};
  ggml_tensor* qx = ggml_custom_4d(ctx, GGML_TYPE_I8, quant_row_bytes(w.k4), M, 1, 1, xs, 1, quantize_op,
                                   GGML_N_TASKS_MAX, wp);
  ggml_tensor* args[2] = {qx, residual};
  if (residual)
    GGML_ASSERT(residual->type == GGML_TYPE_F32 && residual->ne[0] == w.N && ggml_nrows(residual) == M);
  return ggml_custom_4d(ctx, GGML_TYPE_F32, w.N, M, 1, 1, args, residual ? 2 : 1, product_op,
                        GGML_N_TASKS_MAX, wp);
}

}  // namespace capforge::nn
