// check_mmproj on broken projectors libmtmd would abort or crash on (bad hyper-parameters, tensors of
// the wrong shape or type, missing block tensors, a projector type the tensors do not fit): each is a
// std::runtime_error naming the file and the problem. The fixture, a legacy LLaVA layout (ffn_up and
// ffn_down swapped) and an idefics3 (SmolVLM) layout still pass.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "ggml.h"
#include "gguf.h"
#include "models/vlm/model.h"
#include "support/clip_fixture.h"
#include "support/fixtures.h"

namespace capforge {

namespace {

constexpr int kTextEmbd = 40;  // the fixture: E 64, 4 heads, ffn 128, image 32, patch 8, mm 64 -> 48 -> 40

struct Edit {  // a tensor replaced by zeros of this type and shape, added, or (ne empty) removed
  std::string name;
  ggml_type type = GGML_TYPE_F32;
  std::vector<int64_t> ne;
};

struct MmprojChecks : ::testing::Test {
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    test::ClipFixture(test::ClipFixtureSpec{}).save_mmproj(base(), kTextEmbd);
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string base() { return *dir_ / "mmproj.gguf"; }

  // A copy of the fixture with `keys` applied to its metadata and `edits` to its tensors.
  static std::string mutant(const std::string& name, const std::function<void(gguf_context*)>& keys,
                            const std::vector<Edit>& edits = {}) {
    ggml_context* data = nullptr;
    gguf_context* src = gguf_init_from_file(base().c_str(), {false, &data});
    EXPECT_TRUE(src);
    gguf_context* out = gguf_init_empty();
    gguf_set_kv(out, src);
    if (keys) keys(out);
    size_t bytes = ggml_tensor_overhead() * (edits.size() + 1);
    for (const Edit& e : edits) {
      int64_t n = 1;
      for (int64_t d : e.ne) n *= d;
      bytes += ggml_row_size(e.type, n) + 64;
    }
    ggml_context* extra = ggml_init({bytes, nullptr, false});
    auto make = [&](const Edit& e) {
      ggml_tensor* t = ggml_new_tensor(extra, e.type, (int)e.ne.size(), e.ne.data());
      ggml_set_name(t, e.name.c_str());
      std::memset(t->data, 0, ggml_nbytes(t));
      gguf_add_tensor(out, t);
    };
    std::vector<bool> used(edits.size());
    for (int64_t i = 0; i < gguf_get_n_tensors(src); ++i) {
      const std::string n = gguf_get_tensor_name(src, i);
      size_t j = 0;
      while (j < edits.size() && edits[j].name != n) ++j;
      if (j == edits.size())
        gguf_add_tensor(out, ggml_get_tensor(data, n.c_str()));
      else if (used[j] = true; !edits[j].ne.empty())
        make(edits[j]);
    }
    for (size_t j = 0; j < edits.size(); ++j)
      if (!used[j] && !edits[j].ne.empty()) make(edits[j]);
    const std::string path = *dir_ / (name + ".gguf");
    EXPECT_TRUE(gguf_write_to_file(out, path.c_str(), false));
    gguf_free(out), gguf_free(src), ggml_free(data), ggml_free(extra);
    return path;
  }

  // check_mmproj's error for `path` ("" when it passes)
  static std::string error(const std::string& path) {
    try {
      vlm::check_mmproj(path, kTextEmbd);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "";
  }

  // the mutant is refused with a message naming the file and containing each of `words`
  static void refused(const std::string& path, const std::vector<std::string>& words) {
    const std::string e = error(path);
    ASSERT_FALSE(e.empty()) << path << " passed";
    EXPECT_NE(e.find(path), std::string::npos) << e;
    for (const std::string& w : words)
      EXPECT_NE(e.find(w), std::string::npos) << "'" << w << "' not in: " << e;
  }

  static test::TempDir* dir_;
};
test::TempDir* MmprojChecks::dir_ = nullptr;

auto set_u32(const char* key, uint32_t v) {
  return [=](gguf_context* g) { gguf_set_val_u32(g, key, v); };
}

}  // namespace

TEST_F(MmprojChecks, ValidLayoutsPass) {
  EXPECT_EQ(error(base()), "");
  // legacy LLaVA-1.5 files name fc1 ffn_down and fc2 ffn_up (libmtmd swaps them back)
  std::vector<Edit> swapped;
  for (int i = 0; i < 2; ++i) {
    const std::string b = "v.blk." + std::to_string(i) + ".";
    swapped.push_back({b + "ffn_up.weight", GGML_TYPE_F16, {128, 64}});
    swapped.push_back({b + "ffn_up.bias", GGML_TYPE_F32, {64}});
    swapped.push_back({b + "ffn_down.weight", GGML_TYPE_F16, {64, 128}});
    swapped.push_back({b + "ffn_down.bias", GGML_TYPE_F32, {128}});
  }
  swapped.push_back({"v.position_embd.weight", GGML_TYPE_F16, {64, 17}});  // f16, as legacy files have it
  EXPECT_EQ(error(mutant("legacy", nullptr, swapped)), "");
  // SmolVLM's idefics3 projector: pixel shuffle by 2, then one matrix; positions without a class token
  const std::vector<Edit> idefics3 = {{"mm.0.weight"},
                                      {"mm.0.bias"},
                                      {"mm.2.weight"},
                                      {"mm.2.bias"},
                                      {"v.class_embd"},
                                      {"v.position_embd.weight", GGML_TYPE_F32, {64, 16}},
                                      {"mm.model.fc.weight", GGML_TYPE_F16, {64 * 4, kTextEmbd}}};
  auto as_idefics3 = [](uint32_t scale) {
    return [=](gguf_context* g) {
      gguf_set_val_str(g, "clip.projector_type", "idefics3");
      gguf_set_val_u32(g, "clip.vision.projector.scale_factor", scale);
    };
  };
  EXPECT_EQ(error(mutant("idefics3", as_idefics3(2), idefics3)), "");
  refused(mutant("idefics3-scale1", as_idefics3(1), idefics3), {"scale_factor must be from 2"});
  refused(mutant("idefics3-scale4", as_idefics3(4), idefics3), {"mm.model.fc.weight has shape [256, 40]"});
}

TEST_F(MmprojChecks, PatchAndImageSize) {
  refused(mutant("patch64", set_u32("clip.vision.patch_size", 64)),
          {"clip.vision.image_size (32) must be at least clip.vision.patch_size (64)"});
  // a patch size the kernel does not have
  refused(mutant("patch3", set_u32("clip.vision.patch_size", 3)), {"v.patch_embd.weight", "[3, 3, 3, 64]"});
  for (uint32_t s : {0u, 7u})
    refused(mutant("image" + std::to_string(s), set_u32("clip.vision.image_size", s)),
            {"clip.vision.image_size (" + std::to_string(s) + ") must be at least"});
  // not a multiple of the patch size: clip.cpp floors it (SigLIP's 384 / 14 in SmolVLM, Granite Vision)
  EXPECT_EQ(error(mutant("image36", set_u32("clip.vision.image_size", 36))), "");
  // a multiple of the patch size, but more patches than position embeddings
  refused(mutant("image40", set_u32("clip.vision.image_size", 40)), {"v.position_embd.weight", "[64, 26]"});
}

TEST_F(MmprojChecks, HeadCountAndWidth) {
  refused(mutant("heads0", set_u32("clip.vision.attention.head_count", 0)), {"head_count must be > 0"});
  for (uint32_t h : {3u, 128u})
    refused(mutant("heads" + std::to_string(h), set_u32("clip.vision.attention.head_count", h)),
            {"head_count (" + std::to_string(h) + ") must divide clip.vision.embedding_length (64)"});
  refused(mutant("embd32", set_u32("clip.vision.embedding_length", 32)), {"v.patch_embd.weight", "32"});
}

TEST_F(MmprojChecks, LayerNormEpsilon) {
  for (float eps : {std::nanf(""), -1e-5f, 0.0f})
    refused(mutant("eps",
                   [=](gguf_context* g) {
                     gguf_set_val_f32(g, "clip.vision.attention.layer_norm_epsilon", eps);
                   }),
            {"layer_norm_epsilon must be a finite number > 0"});
}

TEST_F(MmprojChecks, ProjectorTypeTheTensorsDoNotFit) {
  refused(mutant("qwen2vl",
                 [](gguf_context* g) { gguf_set_val_str(g, "clip.projector_type", "qwen2vl_merger"); }),
          {"v.patch_embd.weight.1", "qwen2vl_merger"});
}

TEST_F(MmprojChecks, TensorShapes) {
  const std::vector<std::pair<Edit, std::string>> cases = {
      {{"mm.0.weight", GGML_TYPE_F32, {64, 100}}, "mm.0.bias has shape [48], expected [100]"},
      {{"mm.2.weight", GGML_TYPE_F32, {100, kTextEmbd}},
       "mm.2.weight has shape [100, 40], expected [48, any]"},
      {{"v.patch_embd.weight", GGML_TYPE_F32, {8, 8, 3, 32}}, "v.patch_embd.weight has shape [8, 8, 3, 32]"},
      {{"v.position_embd.weight", GGML_TYPE_F32, {64, 5}}, "v.position_embd.weight has shape [64, 5]"},
      {{"v.blk.0.attn_q.weight", GGML_TYPE_F32, {64, 32}}, "v.blk.0.attn_q.weight has shape [64, 32]"},
      {{"v.blk.0.attn_q.weight", GGML_TYPE_F32, {64, 64, 2}}, "v.blk.0.attn_q.weight has shape [64, 64, 2]"},
      {{"v.blk.0.ffn_up.weight", GGML_TYPE_F32, {64, 100}}, "v.blk.0.ffn_up.weight is [64, 100]"},
      {{"v.blk.1.ln2.bias", GGML_TYPE_F32, {32}}, "v.blk.1.ln2.bias has shape [32], expected [64]"},
  };
  int i = 0;
  for (const auto& [edit, words] : cases)
    refused(mutant("shape" + std::to_string(i++), nullptr, {edit}), {words});
}

TEST_F(MmprojChecks, TensorTypes) {
  const std::vector<std::pair<Edit, std::string>> cases = {
      {{"v.blk.0.ln1.weight", GGML_TYPE_F16, {64}}, "v.blk.0.ln1.weight has type f16, expected f32"},
      {{"v.blk.0.attn_q.bias", GGML_TYPE_I32, {64}}, "v.blk.0.attn_q.bias has type i32, expected f32"},
      {{"v.blk.0.attn_q.weight", GGML_TYPE_I32, {64, 64}}, "v.blk.0.attn_q.weight has type i32"},
      {{"v.blk.1.attn_out.weight", GGML_TYPE_F64, {64, 64}}, "v.blk.1.attn_out.weight has type f64"},
      {{"mm.2.weight", GGML_TYPE_I8, {48, kTextEmbd}}, "mm.2.weight has type i8"},
  };
  int i = 0;
  for (const auto& [edit, words] : cases)
    refused(mutant("type" + std::to_string(i++), nullptr, {edit}), {words});
}

TEST_F(MmprojChecks, MissingBlockTensors) {
  for (const char* t : {"v.blk.1.attn_q.weight", "v.blk.0.attn_v.weight", "v.blk.1.ffn_up.weight"})
    refused(mutant("missing", nullptr, {{t}}), {std::string("required tensor ") + t + " is missing"});
}

}  // namespace capforge
