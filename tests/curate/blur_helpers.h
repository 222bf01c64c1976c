// Shared by the face-blur tests: decoding written images to RGB and comparing them region by region.
#pragma once

#include <gtest/gtest.h>

#include <vips/vips.h>

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "capforge/image.h"

namespace capforge::test {

// Decodes an encoded image to RGB pixels (all of them, no shrinking).
inline Image decode_rgb(const std::string& bytes) {
  init_vips();
  VipsImage* im = vips_image_new_from_buffer(bytes.data(), bytes.size(), "", nullptr);
  if (!im) throw std::runtime_error(vips_error_buffer());
  Image out;
  out.width = vips_image_get_width(im), out.height = vips_image_get_height(im);
  EXPECT_EQ(vips_image_get_bands(im), 3);
  size_t len = 0;
  void* mem = vips_image_write_to_memory(im, &len);
  g_object_unref(im);
  out.rgb.assign((uint8_t*)mem, (uint8_t*)mem + len);
  g_free(mem);
  return out;
}

struct Rect {
  int l, t, r, b;  // [l, r) x [t, b)
  bool has(int x, int y) const { return x >= l && x < r && y >= t && y < b; }
};

// Over pixels inside any of `in`: mean absolute difference; outside: the number of pixels that differ.
struct Diff {
  double inside_mean = 0;
  int64_t outside_changed = 0, inside = 0;
};
inline Diff compare(const Image& a, const Image& b, const std::vector<Rect>& in) {
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  Diff d;
  if (a.width != b.width || a.height != b.height) return d;
  double sum = 0;
  for (int y = 0; y < a.height; ++y)
    for (int x = 0; x < a.width; ++x) {
      bool inside = false;
      for (auto& r : in) inside |= r.has(x, y);
      size_t i = ((size_t)y * a.width + x) * 3;
      int delta = 0;
      for (int c = 0; c < 3; ++c) delta += std::abs((int)a.rgb[i + c] - (int)b.rgb[i + c]);
      if (inside)
        sum += delta / 3.0, d.inside++;
      else
        d.outside_changed += delta != 0;
    }
  d.inside_mean = d.inside ? sum / d.inside : 0;
  return d;
}

}  // namespace capforge::test
