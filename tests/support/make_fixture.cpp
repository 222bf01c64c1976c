// capforge-make-fixture: writes random-weight models in published formats, for tests and
// benchmarks. Shapes: tiny (tests), vit-b-32 and vit-l-14 (OpenAI CLIP sizes, for speed).
//   capforge-make-fixture clip OUT_DIR [--shape S] [--dtype F32|F16|BF16] [--mmproj PATH] [--seed N]
//                         [--openai-vocab FILE]   (OpenAI's real vocabulary instead of the tiny one)
#include <cstdio>
#include <cstring>
#include <string>

#include "support/clip_fixture.h"

int main(int argc, char** argv) {
  if (argc < 3 || std::strcmp(argv[1], "clip") != 0) {
    std::fprintf(stderr,
                 "usage: %s clip OUT_DIR [--shape tiny|vit-b-32|vit-l-14] [--dtype F32|F16|BF16] "
                 "[--mmproj PATH] [--seed N] [--openai-vocab FILE]\n",
                 argv[0]);
    return 2;
  }
  capforge::test::ClipFixtureSpec s;
  std::string shape = "tiny", mmproj;
  for (int i = 3; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--shape")
      shape = v;
    else if (k == "--dtype")
      s.dtype = v;
    else if (k == "--mmproj")
      mmproj = v;
    else if (k == "--seed")
      s.seed = (uint32_t)std::stoul(v);
    else if (k == "--openai-vocab")
      s.openai_vocab = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  auto text = [&](int d, int h, int l) {
    s.text_hidden = d, s.text_heads = h, s.text_layers = l, s.text_ffn = 4 * d;
  };
  auto vision = [&](int d, int h, int l, int img, int patch) {
    s.vision_hidden = d, s.vision_heads = h, s.vision_layers = l, s.vision_ffn = 4 * d;
    s.image_size = img, s.patch_size = patch;
  };
  if (shape == "vit-b-32") {
    text(512, 8, 12), vision(768, 12, 12, 224, 32), s.projection_dim = 512, s.scale = 0.02f,
                                                    s.vocab_rows = 49408;
  } else if (shape == "vit-l-14") {
    text(768, 12, 12), vision(1024, 16, 24, 224, 14), s.projection_dim = 768, s.scale = 0.02f,
                                                      s.vocab_rows = 49408;
  } else if (shape != "tiny") {
    std::fprintf(stderr, "unknown shape %s\n", shape.c_str());
    return 2;
  }
  capforge::test::ClipFixture f(s);
  f.save_hf(argv[2]);
  if (!mmproj.empty()) f.save_mmproj(mmproj);
  std::printf("%s\n", argv[2]);
  return 0;
}
