// Image types from magic bytes and file extensions: what capforge decodes, and what it refuses.
#include <strings.h>

#include <cstring>
#include <string>
#include <string_view>

#include "capforge/image.h"

namespace capforge {

namespace {

bool starts(std::string_view b, std::string_view magic, size_t off = 0) {
  return b.size() >= off + magic.size() && b.substr(off, magic.size()) == magic;
}

bool one_of(std::string_view x, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (x.size() == std::strlen(n) && strncasecmp(x.data(), n, x.size()) == 0) return true;
  return false;
}

// A Windows bitmap: "BM" and a DIB header of one of the sizes the format defines.
bool is_bmp(std::string_view b) {
  if (!starts(b, "BM") || b.size() < 18) return false;
  auto u = [&](size_t i) { return (uint32_t)(unsigned char)b[i]; };
  uint32_t dib = u(14) | u(15) << 8 | u(16) << 16 | u(17) << 24;
  return dib == 12 || dib == 40 || dib == 52 || dib == 56 || dib == 64 || dib == 108 || dib == 124;
}

// ISO base media (HEIF family): "ftyp" at offset 4, then the major brand and compatible brands.
std::string iso_bmff_type(std::string_view b) {
  if (!starts(b, "ftyp", 4) || b.size() < 12) return "";
  uint32_t box = (uint32_t)(unsigned char)b[0] << 24 | (uint32_t)(unsigned char)b[1] << 16 |
                 (uint32_t)(unsigned char)b[2] << 8 | (uint32_t)(unsigned char)b[3];
  std::string_view major = b.substr(8, 4);
  std::string_view brands = b.substr(8, std::min<size_t>(b.size(), box < 8 ? 12 : box) - 8);
  auto has = [&](std::string_view brand) {
    for (size_t i = 0; i + 4 <= brands.size(); i += 4)
      if (brands.substr(i, 4) == brand) return true;
    return false;
  };
  if (major == "avif" || major == "avis" || has("avif") || has("avis")) return "avif";
  if (major == "heic" || major == "heix" || major == "hevc" || major == "hevx" || major == "heim" ||
      major == "heis" || has("heic") || has("heix"))
    return "heic";
  if (major == "mif1" || major == "msf1" || has("mif1")) return "heif";
  if (major == "jxl ") return "jxl";
  if (major == "crx ") return "cr3";
  return "";
}

// SVG: XML text (optionally after a BOM, whitespace, a prolog or comments) with an <svg element.
bool is_svg(std::string_view b) {
  std::string_view head = b.substr(0, std::min<size_t>(b.size(), 4096));
  if (starts(head, "\xEF\xBB\xBF")) head.remove_prefix(3);
  while (!head.empty() && std::strchr(" \t\r\n", head.front())) head.remove_prefix(1);
  if (!starts(head, "<")) return false;
  return head.find("<svg") != std::string_view::npos || head.find("<SVG") != std::string_view::npos;
}

}  // namespace

std::string sniff_image_type(std::string_view b) {
  if (starts(b, "\xFF\xD8\xFF")) return "jpg";
  if (starts(b, "\x89PNG\r\n\x1A\n")) return "png";
  if (starts(b, "RIFF") && starts(b, "WEBP", 8)) return "webp";
  if (starts(b, "GIF87a") || starts(b, "GIF89a")) return "gif";
  if (is_bmp(b)) return "bmp";
  if (starts(b, std::string_view("II*\0", 4)) || starts(b, std::string_view("MM\0*", 4))) return "tiff";
  // recognised, refused
  if (starts(b, "%PDF-")) return "pdf";
  if (starts(b, "%!PS") || starts(b, "\xC5\xD0\xD3\xC6")) return "postscript";
  if (auto t = iso_bmff_type(b); !t.empty()) return t;
  if (starts(b, "\xFF\x0A") || starts(b, std::string_view("\0\0\0\x0CJXL \x0D\x0A\x87\x0A", 12)))
    return "jxl";
  if (starts(b, std::string_view("\0\0\0\x0CjP  \x0D\x0A\x87\x0A", 12)) || starts(b, "\xFF\x4F\xFF\x51"))
    return "jp2";
  if (starts(b, "8BPS")) return "psd";
  if (starts(b, std::string_view("\0\0\1\0", 4)) || starts(b, std::string_view("\0\0\2\0", 4))) return "ico";
  if (starts(b, "\x76\x2F\x31\x01")) return "exr";
  if (starts(b, "#?RADIANCE") || starts(b, "#?RGBE")) return "hdr";
  if (starts(b, "SIMPLE  =")) return "fits";
  if (starts(b, "MATLAB")) return "mat";
  if (starts(b, "\x08\xF2\xA6\xB6") || starts(b, "\xB6\xA6\xF2\x08")) return "vips";
  if (starts(b, "gimp xcf")) return "xcf";
  if (b.size() >= 2 && b[0] == 'P' && std::strchr("123456fF", b[1]) && b[1] != '\0') return "pnm";
  if (is_svg(b)) return "svg";
  return "";
}

bool is_supported_image_type(std::string_view type) {
  return one_of(type, {"jpg", "png", "webp", "gif", "bmp", "tiff"});
}

std::string sniff_image_ext(std::string_view bytes) {
  std::string t = sniff_image_type(bytes);
  return is_supported_image_type(t) ? t : "";
}

bool is_image_ext(std::string_view ext) {
  return one_of(ext, {"jpg", "jpeg", "png", "webp", "gif", "bmp", "tiff", "tif"});
}

bool is_unsupported_image_ext(std::string_view ext) {
  return one_of(
      ext, {"avif", "heic", "heif", "hif", "svg", "svgz", "pdf", "jxl", "jp2", "j2k",  "jpx", "jpf", "psd",
            "ico",  "cur",  "eps",  "ps",  "ai",  "exr",  "hdr", "tga", "xcf", "dng",  "cr2", "cr3", "nef",
            "arw",  "raf",  "orf",  "rw2", "ppm", "pgm",  "pbm", "pnm", "pfm", "fits", "fit", "mat", "vips"});
}

bool has_image_file_ext(std::string_view filename) {
  size_t dot = filename.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == filename.size()) return false;
  std::string_view ext = filename.substr(dot + 1);
  return is_image_ext(ext) || is_unsupported_image_ext(ext);
}

}  // namespace capforge
