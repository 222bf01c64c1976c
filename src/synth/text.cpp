#include "synth/text.h"

#include <vips/vips8>

#include <algorithm>
#include <stdexcept>

#include "capforge/image.h"

namespace capforge::synth {

void draw_word(Image& img, const std::string& word, const std::array<uint8_t, 3>& colour) {
  init_vips();
  const int box_w = std::max(8, img.width * 7 / 10), box_h = std::max(6, img.height / 5);
  vips::VImage mask;
  try {
    mask = vips::VImage::text(word.c_str(), vips::VImage::option()
                                                ->set("font", "DejaVu Sans Bold")
                                                ->set("width", box_w)
                                                ->set("height", box_h)
                                                ->set("align", VIPS_ALIGN_CENTRE));
  } catch (const vips::VError& e) {
    throw std::runtime_error(std::string("cannot draw text: ") + e.what());
  }
  if (mask.bands() != 1) mask = mask.extract_band(0);
  mask = mask.cast(VIPS_FORMAT_UCHAR);
  size_t n = 0;
  const uint8_t* a = static_cast<const uint8_t*>(mask.write_to_memory(&n));
  const int w = mask.width(), h = mask.height();
  const int x0 = (img.width - w) / 2, y0 = img.height - box_h + (box_h - h) / 2 - 1;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      int px = x0 + x, py = y0 + y;
      if (px < 0 || py < 0 || px >= img.width || py >= img.height) continue;
      int alpha = a[(size_t)y * w + x];
      uint8_t* p = &img.rgb[((size_t)py * img.width + px) * 3];
      for (int c = 0; c < 3; ++c) p[c] = (uint8_t)((p[c] * (255 - alpha) + colour[c] * alpha + 127) / 255);
    }
  g_free(const_cast<uint8_t*>(a));
}

}  // namespace capforge::synth
