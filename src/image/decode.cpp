#include <vips/vips.h>

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "capforge/image.h"
#include "core/log.h"

namespace capforge {

namespace {

struct VipsUnref {
  void operator()(VipsImage* im) const {
    if (im) g_object_unref(im);
  }
};
using VipsPtr = std::unique_ptr<VipsImage, VipsUnref>;

// libvips keeps one error buffer per process; take it and clear it. Under concurrency a message
// may mix with another thread's, so the caller always prefixes its own context.
std::string take_vips_error() {
  char* buf = vips_error_buffer_copy();
  std::string msg = buf ? buf : "";
  g_free(buf);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  if (auto nl = msg.rfind('\n'); nl != std::string::npos) msg = msg.substr(nl + 1);
  return msg.empty() ? "unknown libvips error" : msg;
}

void quiet_vips_log(const gchar* domain, GLogLevelFlags, const gchar* message, gpointer) {
  spdlog::debug("{}: {}", domain ? domain : "vips", message ? message : "");
}

// Applies the colour rule to an oriented image: 8-bit sRGB, 3 bands, alpha over white.
std::string to_rgb8(VipsPtr& im) {
  VipsImage* out = nullptr;
  if (vips_image_get_interpretation(im.get()) != VIPS_INTERPRETATION_sRGB ||
      vips_image_get_format(im.get()) != VIPS_FORMAT_UCHAR) {
    if (vips_colourspace(im.get(), &out, VIPS_INTERPRETATION_sRGB, nullptr)) return take_vips_error();
    im.reset(out);
  }
  if (vips_image_get_format(im.get()) != VIPS_FORMAT_UCHAR) {
    if (vips_cast_uchar(im.get(), &out, nullptr)) return take_vips_error();
    im.reset(out);
  }
  if (vips_image_hasalpha(im.get())) {
    VipsArrayDouble* white = vips_array_double_newv(3, 255.0, 255.0, 255.0);
    int rc = vips_flatten(im.get(), &out, "background", white, nullptr);
    vips_area_unref(VIPS_AREA(white));
    if (rc) return take_vips_error();
    im.reset(out);
  }
  if (im->Bands > 3) {
    if (vips_extract_band(im.get(), &out, 0, "n", 3, nullptr)) return take_vips_error();
    im.reset(out);
  } else if (im->Bands < 3) {
    if (vips_bandjoin_const1(im.get(), &out, 0, nullptr)) return take_vips_error();  // unreachable for sRGB
    im.reset(out);
  }
  return "";
}

// The one libvips loader each supported type may use.
const char* expected_loader(const std::string& type) {
  if (type == "jpg") return "VipsForeignLoadJpegBuffer";
  if (type == "png") return "VipsForeignLoadPngBuffer";
  if (type == "webp") return "VipsForeignLoadWebpBuffer";
  if (type == "gif") return "VipsForeignLoadNsgifBuffer";
  if (type == "tiff") return "VipsForeignLoadTiffBuffer";
  if (type == "bmp") return "VipsForeignLoadMagickBuffer";
  return "";
}

}  // namespace

void init_vips() {
  static std::once_flag once;
  static std::string failure;
  std::call_once(once, [] {
    if (VIPS_INIT("capforge")) {
      failure = "cannot initialise libvips: " + take_vips_error();
      return;
    }
    // Second layer behind decode_image's magic check: every libvips loader is blocked but those
    // of the supported raster formats (BMP comes through ImageMagick, buffers only).
    vips_block_untrusted_set(TRUE);
    vips_operation_block_set("VipsForeignLoad", TRUE);
    for (const char* allowed : {"VipsForeignLoadJpeg", "VipsForeignLoadPng", "VipsForeignLoadWebp",
                                "VipsForeignLoadNsgif", "VipsForeignLoadTiff", "VipsForeignLoadMagickBuffer"})
      vips_operation_block_set(allowed, FALSE);
    vips_concurrency_set(1);  // we parallelise across images, not within one
    vips_cache_set_max(0);    // no operation cache: memory stays flat over millions of images
    vips_cache_set_max_mem(0);
    g_log_set_handler("VIPS", (GLogLevelFlags)(G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE), quiet_vips_log,
                      nullptr);
  });
  if (!failure.empty()) throw std::runtime_error(failure);
}

std::string encode_jpeg(const Image& img, int quality) {
  init_vips();
  VipsPtr im(vips_image_new_from_memory_copy(img.rgb.data(), img.rgb.size(), img.width, img.height, 3,
                                             VIPS_FORMAT_UCHAR));
  void* buf = nullptr;
  size_t len = 0;
  if (!im || vips_jpegsave_buffer(im.get(), &buf, &len, "Q", quality, "strip", TRUE, nullptr))
    throw std::runtime_error("JPEG encoding failed: " + take_vips_error());
  std::string out((const char*)buf, len);
  g_free(buf);
  return out;
}

std::string decode_image(std::string_view bytes, const DecodeParams& params, DecodedImage& out) {
  init_vips();
  out = DecodedImage{};
  if (bytes.empty()) return "empty image (0 bytes)";
  if (bytes.size() > params.max_bytes)
    return fmt::format("image is {} bytes, above the {}-byte limit (--max-image-bytes)", bytes.size(),
                       params.max_bytes);
  // The type comes from the bytes, whatever the file was called; only supported types go on.
  std::string type = sniff_image_type(bytes);
  if (type.empty()) return "not a recognised image format";
  if (!is_supported_image_type(type)) return "unsupported image type: " + type;
  const char* loader = vips_foreign_find_load_buffer(bytes.data(), bytes.size());
  if (!loader) {
    vips_error_clear();
    return "not a recognised image format";
  }
  if (std::strcmp(loader, expected_loader(type)) != 0)
    return fmt::format("unsupported image type: {} (libvips would load it as {})", type, loader);
  out.format = loader;  // e.g. "VipsForeignLoadJpegBuffer" -> "jpeg"
  if (out.format.rfind("VipsForeignLoad", 0) == 0) out.format = out.format.substr(15);
  if (auto p = out.format.find("Buffer"); p != std::string::npos) out.format.resize(p);
  for (auto& c : out.format) c = (char)std::tolower((unsigned char)c);

  VipsPtr header(vips_image_new_from_buffer(bytes.data(), bytes.size(), "", "access", VIPS_ACCESS_SEQUENTIAL,
                                            "fail_on", VIPS_FAIL_ON_TRUNCATED, nullptr));
  if (!header) return fmt::format("cannot read {} header: {}", out.format, take_vips_error());
  int w = vips_image_get_width(header.get()), h = vips_image_get_height(header.get());
  int orientation = 1;
  if (vips_image_get_typeof(header.get(), VIPS_META_ORIENTATION))
    vips_image_get_int(header.get(), VIPS_META_ORIENTATION, &orientation);
  if (orientation >= 5 && orientation <= 8) std::swap(w, h);
  out.original_width = w;
  out.original_height = h;
  if (w <= 0 || h <= 0) return fmt::format("image has invalid size {}x{}", w, h);
  if ((int64_t)w * h > params.max_pixels)
    return fmt::format(
        "image is {}x{} ({:.0f} MP), above the {:.0f} MP limit (--max-pixels): "
        "refused as a possible decompression bomb",
        w, h, w * (double)h / 1e6, params.max_pixels / 1e6);
  if (params.header_only) return "";

  // Shrink-on-load: JPEG decodes at 1/2, 1/4 or 1/8 scale in the DCT domain, WebP at any scale;
  // the shrunk image stays at least as large as the target.
  int shrink = 1;
  if (params.short_edge > 0)
    while (shrink < 8 && std::min(w, h) / (shrink * 2) >= params.short_edge) shrink *= 2;
  VipsPtr im;
  if (shrink > 1 && out.format == "jpeg") {
    VipsImage* raw = nullptr;
    if (vips_jpegload_buffer((void*)bytes.data(), bytes.size(), &raw, "shrink", shrink, "access",
                             VIPS_ACCESS_SEQUENTIAL, "fail_on", VIPS_FAIL_ON_TRUNCATED, nullptr))
      return fmt::format("cannot decode {}: {}", out.format, take_vips_error());
    im.reset(raw);
  } else if (shrink > 1 && out.format == "webp") {
    VipsImage* raw = nullptr;
    if (vips_webpload_buffer((void*)bytes.data(), bytes.size(), &raw, "scale", 1.0 / shrink, "access",
                             VIPS_ACCESS_SEQUENTIAL, "fail_on", VIPS_FAIL_ON_TRUNCATED, nullptr))
      return fmt::format("cannot decode {}: {}", out.format, take_vips_error());
    im.reset(raw);
  } else {
    im = std::move(header);  // lazy: the pixels decode when written out below
  }
  header.reset();
  VipsImage* next = nullptr;
  if (orientation != 1) {
    if (vips_autorot(im.get(), &next, nullptr))
      return fmt::format("cannot rotate {}: {}", out.format, take_vips_error());
    im.reset(next);
  }
  int cw = vips_image_get_width(im.get()), ch = vips_image_get_height(im.get());
  if (params.short_edge > 0 && std::min(cw, ch) > params.short_edge) {
    double s = (double)params.short_edge / std::min(cw, ch);
    int tw = cw <= ch ? params.short_edge : std::max(1, (int)std::lround(cw * s));
    int th = ch < cw ? params.short_edge : std::max(1, (int)std::lround(ch * s));
    if (vips_resize(im.get(), &next, (double)tw / cw, "vscale", (double)th / ch, "kernel", VIPS_KERNEL_CUBIC,
                    nullptr))
      return fmt::format("cannot resize {}: {}", out.format, take_vips_error());
    im.reset(next);
  }
  if (auto err = to_rgb8(im); !err.empty())
    return fmt::format("cannot convert {} to RGB: {}", out.format, err);

  size_t size = 0;
  void* mem = vips_image_write_to_memory(im.get(), &size);
  if (!mem) return fmt::format("cannot decode {}: {}", out.format, take_vips_error());
  Image& px = out.pixels;
  px.width = vips_image_get_width(im.get());
  px.height = vips_image_get_height(im.get());
  px.rgb.assign((uint8_t*)mem, (uint8_t*)mem + size);
  g_free(mem);
  if (px.rgb.size() != (size_t)px.width * px.height * 3) {
    px = Image{};
    return "decoder returned an unexpected pixel layout";
  }
  return "";
}

}  // namespace capforge
