// Decode + shrink-on-load resize to a shortest edge, single-threaded, as the pipeline's decode
// stage does it. Prints one JSON line: {"images": n, "seconds": s, "images_per_s": r}.
// SHORT_EDGE "floor": only libjpeg's entropy decoding plus a 1/8-scale IDCT (vips jpegload
// shrink=8), the least work any decoder must do per JPEG: the ceiling for every peer.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <vips/vips.h>

#include "capforge/image.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: capforge-bench-decode SHORT_EDGE REPEATS FILE...\n");
    return 2;
  }
  bool floor = std::string(argv[1]) == "floor";
  int edge = floor ? 0 : std::atoi(argv[1]), repeats = std::atoi(argv[2]);
  std::vector<std::string> files;
  for (int i = 3; i < argc; ++i) {
    std::ifstream f(argv[i], std::ios::binary);
    files.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  capforge::DecodeParams p;
  p.short_edge = edge;
  capforge::DecodedImage img;
  size_t checksum = 0, n = 0;
  std::string err = capforge::decode_image(files[0], p, img);  // warm-up, initialises libvips
  if (!err.empty()) {
    std::fprintf(stderr, "decode failed: %s\n", err.c_str());
    return 1;
  }
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < repeats; ++r)
    for (auto& bytes : files) {
      if (floor) {
        VipsImage* im = nullptr;
        size_t size = 0;
        if (vips_jpegload_buffer((void*)bytes.data(), bytes.size(), &im, "shrink", 8, nullptr)) return 1;
        g_free(vips_image_write_to_memory(im, &size));
        g_object_unref(im);
        checksum += size;
      } else {
        capforge::decode_image(bytes, p, img);
        checksum += img.pixels.rgb.size();
      }
      ++n;
    }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("{\"images\": %zu, \"seconds\": %.4f, \"images_per_s\": %.2f, \"bytes_out\": %zu}\n", n, s,
              n / s, checksum);
  return 0;
}
