#include "image/blur.h"

#include <vips/vips.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

namespace capforge {

std::string parse_blur_boxes(const Json& value, std::vector<BlurBox>& out) {
  out.clear();
  Json v = value;
  if (v.is_string()) {
    const std::string& text = v.get_ref<const std::string&>();
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) return "";
    v = Json::parse(text, nullptr, false);
    if (v.is_discarded()) return "not a JSON list of [x0, y0, x1, y1] boxes";
  }
  if (v.is_null()) return "";
  if (!v.is_array()) return "not a list of [x0, y0, x1, y1] boxes";
  if (v.size() > kMaxBlurBoxes) return fmt::format("too many boxes ({} > {})", v.size(), kMaxBlurBoxes);
  for (size_t i = 0; i < v.size(); ++i) {
    const Json& b = v[i];
    if (!b.is_array() || b.size() != 4) return fmt::format("box {} is not a list of 4 numbers", i);
    double c[4];
    for (size_t k = 0; k < 4; ++k) {
      if (!b[k].is_number()) return fmt::format("box {} is not a list of 4 numbers", i);
      c[k] = b[k].get<double>();
      if (!std::isfinite(c[k])) return fmt::format("box {} has a value that is not finite", i);
    }
    if (c[2] < c[0] || c[3] < c[1]) return fmt::format("box {} has x1 < x0 or y1 < y0", i);
    for (double& x : c) x = std::clamp(x, -1.0, 2.0);  // at most an image's size outside it
    // kept as given (its growth uses its full size) unless it has no area inside the image
    if (std::min(c[2], 1.0) > std::max(c[0], 0.0) && std::min(c[3], 1.0) > std::max(c[1], 0.0))
      out.push_back({c[0], c[1], c[2], c[3]});
  }
  return "";
}

namespace {
struct Unref {
  void operator()(VipsImage* i) const {
    if (i) g_object_unref(i);
  }
};
using VipsPtr = std::unique_ptr<VipsImage, Unref>;

struct PixelRect {
  int left, top, width, height;
};

// The blurred pixels of `inner` (a rectangle inside `area`, both in image pixels), from `src`:
// `area` is the rectangle's surroundings the blur reads. Big sigmas are bounded in cost: the area is
// shrunk by k = ceil(sigma / 16), blurred at sigma / k and enlarged back, so a blur never needs a
// kernel wider than ~100 pixels. Returns the pixels packed row by row, or empty (vips' error buffer).
std::vector<uint8_t> blurred_pixels(VipsImage* src, const PixelRect& area, const PixelRect& inner,
                                    double sigma) {
  VipsImage* t = nullptr;
  if (vips_extract_area(src, &t, area.left, area.top, area.width, area.height, nullptr)) return {};
  VipsPtr cur(t);
  auto step = [&](int rc) {
    if (rc) return false;
    cur.reset(t);
    return true;
  };
  const int k = std::max(1, (int)std::ceil(sigma / 16));
  if (k > 1) {
    const int hs = std::min(k, area.width), vs = std::min(k, area.height);
    if (!step(vips_shrink(cur.get(), &t, (double)hs, (double)vs, nullptr))) return {};
    if (!step(vips_gaussblur(cur.get(), &t, std::max(0.5, sigma / k), nullptr))) return {};
    const int sw = vips_image_get_width(cur.get()), sh = vips_image_get_height(cur.get());
    if (!step(
            vips_resize(cur.get(), &t, (double)area.width / sw, "vscale", (double)area.height / sh, nullptr)))
      return {};
    // rounding may leave the enlarged area a pixel short or long: back to its exact size
    if (!step(vips_embed(cur.get(), &t, 0, 0, area.width, area.height, "extend", VIPS_EXTEND_COPY, nullptr)))
      return {};
  } else if (!step(vips_gaussblur(cur.get(), &t, sigma, nullptr))) {
    return {};
  }
  if (!step(vips_cast(cur.get(), &t, VIPS_FORMAT_UCHAR, nullptr))) return {};  // clips overshoot
  if (!step(vips_extract_area(cur.get(), &t, inner.left - area.left, inner.top - area.top, inner.width,
                              inner.height, nullptr)))
    return {};
  size_t len = 0;
  void* mem = vips_image_write_to_memory(cur.get(), &len);
  if (!mem) return {};
  std::vector<uint8_t> out((uint8_t*)mem, (uint8_t*)mem + len);
  g_free(mem);
  return out;
}
}  // namespace

int blur_boxes(VipsImage* in, const std::vector<BlurBox>& boxes, VipsImage** out) {
  if (boxes.size() > kMaxBlurBoxes) {
    vips_error("blur", "too many boxes (%zu > %zu)", boxes.size(), kMaxBlurBoxes);
    return -1;
  }
  const int W = vips_image_get_width(in), H = vips_image_get_height(in);
  struct Job {
    PixelRect grown;
    double sigma;
  };
  std::vector<Job> jobs;
  for (auto& b : boxes) {
    // whole pixels the box touches, grown like img2dataset by 10% of its longer side on every side,
    // before clamping to the image (a box partly outside grows by its full size)
    double l = std::floor(b.x0 * W), t = std::floor(b.y0 * H), r = std::ceil(b.x1 * W),
           d = std::ceil(b.y1 * H);
    const double side = std::max(r - l, d - t), grow = std::ceil(0.1 * side);
    const int gl = (int)std::clamp(l - grow, 0.0, (double)W), gt = (int)std::clamp(t - grow, 0.0, (double)H);
    const int gr = (int)std::clamp(r + grow, 0.0, (double)W), gd = (int)std::clamp(d + grow, 0.0, (double)H);
    if (gr <= gl || gd <= gt || side <= 0) continue;
    jobs.push_back({{gl, gt, gr - gl, gd - gt}, std::max(1.0, 0.1 * side)});
  }
  if (jobs.empty()) {
    g_object_ref(in);
    *out = in;
    return 0;
  }
  if (vips_image_get_format(in) != VIPS_FORMAT_UCHAR) {
    vips_error("blur", "%s", "boxes are blurred on 8-bit images only");
    return -1;
  }
  // in memory once: the boxes read their surroundings out of order (a sequential decoder could not);
  // `dst` is a second copy the boxes' pixels are written into, so every box reads the original pixels
  VipsPtr src(vips_image_copy_memory(in));
  if (!src) return -1;
  VipsPtr dst(vips_image_new_memory());
  if (vips_image_write(src.get(), dst.get())) return -1;
  const size_t bands = (size_t)vips_image_get_bands(dst.get());
  for (const Job& j : jobs) {
    const int margin = (int)std::ceil(3 * j.sigma);
    PixelRect area;
    area.left = std::max(0, j.grown.left - margin), area.top = std::max(0, j.grown.top - margin);
    area.width = std::min(W, j.grown.left + j.grown.width + margin) - area.left;
    area.height = std::min(H, j.grown.top + j.grown.height + margin) - area.top;
    std::vector<uint8_t> px = blurred_pixels(src.get(), area, j.grown, j.sigma);
    const size_t row = (size_t)j.grown.width * bands;
    if (px.size() != row * (size_t)j.grown.height) {
      vips_error("blur", "%s", "blurring a box failed");
      return -1;
    }
    for (int y = 0; y < j.grown.height; ++y)
      std::memcpy(VIPS_IMAGE_ADDR(dst.get(), j.grown.left, j.grown.top + y), px.data() + row * (size_t)y,
                  row);
  }
  *out = dst.release();
  return 0;
}

}  // namespace capforge
