// img2dataset's resize modes and re-encoding, on libvips.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "capforge/image.h"
#include "image/blur.h"

namespace capforge {

enum class ResizeMode { no, keep_ratio, keep_ratio_largest, center_crop, border };
std::optional<ResizeMode> resize_mode_from_name(const std::string& name);

struct ResizeParams {
  int image_size = 256;
  ResizeMode mode = ResizeMode::keep_ratio;
  bool only_if_bigger = false;  // never enlarge
  int min_image_size = 0;       // refuse images whose smaller side is below this
  double max_aspect_ratio = 0;  // refuse images more elongated than this (0: off)
  std::string format = "jpg";   // jpg, png, webp
  int quality = 95;
  DecodeParams limits;  // max pixels / bytes
};

struct ResizedImage {
  std::string bytes, ext;
  int width = 0, height = 0, original_width = 0, original_height = 0;
  std::string exif;  // JSON object of the EXIF fields libvips read, or empty
};

// Returns "" on success, else a one-line reason (the sample is failed_to_resize).
// - no: the original bytes; keep_ratio: the smaller side becomes image_size; keep_ratio_largest:
//   the larger side; center_crop: the smaller side, then a centred square; border: the larger side,
//   then padded to a black square. EXIF orientation is applied.
// `blur`: boxes (normalised to the oriented original) blurred before cropping, padding and encoding
// (image/blur.h); with any box, mode `no` re-encodes too.
std::string resize_image(std::string_view bytes, const ResizeParams& p, ResizedImage& out,
                         const std::vector<BlurBox>& blur = {});

}  // namespace capforge
