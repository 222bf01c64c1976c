// 64-bit DCT perceptual hash (pHash) in the style of phash.org's: grayscale, 32x32, 2-D DCT-II, the
// 8x8 low-frequency block without the DC row and column, one bit per coefficient above the median.
// Not bit-compatible with phash.org (no 7x7 mean filter) or imagehash (which keeps the DC term).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "capforge/sample.h"

namespace capforge::curate {

inline constexpr int kPhashSide = 32;  // the grayscale thumbnail is kPhashSide x kPhashSide
using Gray32 = std::array<double, kPhashSide * kPhashSide>;

// The thumbnail pHash reads: luma (ITU-R 601: 0.299 R + 0.587 G + 0.114 B) of `rgb`, resized to
// 32x32 by libvips (vips_resize, its default Lanczos-3 kernel, aspect not kept). Row-major, 0..255.
// Returns "" or why not.
std::string gray32(const Image& rgb, Gray32& out);

// The hash of a thumbnail. Coefficients C[u][v] of the orthonormal 2-D DCT-II for u, v in 1..8
// (row-major, u the vertical frequency) set bit 63 - ((u-1)*8 + (v-1)) when C[u][v] > the median
// of the 64 (numpy's median: the mean of the two middle values).
uint64_t phash_from_gray32(const Gray32& px);

// Decodes `bytes` through capforge's decoder (decode_image: only the supported raster types reach
// libvips, shrink-on-load to a 64-pixel short edge), then gray32 and phash_from_gray32.
// Returns "" or why not (the decoder's reason for a bad image).
std::string phash_image(std::string_view bytes, uint64_t& hash);

inline int hamming(uint64_t a, uint64_t b) { return __builtin_popcountll(a ^ b); }

}  // namespace capforge::curate
