// A smooth, distinct test picture for the dedup tests: coloured Gaussian blobs on a gradient.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "capforge/sample.h"

namespace capforge::test {

inline Image blob_image(int w, int h, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  Image img;
  img.width = w;
  img.height = h;
  img.rgb.resize((size_t)w * h * 3);
  double g[3][3];
  for (auto& c : g)
    for (auto& v : c) v = u(rng) * 255;
  struct Blob {
    double x, y, r, c[3];
  };
  std::vector<Blob> blobs(6);
  for (auto& b : blobs)
    b = {u(rng), u(rng), 0.05 + 0.2 * u(rng), {u(rng) * 510 - 255, u(rng) * 510 - 255, u(rng) * 510 - 255}};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      double fx = (double)x / w, fy = (double)y / h;
      for (int c = 0; c < 3; ++c) {
        double v = g[c][0] + (g[c][1] - g[c][0]) * fx + (g[c][2] - g[c][0]) * fy * 0.5;
        for (auto& b : blobs) {
          double d2 = (fx - b.x) * (fx - b.x) + (fy - b.y) * (fy - b.y);
          v += b.c[c] * std::exp(-d2 / (2 * b.r * b.r));
        }
        img.rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)std::clamp(v, 0.0, 255.0);
      }
    }
  return img;
}

}  // namespace capforge::test
