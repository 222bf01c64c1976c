// Image decoding with libvips: shrink-on-load, EXIF orientation, 8-bit sRGB out.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "capforge/sample.h"

namespace capforge {

struct DecodeParams {
  // Shortest edge to shrink to (never enlarged). 0 keeps the full size.
  int short_edge = 0;
  // Decompression-bomb guard: images with more pixels than this are refused from the header.
  int64_t max_pixels = 178956970;  // PIL's error threshold (2 x MAX_IMAGE_PIXELS)
  // Encoded images larger than this are refused without decoding.
  size_t max_bytes = 64u << 20;
  // Only read the header (size, format); pixels stay empty.
  bool header_only = false;
};

struct DecodedImage {
  Image pixels;            // RGB8; empty when header_only
  int original_width = 0;  // after EXIF orientation
  int original_height = 0;
  std::string format;  // loader's format: "jpeg", "png", ...
};

// Decodes `bytes`. Returns an empty string on success, else a one-line reason. Only the supported
// types of sniff_image_type() reach libvips ("unsupported image type: pdf" for the others), and
// only through their own loader; init_vips() also blocks every other libvips loader.
// Colour rule: grey, CMYK and 16-bit become 8-bit sRGB; alpha is composited over white;
// animated images give their first frame.
std::string decode_image(std::string_view bytes, const DecodeParams& params, DecodedImage& out);

// Encodes RGB pixels as JPEG without metadata; throws std::runtime_error on failure.
std::string encode_jpeg(const Image& img, int quality = 90);

// The image type from magic bytes, never from a name. Supported (decoded): "jpg", "png", "webp",
// "gif", "bmp", "tiff". Recognised but refused: "pdf", "svg", "avif", "heic", "heif", "jxl",
// "jp2", "psd", "ico", "postscript", "exr", "hdr", "fits", "mat", "vips", "xcf", "pnm", "cr3".
// "" when unknown (also refused).
std::string sniff_image_type(std::string_view bytes);
bool is_supported_image_type(std::string_view type);
// sniff_image_type() when supported, else "".
std::string sniff_image_ext(std::string_view bytes);
// Extensions readers treat as the sample's image: jpg, jpeg, png, webp, gif, bmp, tiff, tif.
bool is_image_ext(std::string_view ext);
// Image-like extensions of formats capforge refuses (avif, heic, heif, svg, pdf, jxl, jp2, psd,
// ico, raw camera formats, ...): readers still make them the sample's image, so the sample fails
// to decode with "unsupported image type: ..." instead of vanishing.
bool is_unsupported_image_ext(std::string_view ext);
// Whether a file name ends in either kind of image extension: a sample of an image folder.
bool has_image_file_ext(std::string_view filename);

// Initialises libvips once per process (idempotent, thread-safe); throws if it cannot.
void init_vips();

}  // namespace capforge
