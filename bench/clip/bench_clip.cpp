// capforge side of the CLIP benchmark: image and text embeddings/s for one model and dtype.
//   capforge-bench-clip MODEL_DIR DTYPE THREADS IMAGES TEXTS [--save FILE] [--ids FILE] [--pixels FILE]
// Images are deterministic noise at the model's input size; texts are caption-like strings.
// Prints one JSON line; --save writes the embeddings (f32, images then texts, for cosine against
// f32 and against the peer), --ids the token ids of the texts and --pixels the images as raw
// 8-bit RGB (so the peer runs exactly the same inputs).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>

#include "capforge/clip.h"
#include "core/omp_waits.h"

using namespace capforge;

int main(int argc, char** argv) {
  capforge::exec_with_short_waits(argv);  // as the CLI runs its model commands
  if (argc < 6) {
    std::fprintf(stderr,
                 "usage: capforge-bench-clip MODEL_DIR DTYPE THREADS IMAGES TEXTS [--save FILE] [--ids FILE] "
                 "[--pixels FILE]\n");
    return 2;
  }
  ClipParams p;
  p.dtype = argv[2];
  p.threads = std::atoi(argv[3]);
  int n_img = std::atoi(argv[4]), n_txt = std::atoi(argv[5]);
  p.image_batch = getenv("IMAGE_BATCH") ? std::atoi(getenv("IMAGE_BATCH")) : 16;
  p.text_batch = getenv("TEXT_BATCH") ? std::atoi(getenv("TEXT_BATCH")) : 64;
  std::string save, ids_out, pixels_out;
  for (int i = 6; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--save") save = argv[i + 1];
    if (std::string(argv[i]) == "--ids") ids_out = argv[i + 1];
    if (std::string(argv[i]) == "--pixels") pixels_out = argv[i + 1];
  }
  auto model = load_clip(argv[1], p);
  ClipContext ctx(model);
  const int S = ctx.image_size();
  std::mt19937 rng(7);
  std::vector<Image> imgs((size_t)n_img);
  for (auto& im : imgs) {
    im.width = im.height = S;
    im.rgb.resize((size_t)S * S * 3);
    for (auto& v : im.rgb) v = (uint8_t)(rng() & 255);
  }
  if (!pixels_out.empty()) {
    std::ofstream f(pixels_out, std::ios::binary);
    for (auto& im : imgs) f.write((const char*)im.rgb.data(), (std::streamsize)im.rgb.size());
  }
  std::vector<const Image*> ptrs;
  for (auto& im : imgs) ptrs.push_back(&im);
  const char* words[] = {"a",    "photo", "of",    "the",  "red",   "dog",    "sitting",
                         "on",   "green", "grass", "near", "small", "wooden", "house",
                         "with", "blue",  "sky",   "and",  "white", "clouds"};
  std::vector<std::string> texts;
  for (int i = 0; i < n_txt; ++i) {
    std::string t;
    for (int w = 0, n = 8 + (int)(rng() % 10); w < n; ++w) t += std::string(w ? " " : "") + words[rng() % 20];
    texts.push_back(t);
  }
  if (!ids_out.empty()) {
    std::ofstream f(ids_out);
    f << "[";
    for (size_t i = 0; i < texts.size(); ++i) {
      auto ids = ctx.tokenize(texts[i]);
      f << (i ? "," : "") << "[";
      for (size_t k = 0; k < ids.size(); ++k) f << (k ? "," : "") << ids[k];
      f << "]";
    }
    f << "]";
  }
  if (!ptrs.empty()) ctx.embed_images({ptrs[0]});  // warm-up
  if (!texts.empty()) ctx.embed_texts({texts[0]});
  auto t0 = std::chrono::steady_clock::now();
  auto ie = ctx.embed_images(ptrs);
  auto t1 = std::chrono::steady_clock::now();
  auto te = ctx.embed_texts(texts);
  auto t2 = std::chrono::steady_clock::now();
  double si = std::chrono::duration<double>(t1 - t0).count(),
         st = std::chrono::duration<double>(t2 - t1).count();
  std::printf("{\"images_per_s\": %.3f, \"texts_per_s\": %.3f, \"image_s\": %.3f, \"text_s\": %.3f}\n",
              n_img / si, n_txt / st, si, st);
  if (!save.empty()) {
    std::ofstream f(save, std::ios::binary);
    for (auto* v : {&ie, &te})
      for (auto& e : *v) f.write((const char*)e.data(), (std::streamsize)(e.size() * 4));
  }
  return 0;
}
