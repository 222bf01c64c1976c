#include "models/nn/panels.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/cpus.h"
#include "models/nn/simd.h"

namespace capforge::nn {

namespace {

constexpr int64_t kPanel = 32;      // channels per panel (two 512-bit registers of f32)
constexpr int kRows = 12;           // input rows per register tile (24 accumulators)
constexpr int64_t kRowBlock = 192;  // rows whose inputs a thread keeps in cache across its panels

// Where a tile's results go: row r at y + r * ldy (the panel's live channels, masks m0 / m1), plus
// res + r * ldr when res is set.
struct TileOut {
  float* y;
  int64_t ldy;
  const float* res;
  int64_t ldr;
  int nc;  // live channels (1..32)
  uint16_t m0, m1;
};

// Value i of a panel of type T, as f32 (exact).
template <ggml_type T>
float value(const void* w, int64_t i) {
  if constexpr (T == GGML_TYPE_F32) return ((const float*)w)[i];
  if constexpr (T == GGML_TYPE_F16) return ggml_fp16_to_fp32(((const ggml_fp16_t*)w)[i]);
  if constexpr (T == GGML_TYPE_BF16) return ggml_bf16_to_fp32(((const ggml_bf16_t*)w)[i]);
}

// The products of `rows` rows a[r] (lda floats apart) with the panel at w, in plain loops: the
// same fused multiply-adds in the same order as tile_avx512.
template <ggml_type T>
void tile_plain(const float* a, int64_t lda, int rows, const void* w, int64_t K, const TileOut& o) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < o.nc; ++c) {
      float s = 0.f;
      for (int64_t k = 0; k < K; ++k) s = std::fma(a[r * lda + k], value<T>(w, k * kPanel + c), s);
      if (o.res) s = s + o.res[r * o.ldr + c];
      o.y[r * o.ldy + c] = s;
    }
}

#if defined(__x86_64__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define CF_AVX512 __attribute__((target("avx512f")))

// Values i..i+15 of a panel of type T (i a multiple of 16: aligned), as f32 (exact).
template <ggml_type T>
CF_AVX512 inline __m512 load16(const void* w, int64_t i) {
  if constexpr (T == GGML_TYPE_F32) return _mm512_load_ps((const float*)w + i);
  const __m256i h = _mm256_load_si256((const __m256i*)((const uint16_t*)w + i));
  if constexpr (T == GGML_TYPE_F16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));  // bf16: the high half
}

template <ggml_type T, int R>
CF_AVX512 void tile_avx512(const float* a, int64_t lda, const void* w, int64_t K, const TileOut& o) {
  __m512 c0[R], c1[R];
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (int64_t k = 0; k < K; ++k) {
    const __m512 x0 = load16<T>(w, k * kPanel), x1 = load16<T>(w, k * kPanel + 16);
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      const __m512 b = _mm512_set1_ps(a[r * lda + k]);
      c0[r] = _mm512_fmadd_ps(b, x0, c0[r]);
      c1[r] = _mm512_fmadd_ps(b, x1, c1[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    __m512 v0 = c0[r], v1 = c1[r];
    if (o.res) {
      const float* rr = o.res + r * o.ldr;
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(o.m0, rr));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(o.m1, rr + 16));
    }
    float* y = o.y + r * o.ldy;
    _mm512_mask_storeu_ps(y, o.m0, v0);
    _mm512_mask_storeu_ps(y + 16, o.m1, v1);
  }
}

template <ggml_type T, int... Rs>
void tile_avx512_rows(std::integer_sequence<int, Rs...>, const float* a, int64_t lda, int rows, const void* w,
                      int64_t K, const TileOut& o) {
  (void)((rows == Rs + 1 ? (tile_avx512<T, Rs + 1>(a, lda, w, K, o), true) : false) || ...);
}
#pragma GCC diagnostic pop
#endif

// One tile of `rows` (1..kRows) rows.
template <ggml_type T>
void tile(const float* a, int64_t lda, int rows, const void* w, int64_t K, const TileOut& o) {
#if defined(__x86_64__)
  if (has_avx512()) {
    tile_avx512_rows<T>(std::make_integer_sequence<int, kRows>{}, a, lda, rows, w, K, o);
    return;
  }
#endif
  tile_plain<T>(a, lda, rows, w, K, o);
}

// dst [N, M] f32 = w src[0] (+ src[1]); thread ith takes a share of the panels, every row.
template <ggml_type T>
void product(ggml_tensor* dst, int ith, int nth, const Panels& w) {
  const ggml_tensor* x = dst->src[0];
  const ggml_tensor* res = dst->src[1];
  const int64_t M = ggml_nrows(x), lda = (int64_t)(x->nb[1] / sizeof(float));
  const size_t panel_bytes = (size_t)(w.K * kPanel) * ggml_type_size(w.type);
  // Work items: a block of rows through one panel, taken in order (block-major) in an even share
  // per thread, so a thread runs each row block through a run of panels while the block's inputs
  // are in cache (an encoder's 2048 rows of 3072 are 25 MB). Blocks are of up to kRowBlock rows,
  // fewer when there are too few panels to give every thread two items (16 threads on a
  // 768-channel matrix); never fewer than a tile's kRows.
  const int64_t want = std::max<int64_t>(1, (2 * nth + w.panels - 1) / std::max<int64_t>(1, w.panels));
  const int64_t block = std::clamp<int64_t>((M + want - 1) / want, kRows, kRowBlock);
  const int64_t blocks = (M + block - 1) / block, items = blocks * w.panels;
  for (int64_t it = items * ith / nth; it < items * (ith + 1) / nth; ++it) {
    const int64_t b0 = it / w.panels * block, p = it % w.panels;
    const int64_t rows_b = std::min(block, M - b0), c0 = p * kPanel;
    TileOut o;
    o.nc = (int)std::min<int64_t>(kPanel, w.N - c0);
    o.m0 = first_lanes(o.nc), o.m1 = first_lanes(o.nc - 16);
    o.ldy = (int64_t)(dst->nb[1] / sizeof(float));
    o.ldr = res ? (int64_t)(res->nb[1] / sizeof(float)) : 0;
    const void* wb = (const char*)w.w.get() + (size_t)p * panel_bytes;
    even_tiles(rows_b, kRows, [&](int64_t t0, int rows) {  // 18 rows: 9 + 9, not 12 + 6
      const int64_t m0 = b0 + t0;
      o.y = (float*)((char*)dst->data + m0 * dst->nb[1]) + c0;
      o.res = res ? (const float*)((const char*)res->data + m0 * res->nb[1]) + c0 : nullptr;
      tile<T>((const float*)x->data + m0 * lda, lda, rows, wb, w.K, o);
    });
  }
}

void product_op(ggml_tensor* dst, int ith, int nth, void* wp) {
  const auto& w = *(const Panels*)wp;
  switch (w.type) {
    case GGML_TYPE_F16:
      return product<GGML_TYPE_F16>(dst, ith, nth, w);
    case GGML_TYPE_BF16:
      return product<GGML_TYPE_BF16>(dst, ith, nth, w);
    default:
      return product<GGML_TYPE_F32>(dst, ith, nth, w);
  }
}

// b's panels from w's rows, values of E's size copied as they are (each of `threads` threads owns
// whole panels, every value written once).
template <class E>
void fill_panels(const ggml_tensor* w, Panels& b, int threads) {
  const int64_t K = b.K, N = b.N;
  const char* data = (const char*)w->data;
  const size_t nb1 = w->nb[1];
  E* out = (E*)b.w.get();
  const std::vector<E> zeros((size_t)K, E(0));  // the channels past N
#pragma omp parallel for schedule(static, 1) num_threads(threads)
  for (int64_t p = 0; p < b.panels; ++p) {
    const E* src[kPanel];
    for (int64_t c = 0; c < kPanel; ++c) {
      const int64_t n = p * kPanel + c;
      src[c] = n < N ? (const E*)(data + (size_t)n * nb1) : zeros.data();
    }
    // written in order; the 32 rows are read a value at a time, their current lines in L1
    E* dst = out + p * K * kPanel;
    for (int64_t k = 0; k < K; ++k, dst += kPanel)
      for (int64_t c = 0; c < kPanel; ++c) dst[c] = src[c][k];
  }
}

}  // namespace

bool panels_take(ggml_type type) {
  return type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16;
}

bool panels_pay() {
  static const bool yes = [] {
    const char* env = std::getenv("CAPFORGE_PANELS");
    return has_avx512() && !(env && std::strcmp(env, "0") == 0);
  }();
  return yes;
}

Panels pack_panels(const ggml_tensor* w, int threads) {
  if (!panels_take(w->type))
    throw std::invalid_argument(std::string("weight panels: weights of type ") + ggml_type_name(w->type));
  if (w->nb[0] != ggml_type_size(w->type) || !w->data || w->ne[2] != 1 || w->ne[3] != 1)
    throw std::invalid_argument("weight panels: a 2-D matrix with contiguous rows in host memory");
  Panels b;
  b.type = w->type, b.K = w->ne[0], b.N = ggml_nrows(w), b.panels = (b.N + kPanel - 1) / kPanel;
  b.w.reset(alloc_huge(b.bytes()));
  threads = threads > 0 ? threads : available_cpus();
  if (ggml_type_size(b.type) == 4)
    fill_panels<uint32_t>(w, b, threads);
  else
    fill_panels<uint16_t>(w, b, threads);
  return b;
}

ggml_tensor* dense_panels(ggml_context* ctx, const Panels& w, ggml_tensor* x, ggml_tensor* residual) {
  GGML_ASSERT(x->type == GGML_TYPE_F32 && x->ne[0] == w.K && ggml_is_contiguous(x));
  const int64_t M = ggml_nrows(x);
  if (residual)
    GGML_ASSERT(residual->type == GGML_TYPE_F32 && residual->ne[0] == w.N && ggml_nrows(residual) == M &&
                ggml_is_contiguous(residual));
  ggml_tensor* args[2] = {x, residual};
  return ggml_custom_4d(ctx, GGML_TYPE_F32, w.N, M, 1, 1, args, residual ? 2 : 1, product_op,
                        GGML_N_TASKS_MAX, const_cast<Panels*>(&w));
}

}  // namespace capforge::nn
