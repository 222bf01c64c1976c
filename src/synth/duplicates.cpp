#include "synth/duplicates.h"

#include <algorithm>
#include <random>
#include <stdexcept>

#include "capforge/image.h"
#include "image/resize.h"

namespace capforge::synth {

const char* dup_kind_name(DupKind k) {
  switch (k) {
    case DupKind::exact:
      return "exact";
    case DupKind::reencode:
      return "reencode";
    case DupKind::resize:
      return "resize";
    case DupKind::flip:
      return "flip";
  }
  return "?";
}

DupKind dup_kind(int d) { return static_cast<DupKind>(d % 4); }

Scene mirror(const Scene& s) {
  Scene m = s;
  for (auto& sh : m.shapes) sh.x = 300 - sh.x;     // scene units: a 300 x 300 square
  std::reverse(m.shapes.begin(), m.shapes.end());  // still left to right
  if (auto p = m.where.find("left"); p != std::string::npos)
    m.where.replace(p, 4, "right");
  else if (p = m.where.find("right"); p != std::string::npos)
    m.where.replace(p, 5, "left");
  m.caption = scene_caption(m);
  return m;
}

bool clearly_asymmetric(const Scene& s) {
  const int size = 32;
  Image a = render(s, size), b = render(mirror(s), size);
  size_t changed = 0;
  for (size_t i = 0; i < a.rgb.size(); i += 3)
    changed += a.rgb[i] != b.rgb[i] || a.rgb[i + 1] != b.rgb[i + 1] || a.rgb[i + 2] != b.rgb[i + 2];
  return changed * 10 >= (size_t)size * size;
}

std::vector<int> pick_originals(int count, int n, uint64_t seed, const std::function<Scene(int)>& scene_of) {
  std::vector<int> order((size_t)count);
  for (int i = 0; i < count; ++i) order[(size_t)i] = i;
  std::mt19937_64 rng(seed ^ 0xd1b54a32d192ed03ull);
  // Fisher-Yates with our own index draws: std::shuffle's algorithm is the library's choice
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  std::vector<int> out;
  out.reserve((size_t)n);
  for (int d = 0; d < n; ++d) {
    size_t at = (size_t)d % order.size();
    if (dup_kind(d) == DupKind::flip) {
      // bring the next clearly asymmetric scene (from `at` on, wrapping) to `at`
      for (size_t j = 0; j < order.size(); ++j) {
        size_t c = (at + j) % order.size();
        if (clearly_asymmetric(scene_of(order[c]))) {
          std::swap(order[at], order[c]);
          break;
        }
      }
    }
    out.push_back(order[at]);
  }
  return out;
}

std::string make_duplicate(DupKind k, const Scene& scene, const std::string& original_jpeg, int size,
                           int quality) {
  switch (k) {
    case DupKind::exact:
      return original_jpeg;
    case DupKind::reencode: {
      DecodedImage d;
      if (auto err = decode_image(original_jpeg, {}, d); !err.empty())
        throw std::runtime_error("cannot decode a synthetic image: " + err);
      return encode_jpeg(d.pixels, quality > 75 ? 60 : 90);
    }
    case DupKind::resize: {
      ResizeParams p;
      p.image_size = std::max(8, size * 3 / 4);
      p.mode = ResizeMode::keep_ratio;
      p.format = "jpg";
      p.quality = quality;
      ResizedImage r;
      if (auto err = resize_image(original_jpeg, p, r); !err.empty())
        throw std::runtime_error("cannot resize a synthetic image: " + err);
      return r.bytes;
    }
    case DupKind::flip:
      return encode_jpeg(render(mirror(scene), size), quality);
  }
  return original_jpeg;
}

}  // namespace capforge::synth
