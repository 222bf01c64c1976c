#include <gtest/gtest.h>

#include <vips/vips.h>

#include "capforge/image.h"
#include "support/fixtures.h"

namespace capforge {

namespace {
DecodedImage decode_ok(const std::string& bytes, DecodeParams p = {}) {
  DecodedImage img;
  std::string err = decode_image(bytes, p, img);
  EXPECT_EQ(err, "");
  return img;
}
std::string decode_err(const std::string& bytes, DecodeParams p = {}) {
  DecodedImage img;
  return decode_image(bytes, p, img);
}
}  // namespace

TEST(Decode, FullSizeRgb) {
  auto img = decode_ok(test::make_jpeg(64, 48));
  EXPECT_EQ(img.format, "jpeg");
  EXPECT_EQ(img.original_width, 64);
  EXPECT_EQ(img.pixels.width, 64);
  EXPECT_EQ(img.pixels.height, 48);
  EXPECT_EQ(img.pixels.rgb.size(), 64u * 48 * 3);
}

TEST(Decode, ShrinksShortestEdgeAndNeverEnlarges) {
  DecodeParams p;
  p.short_edge = 100;
  auto wide = decode_ok(test::make_jpeg(800, 400), p);
  EXPECT_EQ(wide.pixels.height, 100);
  EXPECT_EQ(wide.pixels.width, 200);
  EXPECT_EQ(wide.original_width, 800);
  auto tall = decode_ok(test::make_png(300, 600), p);
  EXPECT_EQ(tall.pixels.width, 100);
  EXPECT_EQ(tall.pixels.height, 200);
  auto small = decode_ok(test::make_jpeg(60, 40), p);
  EXPECT_EQ(small.pixels.width, 60);
  EXPECT_EQ(small.pixels.height, 40);
}

TEST(Decode, AppliesExifOrientation) {
  auto img = decode_ok(test::make_jpeg_with_orientation(80, 40, 6));  // rotate 90: 40x80 upright
  EXPECT_EQ(img.original_width, 40);
  EXPECT_EQ(img.original_height, 80);
  EXPECT_EQ(img.pixels.width, 40);
  EXPECT_EQ(img.pixels.height, 80);
}

TEST(Decode, GreyCmykAnd16BitBecome8BitRgb) {
  for (auto bytes : {test::make_png(20, 10, 1, 1), test::make_cmyk_jpeg(20, 10),
                     test::make_png(20, 10, 1, 3, true), test::make_png(20, 10, 1, 1, true)}) {
    auto img = decode_ok(bytes);
    EXPECT_EQ(img.pixels.rgb.size(), 20u * 10 * 3);
  }
}

TEST(Decode, AlphaIsCompositedOverWhite) {
  // make_png with 4 bands: alpha = (x*3 + y*5 + 120 + noise) & 255, so some pixels are transparent.
  auto bytes = test::make_png(16, 16, 2, 4);
  auto img = decode_ok(bytes);
  ASSERT_EQ(img.pixels.rgb.size(), 16u * 16 * 3);
  // A fully opaque reference: the same colour channels without alpha differ wherever alpha < 255,
  // and composited pixels move towards white.
  int brighter = 0;
  auto rgb_only = decode_ok(test::make_png(16, 16, 2, 3));
  for (size_t i = 0; i < img.pixels.rgb.size(); ++i) brighter += img.pixels.rgb[i] > rgb_only.pixels.rgb[i];
  EXPECT_GT(brighter, 0);
}

TEST(Decode, AnimatedGifGivesFirstFrame) {
  std::string gif;
  try {
    gif = test::make_animated_gif(24, 16, 3);
  } catch (const std::exception& e) {
    GTEST_SKIP() << "this libvips cannot write GIF: " << e.what();
  }
  auto img = decode_ok(gif);
  EXPECT_EQ(img.pixels.width, 24);
  EXPECT_EQ(img.pixels.height, 16);
}

TEST(Decode, CorruptInputsGiveReasons) {
  auto jpeg = test::make_jpeg(200, 150);
  EXPECT_EQ(decode_err(""), "empty image (0 bytes)");
  EXPECT_NE(decode_err(jpeg.substr(0, jpeg.size() / 2)).find("cannot decode jpeg"), std::string::npos);
  EXPECT_NE(decode_err(test::corrupt_png_crc(test::make_png(64, 64))).find("cannot decode png"),
            std::string::npos);
  EXPECT_EQ(decode_err("hello, I am text\n"), "not a recognised image format");
  std::string bomb = decode_err(test::make_png_bomb(30000, 30000));
  EXPECT_NE(bomb.find("30000x30000"), std::string::npos);
  EXPECT_NE(bomb.find("decompression bomb"), std::string::npos);
  DecodeParams small;
  small.max_bytes = 100;
  EXPECT_NE(decode_err(jpeg, small).find("--max-image-bytes"), std::string::npos);
}

TEST(Decode, HeaderOnlySkipsPixels) {
  DecodeParams p;
  p.header_only = true;
  auto img = decode_ok(test::make_jpeg(33, 22), p);
  EXPECT_EQ(img.original_width, 33);
  EXPECT_TRUE(img.pixels.empty());
}

TEST(Sniff, KnowsCommonFormats) {
  EXPECT_EQ(sniff_image_ext(test::make_jpeg(8, 8)), "jpg");
  EXPECT_EQ(sniff_image_ext(test::make_png(8, 8)), "png");
  EXPECT_EQ(sniff_image_ext("GIF89a..."), "gif");
  EXPECT_EQ(sniff_image_ext("plain text"), "");
  EXPECT_TRUE(is_image_ext("JPEG"));
  EXPECT_FALSE(is_image_ext("txt"));
}

namespace {
// Minimal, valid documents of formats capforge refuses (libvips could load the PDF and the SVG).
const std::string kPdf =
    "%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>"
    "endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 32 32]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";
const std::string kSvg =
    "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"32\" height=\"32\">"
    "<rect width=\"32\" height=\"32\" fill=\"red\"/></svg>\n";
std::string ftyp(const char* brand) {
  return std::string(
             "\0\0\0\x18"
             "ftyp",
             8) +
         brand + std::string("\0\0\0\0mif1", 8);
}
// A 2x1 24-bit BMP.
std::string tiny_bmp() {
  std::string b = "BM";
  auto u32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) b += (char)(v >> (8 * i));
  };
  auto u16 = [&](uint16_t v) { b += (char)v, b += (char)(v >> 8); };
  u32(14 + 40 + 8), u32(0), u32(54);
  u32(40), u32(2), u32(1), u16(1), u16(24), u32(0), u32(8), u32(2835), u32(2835), u32(0), u32(0);
  b += std::string("\x00\x00\xff\x00\xff\x00\x00\x00", 8);
  return b;
}
}  // namespace

TEST(Decode, OnlyRasterFormatsFromMagicWhateverTheName) {
  EXPECT_EQ(decode_err(kPdf), "unsupported image type: pdf");
  EXPECT_EQ(decode_err(kSvg), "unsupported image type: svg");
  EXPECT_EQ(decode_err("\xEF\xBB\xBF  <svg xmlns=\"http://www.w3.org/2000/svg\"/>"),
            "unsupported image type: svg");
  EXPECT_EQ(decode_err(ftyp("avif")), "unsupported image type: avif");
  EXPECT_EQ(decode_err(ftyp("heic")), "unsupported image type: heic");
  EXPECT_EQ(decode_err(ftyp("mif1")), "unsupported image type: heif");
  EXPECT_EQ(decode_err(std::string("\xFF\x0A\xFA\x7F", 4)), "unsupported image type: jxl");
  EXPECT_EQ(decode_err("%!PS-Adobe-3.0\n"), "unsupported image type: postscript");
  EXPECT_EQ(decode_err("P6\n2 2\n255\n............"), "unsupported image type: pnm");
  EXPECT_EQ(decode_err(std::string("\x1F\x8B\x08\x00", 4) + "gzip, maybe svgz"),
            "not a recognised image format");
  EXPECT_EQ(sniff_image_ext(kPdf), "");
  EXPECT_EQ(sniff_image_type(kPdf), "pdf");
  // BMP is supported (libvips reads it through ImageMagick, from buffers only)
  auto bmp = decode_ok(tiny_bmp());
  EXPECT_EQ(bmp.original_width, 2);
  EXPECT_EQ(sniff_image_ext(tiny_bmp()), "bmp");
}

TEST(Decode, LibvipsItselfRefusesNonRasterLoaders) {
  init_vips();  // the second layer: loaders of other formats are blocked inside libvips too
  for (const std::string* doc : {&kPdf, &kSvg}) {
    VipsImage* im = vips_image_new_from_buffer(doc->data(), doc->size(), "", nullptr);
    EXPECT_EQ(im, nullptr) << "libvips loaded " << doc->substr(0, 5);
    if (im) g_object_unref(im);
  }
  vips_error_clear();
  auto jpeg = test::make_jpeg(8, 8);
  VipsImage* ok = vips_image_new_from_buffer(jpeg.data(), jpeg.size(), "", nullptr);
  ASSERT_NE(ok, nullptr);
  EXPECT_EQ(vips_image_get_width(ok), 8);
  g_object_unref(ok);
}

TEST(Sniff, RefusedImageExtensionsAreRecognised) {
  for (auto ext : {"avif", "HEIC", "heif", "svg", "pdf", "jxl", "jp2", "psd"})
    EXPECT_TRUE(is_unsupported_image_ext(ext)) << ext;
  for (auto ext : {"jpg", "txt", "json", "cls"}) EXPECT_FALSE(is_unsupported_image_ext(ext)) << ext;
}

}  // namespace capforge
