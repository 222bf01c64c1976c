// Face blurring at download: box parsing, and on decoded outputs that pixels inside the boxes change
// while every pixel outside them stays the same.
#include <gtest/gtest.h>

#include <vips/vips.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "curate/blur_helpers.h"
#include "image/blur.h"
#include "image/resize.h"
#include "pipeline/download_stages.h"
#include "support/fixtures.h"

namespace capforge {

namespace {

using test::compare;
using test::decode_rgb;
using test::Diff;
using test::Rect;

std::vector<BlurBox> boxes(const std::string& json) {
  std::vector<BlurBox> out;
  EXPECT_EQ(parse_blur_boxes(Json::parse(json), out), "") << json;
  return out;
}

ResizeParams png_params(ResizeMode mode, int size) {
  ResizeParams p;
  p.mode = mode;
  p.image_size = size;
  p.format = "png";
  return p;
}

}  // namespace

TEST(Blur, ParsesListsTextAndNothing) {
  std::vector<BlurBox> b;
  EXPECT_EQ(parse_blur_boxes(Json::parse("[[0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1]]"), b), "");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_DOUBLE_EQ(b[0].x0, 0.1);
  EXPECT_DOUBLE_EQ(b[0].y1, 0.4);
  EXPECT_EQ(parse_blur_boxes(Json("[[0.1, 0.2, 0.3, 0.4]]"), b), "");  // JSON text (CSV, JSONL strings)
  EXPECT_EQ(b.size(), 1u);
  for (Json none : {Json(nullptr), Json(""), Json("  "), Json::parse("[]"), Json("[]")}) {
    EXPECT_EQ(parse_blur_boxes(none, b), "") << none.dump();
    EXPECT_TRUE(b.empty()) << none.dump();
  }
  // kept as given (growth uses the full box), clamped to [-1, 2]; no area inside the image: dropped
  EXPECT_EQ(
      parse_blur_boxes(
          Json::parse("[[-0.5, 0, 1.5, 0.5], [1.2, 0, 1.4, 1], [0.3, 0.3, 0.3, 0.9], [-9, -9, 9, 9]]"), b),
      "");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].x0, -0.5);
  EXPECT_EQ(b[0].x1, 1.5);
  EXPECT_EQ(b[1].x0, -1);
  EXPECT_EQ(b[1].y1, 2);
}

TEST(Blur, MalformedValuesAreReportedNotGuessed) {
  std::vector<BlurBox> b;
  for (const char* bad :
       {"{}", "3", "\"x\"", "[1, 2, 3, 4]", "[[0.1, 0.2, 0.3]]", "[[0.1, 0.2, 0.3, 0.4, 0.5]]",
        "[[0.1, \"a\", 0.3, 0.4]]", "[[0.1, null, 0.3, 0.4]]", "[[0.5, 0, 0.2, 1]]", "[[0, 0.6, 1, 0.5]]",
        "[[0, 0, 1, 1], [0.1]]"}) {
    EXPECT_NE(parse_blur_boxes(Json::parse(bad), b), "") << bad;
    EXPECT_NE(parse_blur_boxes(Json(std::string(bad)), b), "") << "as text: " << bad;
  }
  EXPECT_NE(parse_blur_boxes(Json("[[0.1, 0.2"), b), "");
  EXPECT_NE(parse_blur_boxes(Json("[[NaN, 0, 1, 1]]"), b), "");
  Json inf = Json::array({Json::array({0.0, 0.0, std::numeric_limits<double>::infinity(), 1.0})});
  EXPECT_NE(parse_blur_boxes(inf, b), "");
}

TEST(Blur, InsideChangesOutsideDoesNotAtOriginalSize) {
  Image src = test::noise_image(64, 48, 3);
  ResizedImage out;
  // box x 0.25..0.5 -> pixels 16..32, y 0.25..0.75 -> 12..36, grown by ceil(0.1 * 24) = 3 on each
  // side; the second is rounded outwards (51..58 x 0..6) and grown by ceil(0.1 * 7) = 1
  auto bx = boxes("[[0.25, 0.25, 0.5, 0.75], [0.8, 0.01, 0.9, 0.11]]");
  ASSERT_EQ(resize_image(test::encode_png(src), png_params(ResizeMode::no, 0), out, bx), "");
  EXPECT_EQ(out.ext, "png");  // mode no re-encodes when it blurs
  Image got = decode_rgb(out.bytes);
  std::vector<Rect> in = {{13, 9, 35, 39}, {50, 0, 59, 7}};
  Diff d = compare(src, got, in);
  EXPECT_EQ(d.outside_changed, 0);
  EXPECT_GT(d.inside_mean, 40);  // noise (mean |a - b| of two uniform bytes ~85) smoothed towards grey
  // the growth ring (grown box minus the box) is blurred too
  Diff ring = compare(src, got, {{13, 9, 16, 39}, {32, 9, 35, 39}, {16, 9, 32, 12}, {16, 36, 32, 39}});
  EXPECT_GT(ring.inside_mean, 30);
  // every row and column of each box changed somewhere (the box is covered to its edges)
  for (auto& r : in)
    for (int y = r.t; y < r.b; ++y) {
      int changed = 0;
      for (int x = r.l; x < r.r; ++x)
        changed +=
            std::memcmp(&src.rgb[((size_t)y * 64 + x) * 3], &got.rgb[((size_t)y * 64 + x) * 3], 3) != 0;
      EXPECT_GT(changed, (r.r - r.l) / 2) << "row " << y;
    }
}

TEST(Blur, NoBoxesLeavesTheOriginalBytes) {
  std::string png = test::encode_png(test::noise_image(40, 30, 4));
  ResizedImage out;
  ASSERT_EQ(resize_image(png, png_params(ResizeMode::no, 0), out, {}), "");
  EXPECT_EQ(out.bytes, png);
  ASSERT_EQ(resize_image(png, png_params(ResizeMode::no, 0), out, boxes("[[0.5, 0.5, 0.5, 0.9]]")), "");
  EXPECT_EQ(out.bytes, png);  // an empty box is no box
}

TEST(Blur, BoxesAreNormalisedSoTheyFollowAResize) {
  std::string png = test::encode_png(test::noise_image(128, 96, 5));
  ResizedImage plain, blurred;
  auto p = png_params(ResizeMode::keep_ratio, 48);  // 128x96 -> 64x48
  ASSERT_EQ(resize_image(png, p, plain), "");
  ASSERT_EQ(resize_image(png, p, blurred, boxes("[[0.5, 0.5, 1, 1]]")), "");
  EXPECT_EQ(blurred.width, 64);
  // 32..64 x 24..48 grown by ceil(0.1 * 32) = 4
  Diff d = compare(decode_rgb(plain.bytes), decode_rgb(blurred.bytes), {{28, 20, 64, 48}});
  EXPECT_EQ(d.outside_changed, 0);
  EXPECT_GT(d.inside_mean, 15);  // the resize already smoothed some of the noise
}

TEST(Blur, BoxesReferToTheImageBeforeACrop) {
  // 80x40 center-cropped to 40x40 keeps original x 20..60: a box at x 0..16 (grown by 4: 0..20) is
  // cropped away, one at x 40..60 (grown: 36..64) lands on crop x 16..40
  std::string png = test::encode_png(test::noise_image(80, 40, 6));
  auto p = png_params(ResizeMode::center_crop, 40);
  ResizedImage plain, away, kept;
  ASSERT_EQ(resize_image(png, p, plain), "");
  ASSERT_EQ(resize_image(png, p, away, boxes("[[0, 0, 0.2, 1]]")), "");
  ASSERT_EQ(resize_image(png, p, kept, boxes("[[0.5, 0, 0.75, 1]]")), "");
  ASSERT_EQ(plain.width, 40);
  EXPECT_EQ(compare(decode_rgb(plain.bytes), decode_rgb(away.bytes), {}).outside_changed, 0);
  Diff d = compare(decode_rgb(plain.bytes), decode_rgb(kept.bytes), {{16, 0, 40, 40}});
  EXPECT_EQ(d.outside_changed, 0);
  EXPECT_GT(d.inside_mean, 40);
}

TEST(Blur, BoxesReferToTheImageAsDisplayed) {
  // stored 64x32 with EXIF orientation 6 (rotate 90 clockwise): displayed 32x64; the box is the
  // displayed top half (0..32 x 0..32, grown by 4)
  std::string jpg = test::make_jpeg_with_orientation(64, 32, 6);
  auto p = png_params(ResizeMode::no, 0);
  ResizedImage plain, blurred;
  p.mode = ResizeMode::keep_ratio, p.image_size = 32;  // no resize, but decoded, rotated and re-encoded
  ASSERT_EQ(resize_image(jpg, p, plain), "");
  ASSERT_EQ(resize_image(jpg, p, blurred, boxes("[[0, 0, 1, 0.5]]")), "");
  ASSERT_EQ(plain.width, 32);
  ASSERT_EQ(plain.height, 64);
  Diff d = compare(decode_rgb(plain.bytes), decode_rgb(blurred.bytes), {{0, 0, 32, 36}});
  EXPECT_EQ(d.outside_changed, 0);
  EXPECT_GT(d.inside_mean, 1);
}

TEST(Blur, OverlappingAndManyBoxesOnALargeImage) {
  Image src = test::noise_image(1600, 1200, 8);
  std::string png = test::encode_png(src);
  std::string list = "[[0.1, 0.1, 0.3, 0.3], [0.2, 0.2, 0.4, 0.4]";
  for (int i = 0; i < 30; ++i)  // a crowd of small faces along a row
    list +=
        ", [" + std::to_string(0.02 + i * 0.032) + ", 0.8, " + std::to_string(0.045 + i * 0.032) + ", 0.83]";
  list += "]";
  auto bx = boxes(list);
  ASSERT_EQ(bx.size(), 32u);
  ResizedImage out;
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(resize_image(png, png_params(ResizeMode::no, 0), out, bx), "");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // grown by 10% of the longer side: 320 -> 32 pixels
  std::vector<Rect> in = {{128, 88, 512, 392}, {288, 208, 672, 512}};
  for (auto& b : bx)
    if (b.y0 > 0.5) {
      int l = (int)std::floor(b.x0 * 1600), r = (int)std::ceil(b.x1 * 1600);
      int t = 960, d = (int)std::ceil(b.y1 * 1200), g = (int)std::ceil(0.1 * std::max(r - l, d - t));
      in.push_back({l - g, t - g, r + g, d + g});
    }
  Diff d = compare(src, decode_rgb(out.bytes), in);
  EXPECT_EQ(d.outside_changed, 0);
  EXPECT_GT(d.inside_mean, 40);
  std::printf("32 boxes on 1600x1200, decode + blur + PNG encode: %.3f s\n", seconds);
  EXPECT_LT(seconds, 20);  // one in-memory copy, not one per box
}

TEST(Blur, ResizeStageFailsOnlyTheSampleWithAMalformedValue) {
  auto stage = make_resize_stage(png_params(ResizeMode::no, 0), 1, "", "face_bboxes");
  std::string png = test::encode_png(test::noise_image(32, 32, 7));
  std::vector<Sample> v(4);
  for (auto& s : v) s.image_bytes = png, s.has_image = true;
  v[0].meta["face_bboxes"] = Json::parse("[[0, 0, 0.5, 0.5]]");  // a parquet list
  v[1].meta["face_bboxes"] = "[[0, 0, 0.5]]";                    // malformed text
  v[2].meta["face_bboxes"] = nullptr;                            // no boxes
  v[3].meta["face_bboxes"] = "[[0.5, 0.5, 1.0, 1.0]]";           // JSON text
  std::vector<Sample*> batch;
  for (auto& s : v) batch.push_back(&s);
  stage->process(batch);
  EXPECT_EQ(v[0].status, Status::success);
  EXPECT_NE(v[0].image_bytes, png);
  EXPECT_EQ(v[1].status, Status::failed_to_resize);
  EXPECT_EQ(v[1].error, "cannot blur: column face_bboxes: box 0 is not a list of 4 numbers");
  EXPECT_TRUE(v[1].image_bytes.empty());  // never written unblurred
  EXPECT_EQ(v[2].status, Status::success);
  EXPECT_EQ(v[2].image_bytes, png);
  EXPECT_EQ(v[3].status, Status::success);
  Diff d = compare(test::noise_image(32, 32, 7), decode_rgb(v[3].image_bytes), {{14, 14, 32, 32}});
  EXPECT_EQ(d.outside_changed, 0);
  EXPECT_GT(d.inside_mean, 40);
}

TEST(Blur, AHostileNumberOfBoxesFailsTheSampleQuickly) {
  // 10,000 tiny boxes: one clear per-sample failure, before any decoding
  auto many = [](int n) {
    std::string list = "[";
    for (int i = 0; i < n; ++i) list += std::string(i ? "," : "") + "[0.1, 0.1, 0.11, 0.11]";
    return list + "]";
  };
  auto stage = make_resize_stage(png_params(ResizeMode::no, 0), 1, "", "face_bboxes");
  std::string png = test::encode_png(test::noise_image(256, 256, 9));
  std::vector<Sample> v(2);
  for (auto& s : v) s.image_bytes = png, s.has_image = true;
  v[0].meta["face_bboxes"] = Json::parse(many(10000));
  v[1].meta["face_bboxes"] = many(256);  // exactly the limit: allowed
  std::vector<Sample*> batch = {&v[0], &v[1]};
  auto t0 = std::chrono::steady_clock::now();
  stage->process(batch);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(v[0].status, Status::failed_to_resize);
  EXPECT_EQ(v[0].error, "cannot blur: column face_bboxes: too many boxes (10000 > 256)");
  EXPECT_TRUE(v[0].image_bytes.empty());
  EXPECT_EQ(v[1].status, Status::success) << v[1].error;
  EXPECT_LT(seconds, 20);
  // blur_boxes itself refuses too (a caller that did not parse)
  init_vips();
  VipsImage* im = vips_image_new_from_buffer(png.data(), png.size(), "", nullptr);
  ASSERT_NE(im, nullptr);
  VipsImage* out = nullptr;
  vips_error_clear();
  EXPECT_EQ(blur_boxes(im, std::vector<BlurBox>(257, BlurBox{0.1, 0.1, 0.2, 0.2}), &out), -1);
  EXPECT_NE(std::string(vips_error_buffer()).find("too many boxes (257 > 256)"), std::string::npos);
  vips_error_clear();
  g_object_unref(im);
}

TEST(Blur, AFullImageBoxOnALargeImageIsBounded) {
  // sigma 0.1 * 3000 = 300: blurred on the area shrunk by 19, so seconds, not minutes
  Image src = test::noise_image(3000, 3000, 10);
  std::string png = test::encode_png(src);
  ResizedImage out;
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(resize_image(png, png_params(ResizeMode::no, 0), out, boxes("[[0, 0, 1, 1]]")), "");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("full-image box on 3000x3000, decode + blur + PNG encode: %.3f s\n", seconds);
  EXPECT_LT(seconds, 20);
  Image got = decode_rgb(out.bytes);
  ASSERT_EQ(got.width, 3000);
  // a sigma of 300 averages the noise away: every pixel is close to the mean grey (uniform noise: ~127)
  double worst = 0;
  for (size_t i = 0; i < got.rgb.size(); i += 997) worst = std::max(worst, std::abs(got.rgb[i] - 127.5));
  EXPECT_LT(worst, 16);
  EXPECT_GT(compare(src, got, {{0, 0, 3000, 3000}}).inside_mean, 50);
}

TEST(Blur, ABoxPartlyOutsideGrowsByItsFullSize) {
  // x -0.5..0.25 of 64 -> pixels -32..16 (side 48, grown by 5: to 21), y 0.25..0.5 of 64 -> 16..32
  // (grown: 11..37); clamped first (0..16), it would have grown by 2 only
  Image src = test::noise_image(64, 64, 11);
  ResizedImage out;
  ASSERT_EQ(resize_image(test::encode_png(src), png_params(ResizeMode::no, 0), out,
                         boxes("[[-0.5, 0.25, 0.25, 0.5]]")),
            "");
  Image got = decode_rgb(out.bytes);
  Diff d = compare(src, got, {{0, 11, 21, 37}});
  EXPECT_EQ(d.outside_changed, 0);
  EXPECT_GT(d.inside_mean, 40);
  EXPECT_GT(compare(src, got, {{20, 11, 21, 37}}).inside_mean, 20);  // the last grown column changed
}

}  // namespace capforge
