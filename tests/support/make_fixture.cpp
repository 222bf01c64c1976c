// capforge-make-fixture: writes random-weight models in published formats, for tests and
// benchmarks.
//   capforge-make-fixture clip OUT_DIR [--shape tiny|vit-b-32|vit-l-14] [--dtype F32|F16|BF16]
//                         [--mmproj PATH] [--seed N] [--openai-vocab FILE]
//   capforge-make-fixture siglip OUT_DIR [--shape tiny|base] [--siglip2 1] [--dtype F32|F16|BF16] [--seed N]
//   capforge-make-fixture open_clip OUT_DIR [--shape rn-tiny|rn50x64|vit-tiny|vit-l-14]
//                         [--quick-gelu|--no-quick-gelu] [--no-bn-counters] [--dtype F32|F16|BF16] [--seed N]
//   capforge-make-fixture blip OUT_DIR [--shape tiny|base|large] [--dtype F32|F16|BF16] [--seed N]
//                         [--shards N] [--scale GAIN] [--tie-decoder 1] (broken variants: [--drop NAME]
//                         [--misshape NAME] [--no-dec 1] [--config-patch JSON])
//   capforge-make-fixture vlm TEXT.gguf MMPROJ.gguf [--shape tiny|smolvlm-256m|llava-1.5-lite] [--vocab
//   spm|bpe]
//                         [--dtype F32|F16] [--seed N] [--layers N] (shape llava-1.5-7b too)
//   capforge-make-fixture quantize IN.gguf OUT.gguf TYPE   (Q8_0, Q4_K_M, F16...: quantize_fixture.cpp)
//   capforge-make-fixture t5 OUT.gguf [--variant v1_0|v1_1] [--shape tiny|base] [--dtype f32|f16|q8_0]
//                         [--seed N] [--vocab-size N] [--eos-boost X]
//   capforge-make-fixture llama-text OUT.gguf [--vocab NAME|PATH] [--shape tiny|smollm-135m]
//                         [--dtype f32|f16] [--seed N] [--eos-boost X] [--chat-template JINJA]
// t5 shapes: tiny (tests) and base (t5-base's sizes, 32128 tokens); v1_0 is T5 (ReLU, tied LM
// head), v1_1 Flan-T5 (gated GELU, untied). Q8_0 is written directly (ggml_quantize_chunk).
// llama-text: a decoder-only llama with a real tokenizer (llama.cpp's models/ggml-vocab-NAME.gguf,
// default llama-bpe) and a chatml chat template; shapes tiny and smollm-135m (SmolLM2-135M's sizes).
// clip shapes: tiny (tests), vit-b-32 and vit-l-14 (OpenAI CLIP sizes).
// open_clip shapes (hub export layout, OpenAI state_dict names, no vocabulary): rn-tiny and
// vit-tiny (tests), rn50x64 and vit-l-14 (OpenAI sizes).
// blip shapes (BlipForConditionalGeneration as published): tiny (tests), base and large
// (Salesforce/blip-image-captioning-base / -large sizes, BERT-sized vocab.txt).
// vlm shapes: tiny (tests), smolvlm-256m (a SmolLM2-135M-sized llama + a ViT-B/32-sized CLIP tower with an
// MLP projector), llava-1.5-lite (LLaVA-1.5's ViT-L/14-336 tower and MLP projector on that same small
// language model).
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>

#include "support/blip_fixture.h"
#include "support/clip_fixture.h"
#include "support/open_clip_fixture.h"
#include "support/siglip_fixture.h"
#include "support/t5_fixture.h"
#include "support/vlm_fixture.h"

namespace {

int usage(const char* argv0) {
  std::fprintf(
      stderr,
      "usage: %s clip OUT_DIR [--shape tiny|vit-b-32|vit-l-14] [--dtype F32|F16|BF16] [--mmproj PATH] "
      "[--seed N] [--openai-vocab FILE]\n"
      "       %s open_clip OUT_DIR [--shape rn-tiny|rn50x64|vit-tiny|vit-l-14] "
      "[--quick-gelu|--no-quick-gelu]\n"
      "                 [--no-bn-counters] [--dtype F32|F16|BF16] [--seed N]\n"
      "       %s siglip OUT_DIR [--shape tiny|base] [--siglip2 1] [--dtype F32|F16|BF16] [--seed N]\n"
      "       %s blip OUT_DIR [--shape tiny|base|large] [--dtype F32|F16|BF16] [--seed N] [--shards N]\n"
      "                 [--scale GAIN] [--tie-decoder 1] [--drop NAME] [--misshape NAME] [--no-dec 1] "
      "[--config-patch JSON]\n"
      "       %s vlm TEXT.gguf MMPROJ.gguf [--shape tiny|smolvlm-256m|llava-1.5-lite] [--vocab spm|bpe] "
      "[--dtype F32|F16] [--seed N] [--scale GAIN] [--layers N] (shape llava-1.5-7b too)\n"
      "       %s quantize IN.gguf OUT.gguf F32|F16|BF16|Q8_0|Q4_0|Q4_K_M|Q5_K_M|Q6_K\n"
      "       %s t5 OUT.gguf [--variant v1_0|v1_1] [--shape tiny|base] [--dtype f32|f16|q8_0] [--seed N]\n"
      "                 [--vocab-size N] [--eos-boost X]\n"
      "       %s llama-text OUT.gguf [--vocab NAME|PATH] [--shape tiny|smollm-135m] [--dtype f32|f16] "
      "[--seed N]\n"
      "                 [--eos-boost X] [--chat-template JINJA]\n",
      argv0, argv0, argv0, argv0, argv0, argv0, argv0, argv0);
  return 2;
}

// --key value pairs from argv[first...]; false on a dangling key.
bool options(int argc, char** argv, int first, std::map<std::string, std::string>& out) {
  for (int i = first; i < argc; i += 2) {
    if (i + 1 >= argc) return false;
    out[argv[i]] = argv[i + 1];
  }
  return true;
}

int clip(int argc, char** argv) {
  std::map<std::string, std::string> o;
  if (argc < 3 || !options(argc, argv, 3, o)) return usage(argv[0]);
  capforge::test::ClipFixtureSpec s;
  std::string shape = o.count("--shape") ? o["--shape"] : "tiny";
  if (o.count("--dtype")) s.dtype = o["--dtype"];
  if (o.count("--seed")) s.seed = (uint32_t)std::stoul(o["--seed"]);
  if (o.count("--openai-vocab")) s.openai_vocab = o["--openai-vocab"];
  auto text = [&](int d, int h, int l) {
    s.text_hidden = d, s.text_heads = h, s.text_layers = l, s.text_ffn = 4 * d;
  };
  auto vision = [&](int d, int h, int l, int img, int patch) {
    s.vision_hidden = d, s.vision_heads = h, s.vision_layers = l, s.vision_ffn = 4 * d;
    s.image_size = img, s.patch_size = patch;
  };
  if (shape == "vit-b-32") {
    text(512, 8, 12), vision(768, 12, 12, 224, 32);
    s.projection_dim = 512, s.scale = 0.02f, s.vocab_rows = 49408;
  } else if (shape == "vit-l-14") {
    text(768, 12, 12), vision(1024, 16, 24, 224, 14);
    s.projection_dim = 768, s.scale = 0.02f, s.vocab_rows = 49408;
  } else if (shape != "tiny") {
    std::fprintf(stderr, "unknown shape %s\n", shape.c_str());
    return 2;
  }
  capforge::test::ClipFixture f(s);
  f.save_hf(argv[2]);
  if (o.count("--mmproj")) f.save_mmproj(o["--mmproj"]);
  std::printf("%s\n", argv[2]);
  return 0;
}

// siglip OUT_DIR [--shape tiny|base] [--siglip2 1] [--dtype F32|F16|BF16] [--seed N]
int siglip(int argc, char** argv) {
  std::map<std::string, std::string> o;
  if (argc < 3 || !options(argc, argv, 3, o)) return usage(argv[0]);
  capforge::test::SiglipFixtureSpec s;
  std::string shape = o.count("--shape") ? o["--shape"] : "tiny";
  if (o.count("--dtype")) s.dtype = o["--dtype"];
  if (o.count("--seed")) s.seed = (uint32_t)std::stoul(o["--seed"]);
  s.siglip2 = o.count("--siglip2") && o["--siglip2"] != "0";
  if (shape == "base") {  // google/siglip-base-patch16-224
    s.text_hidden = s.vision_hidden = 768, s.text_heads = s.vision_heads = 12;
    s.text_layers = s.vision_layers = 12, s.text_ffn = s.vision_ffn = 3072;
    s.image_size = 224, s.patch_size = 16, s.vocab_rows = 32000, s.scale = 0.02f;
  } else if (shape != "tiny") {
    std::fprintf(stderr, "unknown shape %s\n", shape.c_str());
    return 2;
  }
  capforge::test::write_siglip_fixture(s, argv[2]);
  std::printf("%s\n", argv[2]);
  return 0;
}

// Flags (--quick-gelu, --no-quick-gelu, --no-bn-counters) and --key value options.
int open_clip(int argc, char** argv) {
  if (argc < 3) return usage(argv[0]);
  std::map<std::string, std::string> o;
  bool quick = true, counters = true;
  for (int i = 3; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick-gelu" || a == "--no-quick-gelu")
      quick = a == "--quick-gelu";
    else if (a == "--no-bn-counters")
      counters = false;
    else if (i + 1 < argc)
      o[a] = argv[++i];
    else
      return usage(argv[0]);
  }
  capforge::test::OpenClipFixtureSpec s;
  try {
    s = capforge::test::open_clip_shape(o.count("--shape") ? o["--shape"] : "rn-tiny");
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  s.quick_gelu = quick, s.bn_counters = counters;
  if (o.count("--dtype")) s.dtype = o["--dtype"];
  if (o.count("--seed")) s.seed = (uint32_t)std::stoul(o["--seed"]);
  capforge::test::save_open_clip(s, argv[2]);
  std::printf("%s\n", argv[2]);
  return 0;
}

// blip OUT_DIR [--shape ...] [--dtype ...] [--seed N] [--shards N] [...]: see the header comment.
int blip(int argc, char** argv) {
  std::map<std::string, std::string> o;
  if (argc < 3 || !options(argc, argv, 3, o)) return usage(argv[0]);
  capforge::test::BlipFixtureSpec s;
  try {
    s = capforge::test::BlipFixtureSpec::shape(o.count("--shape") ? o["--shape"] : "tiny");
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  if (o.count("--dtype")) s.dtype = o["--dtype"];
  if (o.count("--seed")) s.seed = (uint32_t)std::stoul(o["--seed"]);
  if (o.count("--shards")) s.shards = std::stoi(o["--shards"]);
  if (o.count("--scale")) s.scale = std::stof(o["--scale"]);
  if (o.count("--tie-decoder")) s.tie_decoder = o["--tie-decoder"] != "0";
  if (o.count("--drop")) s.drop_tensor = o["--drop"];
  if (o.count("--misshape")) s.misshape_tensor = o["--misshape"];
  if (o.count("--no-dec")) s.vocab_without_dec = o["--no-dec"] != "0";
  if (o.count("--config-patch")) s.config_patch = o["--config-patch"];
  if (s.dtype != "F32" && s.dtype != "F16" && s.dtype != "BF16") return usage(argv[0]);
  try {
    capforge::test::write_blip_fixture(s, argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  std::printf("%s\n", argv[2]);
  return 0;
}

int vlm(int argc, char** argv) {
  std::map<std::string, std::string> o;
  if (argc < 4 || !options(argc, argv, 4, o)) return usage(argv[0]);
  capforge::test::VlmFixtureSpec s;
  std::string shape = o.count("--shape") ? o["--shape"] : "tiny";
  std::string vocab = o.count("--vocab") ? o["--vocab"] : "bpe";
  s.vocab_gguf = capforge::test::llama_vocab_dir() + "/ggml-vocab-llama-" + vocab + ".gguf";
  if (o.count("--dtype")) s.dtype = o["--dtype"];
  if (o.count("--seed")) s.seed = (uint32_t)std::stoul(o["--seed"]);
  if (o.count("--hidden")) s.hidden = std::stoi(o["--hidden"]);
  if (o.count("--eos-boost")) s.eos_boost = std::stof(o["--eos-boost"]);
  if (shape == "smolvlm-256m") {
    s.hidden = 576, s.layers = 30, s.heads = 9, s.kv_heads = 3, s.ffn = 1536, s.scale = 0.03f;
    auto& v = s.vision;
    v.vision_hidden = 768, v.vision_heads = 12, v.vision_layers = 12, v.vision_ffn = 3072;
    v.image_size = 224, v.patch_size = 32, v.scale = 0.02f;
  } else if (shape == "llava-1.5-lite") {  // LLaVA-1.5's CLIP ViT-L/14-336 tower (577 image tokens) on the
    // smolvlm-256m language model: the vision side as users run it, the 7B's language model scaled down
    s.hidden = 576, s.layers = 30, s.heads = 9, s.kv_heads = 3, s.ffn = 1536, s.scale = 0.03f;
    auto& v = s.vision;
    v.vision_hidden = 1024, v.vision_heads = 16, v.vision_layers = 24, v.vision_ffn = 4096;
    v.image_size = 336, v.patch_size = 14, v.scale = 0.02f;
  } else if (shape == "llava-1.5-7b") {  // LLaVA-1.5-7B: LLaMA-7B's sizes on that same ViT-L/14-336 tower
    s.hidden = 4096, s.layers = 32, s.heads = 32, s.kv_heads = 32, s.ffn = 11008, s.scale = 0.015f;
    auto& v = s.vision;
    v.vision_hidden = 1024, v.vision_heads = 16, v.vision_layers = 24, v.vision_ffn = 4096;
    v.image_size = 336, v.patch_size = 14, v.scale = 0.02f;
  } else if (shape != "tiny") {
    std::fprintf(stderr, "unknown shape %s\n", shape.c_str());
    return 2;
  }
  if (o.count("--scale"))
    s.scale = std::stof(o["--scale"]);  // the language model's weights, over the shape's
  if (o.count("--layers")) s.layers = std::stoi(o["--layers"]);  // fewer blocks than the shape's
  capforge::test::write_vlm_fixture(s, argv[2], argv[3]);
  std::printf("%s %s\n", argv[2], argv[3]);
  return 0;
}

std::string upper(std::string s) {
  for (auto& c : s) c = (char)std::toupper((unsigned char)c);
  return s;
}

// t5 OUT.gguf [--variant v1_0|v1_1] [--shape tiny|base] [--dtype f32|f16|q8_0] [--seed N] [...]
int t5(int argc, char** argv) {
  std::map<std::string, std::string> o;
  if (argc < 3 || !options(argc, argv, 3, o)) return usage(argv[0]);
  for (auto& [k, v] : o)
    if (k != "--variant" && k != "--shape" && k != "--dtype" && k != "--seed" && k != "--vocab-size" &&
        k != "--eos-boost") {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  try {
    auto s = capforge::test::T5FixtureSpec::shape(o.count("--shape") ? o["--shape"] : "tiny",
                                                  o.count("--variant") ? o["--variant"] : "v1_1");
    if (o.count("--variant")) s.variant = o["--variant"];
    if (o.count("--dtype")) s.dtype = upper(o["--dtype"]);
    if (o.count("--seed")) s.seed = (uint32_t)std::stoul(o["--seed"]);
    if (o.count("--vocab-size")) s.vocab_size = std::stoi(o["--vocab-size"]);
    if (o.count("--eos-boost")) s.eos_boost = std::stof(o["--eos-boost"]);
    capforge::test::write_t5_fixture(s, argv[2]);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  std::printf("%s\n", argv[2]);
  return 0;
}

// llama-text OUT.gguf [--vocab NAME|PATH] [--shape tiny|smollm-135m] [--dtype f32|f16] [--seed N]
int llama_text(int argc, char** argv) {
  std::map<std::string, std::string> o;
  if (argc < 3 || !options(argc, argv, 3, o)) return usage(argv[0]);
  capforge::test::LlamaTextSpec s;
  std::string vocab = o.count("--vocab") ? o["--vocab"] : "llama-bpe";
  s.vocab_gguf = vocab.find('/') != std::string::npos || vocab.ends_with(".gguf")
                     ? vocab
                     : capforge::test::llama_vocab_dir() + "/ggml-vocab-" + vocab + ".gguf";
  if (!std::filesystem::exists(s.vocab_gguf)) {
    std::fprintf(stderr, "no vocabulary %s\n", s.vocab_gguf.c_str());
    return 2;
  }
  std::string shape = o.count("--shape") ? o["--shape"] : "tiny";
  if (shape == "smollm-135m") {
    s.hidden = 576, s.layers = 30, s.heads = 9, s.kv_heads = 3, s.ffn = 1536, s.scale = 0.03f;
  } else if (shape != "tiny") {
    std::fprintf(stderr, "unknown shape %s\n", shape.c_str());
    return 2;
  }
  if (o.count("--dtype")) s.dtype = upper(o["--dtype"]);
  if (s.dtype != "F32" && s.dtype != "F16") return usage(argv[0]);
  if (o.count("--seed")) s.seed = (uint32_t)std::stoul(o["--seed"]);
  if (o.count("--eos-boost")) s.eos_boost = std::stof(o["--eos-boost"]);
  if (o.count("--chat-template")) s.chat_template = o["--chat-template"];
  s.name = "capforge random llama text fixture";
  try {
    capforge::test::write_llama_text_fixture(s, argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  std::printf("%s\n", argv[2]);
  return 0;
}

}  // namespace

namespace capforge::test {
int quantize_fixture(int argc, char** argv);  // quantize_fixture.cpp
}

int main(int argc, char** argv) {
  std::string kind = argc > 1 ? argv[1] : "";
  // `KIND --help` (or -h anywhere) prints the usage instead of writing a fixture named "--help"
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      usage(argv[0]);
      return 0;
    }
  if (kind == "quantize") return capforge::test::quantize_fixture(argc, argv);
  if (kind == "clip") return clip(argc, argv);
  if (kind == "open_clip") return open_clip(argc, argv);
  if (kind == "vlm") return vlm(argc, argv);
  if (kind == "siglip") return siglip(argc, argv);
  if (kind == "blip") return blip(argc, argv);
  if (kind == "t5") return t5(argc, argv);
  if (kind == "llama-text") return llama_text(argc, argv);
  return usage(argv[0]);
}
