// Face blurring at download (DataComp's step, as img2dataset's --bbox_col does it): boxes given per
// image, normalised to its size, blurred with a Gaussian before the image is encoded.
#pragma once

#include <string>
#include <vector>

#include "capforge/sample.h"

typedef struct _VipsImage VipsImage;

namespace capforge {

// A box in coordinates normalised to the image (0..1), as DataComp's face_bboxes hold them:
// [x0, y0, x1, y1], left/top to right/bottom, of the original (EXIF-oriented) image.
struct BlurBox {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};

// At most this many boxes per image: more fail the sample ("too many boxes (N > 256)"), so a hostile
// list cannot make one image cost minutes (each box is one bounded blur).
inline constexpr size_t kMaxBlurBoxes = 256;

// Parses a bbox column's value: a list of [x0, y0, x1, y1] lists, as a JSON array or its JSON text
// (a parquet list column arrives as the former, a CSV/JSONL string as the latter). null, "" and []
// are no boxes. Coordinates are clamped to [-1, 2] and otherwise kept (a box partly outside the image
// grows by its full size); a box with no area inside the image is dropped. Returns ""
// or why the value is malformed (not a list, a box without exactly 4 finite numbers, x1 < x0 or
// y1 < y0, more than kMaxBlurBoxes entries): the caller must not write the image unblurred.
std::string parse_blur_boxes(const Json& value, std::vector<BlurBox>& out);

// Blurs each box of `in` (any size: boxes are normalised) like img2dataset's BoundingBoxBlurrer: the
// box, rounded outwards to whole pixels, is grown by ceil(10% of its longer side L) pixels on every
// side (then clamped to the image), and the grown box's pixels are replaced by a Gaussian blur of
// sigma max(1, 0.1 L) read from the grown box and 3 sigma around it. Hard edges (img2dataset feathers
// a blurred mask, which also changes pixels just outside): pixels outside every grown box are
// unchanged. Sigmas above 16 are applied on the area shrunk by k = ceil(sigma / 16) and enlarged
// back, so a box's cost is bounded by its area, not its sigma. Every box is blurred from the original
// pixels; where grown boxes overlap, the later box's blur stands. `in` must be 8-bit; more than
// kMaxBlurBoxes boxes fail. Returns 0 and a new reference in *out, or -1 (libvips' error buffer says
// why). No boxes: *out is a new reference to `in`.
int blur_boxes(VipsImage* in, const std::vector<BlurBox>& boxes, VipsImage** out);

}  // namespace capforge
