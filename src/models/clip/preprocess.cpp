#include "models/clip/preprocess.h"

#include <vips/vips.h>

#include <cmath>
#include <stdexcept>

#include "capforge/image.h"

namespace capforge::clip {

namespace {

// Resize of an RGB8 image to exactly w x h (libvips, anti-aliased like PIL's BICUBIC / BILINEAR).
Image resize(const Image& img, int w, int h, Interpolation interp) {
  init_vips();
  VipsImage* in =
      vips_image_new_from_memory(img.rgb.data(), img.rgb.size(), img.width, img.height, 3, VIPS_FORMAT_UCHAR);
  VipsImage* out = nullptr;
  if (!in ||
      vips_resize(in, &out, (double)w / img.width, "vscale", (double)h / img.height, "kernel",
                  interp == Interpolation::bilinear ? VIPS_KERNEL_LINEAR : VIPS_KERNEL_CUBIC, nullptr)) {
    if (in) g_object_unref(in);
    vips_error_clear();
    throw std::runtime_error("image resize failed");
  }
  g_object_unref(in);
  size_t size = 0;
  void* mem = vips_image_write_to_memory(out, &size);
  Image r;
  r.width = vips_image_get_width(out);
  r.height = vips_image_get_height(out);
  g_object_unref(out);
  if (!mem) throw std::runtime_error("image resize failed");
  r.rgb.assign((uint8_t*)mem, (uint8_t*)mem + size);
  g_free(mem);
  return r;
}

}  // namespace

void preprocess(const Image& img, const PreprocessConfig& p, std::vector<float>& out) {
  if (img.empty() || img.width <= 0 || img.height <= 0) throw std::runtime_error("empty image");
  const Image* src = &img;
  Image resized;
  if (p.do_resize && p.squash) {
    // SigLIP / open_clip "squash": straight to crop x crop, aspect not kept
    if (img.width != p.crop || img.height != p.crop) {
      resized = resize(img, p.crop, p.crop, p.interpolation);
      src = &resized;
    }
  } else if (p.do_resize) {
    // HF get_resize_output_image_size: the short side becomes `shortest_edge`, the long side
    // int(shortest_edge * long / short).
    int w = img.width, h = img.height;
    int tw = w <= h ? p.shortest_edge : (int)((int64_t)p.shortest_edge * w / h);
    int th = w <= h ? (int)((int64_t)p.shortest_edge * h / w) : p.shortest_edge;
    if (tw != w || th != h) {
      resized = resize(img, tw, th, p.interpolation);
      src = &resized;
    }
  }
  const int S = p.crop;
  // HF center_crop: top = int((h - crop) / 2); images smaller than the crop are padded with 0.
  // torchvision's CenterCrop rounds half to even (Python's round) instead.
  auto offset = [&](int extent) {
    double d = (extent - S) / 2.0;
    return p.round_crop ? (int)std::nearbyint(d) : (int)d;
  };
  int top = offset(src->height), left = offset(src->width);
  if (!p.do_center_crop || p.squash) top = left = 0;
  size_t base = out.size();
  out.resize(base + (size_t)3 * S * S);
  for (int c = 0; c < 3; ++c) {
    float scale = p.do_normalize ? 1.0f / (255.0f * p.std[c]) : 1.0f / 255.0f;
    float shift = p.do_normalize ? p.mean[c] / p.std[c] : 0.0f;
    float* plane = out.data() + base + (size_t)c * S * S;
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x) {
        int sy = y + top, sx = x + left;
        bool inside = sy >= 0 && sy < src->height && sx >= 0 && sx < src->width;
        float v = inside ? src->rgb[((size_t)sy * src->width + sx) * 3 + c] : 0.0f;  // HF pads with 0
        plane[(size_t)y * S + x] = v * scale - shift;
      }
  }
}

}  // namespace capforge::clip
