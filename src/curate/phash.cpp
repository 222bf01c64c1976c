#include "curate/phash.h"

#include <vips/vips.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "capforge/image.h"

namespace capforge::curate {

namespace {
struct Unref {
  void operator()(VipsImage* im) const {
    if (im) g_object_unref(im);
  }
};
using VipsPtr = std::unique_ptr<VipsImage, Unref>;

std::string vips_message() {
  char* buf = vips_error_buffer_copy();
  std::string msg = buf ? buf : "";
  g_free(buf);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg.empty() ? "unknown libvips error" : msg;
}

// The orthonormal DCT-II basis: B[k][n] = s(k) cos(pi (2n + 1) k / 2N), s(0) = sqrt(1/N), else sqrt(2/N).
const std::vector<double>& dct_basis() {
  static const std::vector<double> basis = [] {
    const int n = kPhashSide;
    std::vector<double> b(n * n);
    for (int k = 0; k < n; ++k)
      for (int i = 0; i < n; ++i)
        b[k * n + i] = std::sqrt((k == 0 ? 1.0 : 2.0) / n) * std::cos(M_PI * (2 * i + 1) * k / (2.0 * n));
    return b;
  }();
  return basis;
}
}  // namespace

std::string gray32(const Image& rgb, Gray32& out) {
  if (rgb.empty() || rgb.width <= 0 || rgb.height <= 0) return "empty image";
  init_vips();
  std::vector<float> luma((size_t)rgb.width * rgb.height);
  for (size_t i = 0; i < luma.size(); ++i)
    luma[i] = 0.299f * rgb.rgb[3 * i] + 0.587f * rgb.rgb[3 * i + 1] + 0.114f * rgb.rgb[3 * i + 2];
  VipsPtr im(vips_image_new_from_memory(luma.data(), luma.size() * sizeof(float), rgb.width, rgb.height, 1,
                                        VIPS_FORMAT_FLOAT));
  if (!im) return "cannot wrap pixels: " + vips_message();
  VipsImage* raw = nullptr;
  if (vips_resize(im.get(), &raw, (double)kPhashSide / rgb.width, "vscale", (double)kPhashSide / rgb.height,
                  nullptr))
    return "resize failed: " + vips_message();
  VipsPtr small(raw);
  size_t size = 0;
  void* mem = vips_image_write_to_memory(small.get(), &size);
  if (!mem) return "resize failed: " + vips_message();
  std::unique_ptr<void, decltype(&g_free)> hold(mem, &g_free);
  if (vips_image_get_width(small.get()) != kPhashSide || vips_image_get_height(small.get()) != kPhashSide ||
      size != sizeof(float) * kPhashSide * kPhashSide)
    return "resize gave an unexpected size";
  const float* f = static_cast<const float*>(mem);
  for (int i = 0; i < kPhashSide * kPhashSide; ++i) out[i] = f[i];
  return "";
}

uint64_t phash_from_gray32(const Gray32& px) {
  const int n = kPhashSide;
  const auto& b = dct_basis();
  // Only rows/columns 0..8 of the DCT are needed: C = B[0..8] * X * B[0..8]^T.
  double tmp[9][kPhashSide];  // tmp[u][j] = sum_i B[u][i] X[i][j]
  for (int u = 0; u < 9; ++u)
    for (int j = 0; j < n; ++j) {
      double s = 0;
      for (int i = 0; i < n; ++i) s += b[u * n + i] * px[i * n + j];
      tmp[u][j] = s;
    }
  std::array<double, 64> c{};
  for (int u = 1; u <= 8; ++u)
    for (int v = 1; v <= 8; ++v) {
      double s = 0;
      for (int j = 0; j < n; ++j) s += tmp[u][j] * b[v * n + j];
      c[(u - 1) * 8 + (v - 1)] = s;
    }
  std::array<double, 64> sorted = c;
  std::sort(sorted.begin(), sorted.end());
  const double median = (sorted[31] + sorted[32]) / 2;
  uint64_t h = 0;
  for (int i = 0; i < 64; ++i)
    if (c[i] > median) h |= uint64_t(1) << (63 - i);
  return h;
}

std::string phash_image(std::string_view bytes, uint64_t& hash) {
  DecodeParams dp;
  dp.short_edge = 64;
  DecodedImage img;
  if (std::string err = decode_image(bytes, dp, img); !err.empty()) return err;
  Gray32 g;
  if (std::string err = gray32(img.pixels, g); !err.empty()) return err;
  hash = phash_from_gray32(g);
  return "";
}

}  // namespace capforge::curate
