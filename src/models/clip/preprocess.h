// CLIPImageProcessor / open_clip / SiglipImageProcessor: resize (the shortest edge then a center
// crop, or straight to the square), bicubic or bilinear, then normalise.
#pragma once

#include <vector>

#include "capforge/sample.h"
#include "models/clip/config.h"

namespace capforge::clip {

// Appends the planar (channel, row, column) normalised floats of `img` to `out`: exactly
// crop x crop x 3 values. Throws on an empty image.
void preprocess(const Image& img, const PreprocessConfig& p, std::vector<float>& out);

}  // namespace capforge::clip
