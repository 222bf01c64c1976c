// AVX-512 helpers for the CPU kernels (attention, layer norm, the product op's epilogue, int8):
// the one check that picks their AVX-512 code, exp over 16 floats (Cephes' expf polynomial on
// the reduced argument, within 2 ulp) and over 8 doubles (a log-sum-exp's terms). NaN in, NaN out. Callers
// compile the vector code in functions that target avx512f (and the extensions they use).
#pragma once

#include <cstdint>

namespace capforge::nn {

// The mask of the first n of 16 lanes (n <= 0: none; n >= 16: all), for masked loads and stores.
constexpr uint16_t first_lanes(int64_t n) {
  return n >= 16 ? 0xffff : n <= 0 ? 0 : (uint16_t)((1u << n) - 1);
}

// Calls tile(row0, rows) for the fewest register tiles of at most max_rows rows that cover rows
// [0, M), in order, of sizes as even as can be (18 rows at 8: 6 + 6 + 6, not 8 + 8 + 2).
template <class F>
void even_tiles(int64_t M, int max_rows, F&& tile) {
  const int64_t tiles = (M + max_rows - 1) / max_rows;
  for (int64_t t = 0, row0 = 0; t < tiles; ++t) {
    const int rows = (int)(M * (t + 1) / tiles - row0);
    tile(row0, rows);
    row0 += rows;
  }
}

}  // namespace capforge::nn

#if defined(__x86_64__)
#include <immintrin.h>

namespace capforge::nn {

// Whether the CPU has the AVX-512 subsets the kernels use (F, BW, VL, DQ: every AVX-512 CPU since
// Skylake-X); checked once.
inline bool has_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return yes;
}

// exp(x); exactly 0 below -87.3 (and for -inf), +inf above ~88.7.
__attribute__((target("avx512f"))) inline __m512 exp_avx512(__m512 x) {
  const __mmask16 tiny = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_LT_OQ);
  // the bound first: max/min give their second operand when either is NaN, so NaN stays NaN
  x = _mm512_max_ps(_mm512_set1_ps(-87.3f), x);
  x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_maskz_mov_ps((__mmask16)~tiny, _mm512_scalef_ps(y, n));
}

// exp(x) in double, within ~1 ulp (a degree-13 Taylor polynomial on the reduced argument,
// |r| <= ln2/2); exactly 0 below -708 (and for -inf), +inf above ~709.7.
__attribute__((target("avx512f"))) inline __m512d exp_pd_avx512(__m512d x) {
  const __mmask8 tiny = _mm512_cmp_pd_mask(x, _mm512_set1_pd(-708.0), _CMP_LT_OQ);
  x = _mm512_max_pd(_mm512_set1_pd(-708.0), x);  // NaN stays NaN (as above)
  x = _mm512_min_pd(_mm512_set1_pd(710.0), x);
  const __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(6.93147180369123816490e-01), x);
  r = _mm512_fnmadd_pd(n, _mm512_set1_pd(1.90821492927058770002e-10), r);
  // 1/k! for k = 13 .. 1
  static constexpr double kInvFact[] = {1.6059043836821613e-10,
                                        2.08767569878681e-09,
                                        2.505210838544172e-08,
                                        2.755731922398589e-07,
                                        2.755731922398589e-06,
                                        2.48015873015873e-05,
                                        1.984126984126984e-04,
                                        1.388888888888889e-03,
                                        8.333333333333333e-03,
                                        4.166666666666666e-02,
                                        1.666666666666667e-01,
                                        0.5,
                                        1.0};
  __m512d p = _mm512_set1_pd(kInvFact[0]);
  for (int k = 1; k < 13; ++k) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(kInvFact[k]));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
  return _mm512_maskz_mov_pd((__mmask8)~tiny, _mm512_scalef_pd(p, n));
}

}  // namespace capforge::nn
#endif  // __x86_64__

#if !defined(__x86_64__)
namespace capforge::nn {
// No AVX-512 code is compiled off x86: callers take their plain loops.
inline bool has_avx512() { return false; }
}  // namespace capforge::nn
#endif
