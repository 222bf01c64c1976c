#include "image/resize.h"

#include <vips/vips.h>

#include <fmt/format.h>

#include <cmath>
#include <memory>

#include "capforge/sample.h"

namespace capforge {

std::optional<ResizeMode> resize_mode_from_name(const std::string& n) {
  if (n == "no") return ResizeMode::no;
  if (n == "keep_ratio") return ResizeMode::keep_ratio;
  if (n == "keep_ratio_largest") return ResizeMode::keep_ratio_largest;
  if (n == "center_crop") return ResizeMode::center_crop;
  if (n == "border") return ResizeMode::border;
  return std::nullopt;
}

namespace {

struct Unref {
  void operator()(VipsImage* i) const { g_object_unref(i); }
};
using VipsPtr = std::unique_ptr<VipsImage, Unref>;

std::string vips_err() {
  std::string e = vips_error_buffer();
  vips_error_clear();
  while (!e.empty() && e.back() == '\n') e.pop_back();
  if (auto nl = e.rfind('\n'); nl != std::string::npos) e = e.substr(nl + 1);
  return e.empty() ? "libvips error" : e;
}

void* collect_exif(VipsImage* im, const char* name, GValue* value, void* user) {
  if (std::string(name).rfind("exif-ifd", 0) != 0) return nullptr;
  auto* j = static_cast<Json*>(user);
  if (G_VALUE_HOLDS_STRING(value)) {
    const char* v = g_value_get_string(value);
    std::string s = v ? v : "";
    if (auto p = s.find(" ("); p != std::string::npos) s.resize(p);  // "1 (1, Short, 1 components)" -> "1"
    (*j)[std::string(name).substr(5)] = s;
  }
  (void)im;
  return nullptr;
}

std::string exif_json(std::string_view bytes) {
  VipsImage* im = vips_image_new_from_buffer(bytes.data(), bytes.size(), "", nullptr);
  if (!im) {
    vips_error_clear();
    return "";
  }
  Json j = Json::object();
  vips_image_map(im, collect_exif, &j);
  g_object_unref(im);
  return j.empty() ? "" : j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

std::string resize_image(std::string_view bytes, const ResizeParams& p, ResizedImage& out,
                         const std::vector<BlurBox>& blur) {
  out = ResizedImage{};
  init_vips();
  // one header read: limits, size, orientation, EXIF
  DecodedImage head;
  DecodeParams hp = p.limits;
  hp.header_only = true;
  if (auto err = decode_image(bytes, hp, head); !err.empty()) return err;
  const int w = head.original_width, h = head.original_height;
  out.original_width = w;
  out.original_height = h;
  if (p.min_image_size > 0 && std::min(w, h) < p.min_image_size)
    return fmt::format("image is {}x{}, smaller than --min-image-size {}", w, h, p.min_image_size);
  if (p.max_aspect_ratio > 0 && (double)std::max(w, h) / std::min(w, h) > p.max_aspect_ratio)
    return fmt::format("aspect ratio {:.2f} is above --max-aspect-ratio {:g}",
                       (double)std::max(w, h) / std::min(w, h), p.max_aspect_ratio);
  if (p.mode == ResizeMode::no && blur.empty()) {
    out.exif = exif_json(bytes);
    out.bytes = std::string(bytes);
    out.ext = sniff_image_ext(bytes);
    out.width = w, out.height = h;
    return "";
  }
  const int S = p.mode == ResizeMode::no ? std::min(w, h) : p.image_size;  // no: keeps w x h
  const bool by_smaller =
      p.mode == ResizeMode::keep_ratio || p.mode == ResizeMode::center_crop || p.mode == ResizeMode::no;
  double scale = (double)S / (by_smaller ? std::min(w, h) : std::max(w, h));
  if (p.only_if_bigger) scale = std::min(scale, 1.0);
  int tw = std::max(1, (int)std::lround(w * scale)), th = std::max(1, (int)std::lround(h * scale));
  if (by_smaller && scale != 1.0) (w <= h ? tw : th) = S;

  // one lazy libvips pipeline: shrink-on-load, orientation, colour, exact resize, crop/border, encode
  int shrink = 1;
  while (shrink < 8 && std::min(w, h) / (shrink * 2) >= std::min(tw, th)) shrink *= 2;
  VipsImage* raw =
      head.format == "jpeg" && shrink > 1
          ? nullptr
          : vips_image_new_from_buffer(bytes.data(), bytes.size(), "", "access", VIPS_ACCESS_SEQUENTIAL,
                                       "fail_on", VIPS_FAIL_ON_TRUNCATED, nullptr);
  if (!raw && head.format == "jpeg" && shrink > 1 &&
      vips_jpegload_buffer((void*)bytes.data(), bytes.size(), &raw, "shrink", shrink, "access",
                           VIPS_ACCESS_SEQUENTIAL, "fail_on", VIPS_FAIL_ON_TRUNCATED, nullptr))
    raw = nullptr;
  if (!raw) return "cannot decode " + head.format + ": " + vips_err();
  VipsPtr im(raw);
  {
    Json j = Json::object();
    vips_image_map(im.get(), collect_exif, &j);
    if (!j.empty()) out.exif = j.dump(-1, ' ', false, Json::error_handler_t::replace);
  }
  VipsImage* next = nullptr;
  auto step = [&](int rc, const char* what) {
    if (rc) return std::string(what) + ": " + vips_err();
    im.reset(next);
    return std::string();
  };
  std::string err;
  if (err = step(vips_autorot(im.get(), &next, nullptr), "rotate failed"); !err.empty()) return err;
  if (vips_image_get_interpretation(im.get()) != VIPS_INTERPRETATION_sRGB ||
      vips_image_get_format(im.get()) != VIPS_FORMAT_UCHAR)
    if (err = step(vips_colourspace(im.get(), &next, VIPS_INTERPRETATION_sRGB, nullptr),
                   "colour conversion failed");
        !err.empty())
      return err;
  if (vips_image_get_format(im.get()) != VIPS_FORMAT_UCHAR)
    if (err = step(vips_cast_uchar(im.get(), &next, nullptr), "cast failed"); !err.empty()) return err;
  if (vips_image_hasalpha(im.get())) {
    VipsArrayDouble* white = vips_array_double_newv(3, 255.0, 255.0, 255.0);
    int rc = vips_flatten(im.get(), &next, "background", white, nullptr);
    vips_area_unref(VIPS_AREA(white));
    if (err = step(rc, "alpha flatten failed"); !err.empty()) return err;
  }
  int cw = vips_image_get_width(im.get()), ch = vips_image_get_height(im.get());
  if (cw != tw || ch != th)
    if (err = step(vips_resize(im.get(), &next, (double)tw / cw, "vscale", (double)th / ch, "kernel",
                               VIPS_KERNEL_CUBIC, nullptr),
                   "resize failed");
        !err.empty())
      return err;
  cw = tw, ch = th;
  if (!blur.empty()) {  // on the resized image (boxes are normalised), before crop or border
    if (vips_image_get_format(im.get()) != VIPS_FORMAT_UCHAR)
      if (err = step(vips_cast_uchar(im.get(), &next, nullptr), "cast failed"); !err.empty()) return err;
    if (err = step(blur_boxes(im.get(), blur, &next), "blur failed"); !err.empty()) return err;
  }
  if (p.mode == ResizeMode::center_crop && (cw > S || ch > S)) {
    int side = std::min({cw, ch, S});
    if (err = step(vips_crop(im.get(), &next, (cw - side) / 2, (ch - side) / 2, side, side, nullptr),
                   "crop failed");
        !err.empty())
      return err;
  } else if (p.mode == ResizeMode::border && (cw != S || ch != S) && cw <= S && ch <= S) {
    if (err = step(vips_embed(im.get(), &next, (S - cw) / 2, (S - ch) / 2, S, S, "extend", VIPS_EXTEND_BLACK,
                              nullptr),
                   "border failed");
        !err.empty())
      return err;
  }
  void* buf = nullptr;
  size_t len = 0;
  int rc = 0;
  if (p.format == "png")
    rc = vips_pngsave_buffer(im.get(), &buf, &len, "compression", 6, nullptr);
  else if (p.format == "webp")
    rc = vips_webpsave_buffer(im.get(), &buf, &len, "Q", p.quality, nullptr);
  else
    rc = vips_jpegsave_buffer(im.get(), &buf, &len, "Q", p.quality, "strip", TRUE, nullptr);
  if (rc) return "cannot decode or encode " + head.format + ": " + vips_err();
  out.bytes.assign((const char*)buf, len);
  g_free(buf);
  out.ext = p.format == "jpeg" ? "jpg" : p.format;
  out.width = vips_image_get_width(im.get());
  out.height = vips_image_get_height(im.get());
  return "";
}

}  // namespace capforge
