// Broken model files: every case is a clear error that names what is wrong, never a crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "capforge/clip.h"
#include "models/safetensors.h"
#include "support/clip_fixture.h"
#include "support/fixtures.h"
#include "support/open_clip_fixture.h"
#include "support/siglip_fixture.h"

namespace fs = std::filesystem;

namespace capforge {

namespace {

std::string load_error(const std::string& dir) {
  try {
    load_clip(dir);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

struct Broken : ::testing::Test {
  test::TempDir dir;
  test::ClipFixture fixture{test::ClipFixtureSpec{}};
  std::string model = dir / "m";
  void SetUp() override { fixture.save_hf(model); }
  void rewrite() { test::write_safetensors(model + "/model.safetensors", fixture.tensors, "F32"); }
};

}  // namespace

TEST_F(Broken, MissingTensor) {
  fixture.tensors.erase("vision_model.encoder.layers.1.mlp.fc2.bias");
  rewrite();
  auto e = load_error(model);
  EXPECT_NE(e.find("missing tensor 'vision_model.encoder.layers.1.mlp.fc2.bias'"), std::string::npos) << e;
}

TEST_F(Broken, ExtraTensor) {
  fixture.tensors["vision_model.head.weight"] = {{2, 2}, {1, 2, 3, 4}};
  rewrite();
  auto e = load_error(model);
  EXPECT_NE(e.find("unexpected tensor 'vision_model.head.weight'"), std::string::npos) << e;
}

TEST_F(Broken, PositionIdsBuffersAreAccepted) {
  fixture.tensors["text_model.embeddings.position_ids"] = {{1, 77}, std::vector<float>(77, 0)};
  rewrite();
  EXPECT_EQ(load_error(model), "");
}

TEST_F(Broken, WrongShape) {
  fixture.tensors["text_projection.weight"].shape = {16, 128};
  rewrite();
  auto e = load_error(model);
  EXPECT_NE(e.find("tensor 'text_projection.weight' has shape [16, 128]"), std::string::npos) << e;
}

TEST_F(Broken, TruncatedFile) {
  std::string bytes = test::read_file(model + "/model.safetensors");
  test::write_file(model + "/model.safetensors", bytes.substr(0, bytes.size() - 1000));
  auto e = load_error(model);
  EXPECT_NE(e.find("outside the"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
}

TEST_F(Broken, HeaderLengthBeyondTheFile) {
  std::string bytes = test::read_file(model + "/model.safetensors");
  uint64_t huge = bytes.size() + 10;
  std::memcpy(bytes.data(), &huge, 8);
  test::write_file(model + "/model.safetensors", bytes);
  auto e = load_error(model);
  EXPECT_NE(e.find("header length"), std::string::npos) << e;
  EXPECT_NE(e.find("past the end"), std::string::npos) << e;
}

TEST_F(Broken, ConfigFieldsAreNamed) {
  auto patch = [&](const std::string& from, const std::string& to) {
    std::string cfg = test::read_file(model + "/config.json");
    auto at = cfg.find(from);
    ASSERT_NE(at, std::string::npos);
    cfg.replace(at, from.size(), to);
    test::write_file(model + "/config.json", cfg);
  };
  patch("\"hidden_act\": \"quick_gelu\"", "\"hidden_act\": \"swish\"");
  EXPECT_NE(load_error(model).find("hidden_act 'swish' is not supported"), std::string::npos)
      << load_error(model);
  patch("\"hidden_act\": \"swish\"", "\"hidden_act\": \"quick_gelu\"");
  patch("\"model_type\": \"clip\"", "\"model_type\": \"bert\"");
  EXPECT_NE(load_error(model).find("model_type 'bert' is not supported (clip, siglip"), std::string::npos)
      << load_error(model);
  patch("\"model_type\": \"bert\"", "\"model_type\": \"siglip2\"");
  EXPECT_NE(load_error(model).find("NaFlex"), std::string::npos) << load_error(model);
  fs::remove(model + "/config.json");
  EXPECT_NE(load_error(model).find("has neither config.json"), std::string::npos) << load_error(model);
  EXPECT_NE(load_error(dir / "nowhere").find("is not a directory"), std::string::npos);
}

TEST_F(Broken, MissingTokenizerFiles) {
  fs::remove(model + "/merges.txt");
  EXPECT_NE(load_error(model).find("vocab.json and merges.txt"), std::string::npos);
}

TEST_F(Broken, AwkwardTextIsEmbeddedNotRejected) {
  ClipContext ctx(load_clip(model));
  auto e = ctx.embed_texts({"", "bad \xFF utf-8", std::string(10000, 'a'), "\t\n"});
  ASSERT_EQ(e.size(), 4u);
  for (auto& v : e) EXPECT_NEAR(clip_cosine(v, v), 1.0, 1e-4);
  EXPECT_EQ(ctx.tokenize(std::string(10000, 'a') + " b").size(), 77u);
}

// open_clip dirs: missing BatchNorm statistics, stage depths that disagree with the checkpoint, a
// pickle-only dir and options capforge does not implement each name the file, tensor or field.
TEST(BrokenOpenClip, EachFaultIsNamed) {
  test::TempDir dir;
  auto spec = test::open_clip_shape("rn-tiny");
  auto tensors = test::open_clip_tensors(spec);
  std::string m = dir / "rn";
  auto save = [&](const test::OpenClipFixtureSpec& s) {
    fs::remove_all(m);
    test::save_open_clip(s, m);
  };
  save(spec);
  EXPECT_EQ(load_error(m), "");
  tensors.erase("visual.layer2.0.bn2.running_var");
  test::write_safetensors(m + "/open_clip_model.safetensors", tensors, "F32");
  auto e = load_error(m);
  EXPECT_NE(e.find("missing tensor 'visual.layer2.0.bn2.running_var'"), std::string::npos) << e;

  save(spec);
  const std::string cfg_path = m + "/open_clip_config.json", cfg = test::read_file(cfg_path);
  auto patch = [&](auto edit) {
    auto j = nlohmann::json::parse(cfg);
    edit(j["model_cfg"]);
    test::write_file(cfg_path, j.dump(2));
  };
  patch([](nlohmann::json& mc) { mc["vision_cfg"]["layers"] = {1, 1, 1, 1}; });
  e = load_error(m);
  EXPECT_NE(e.find("layers[1]"), std::string::npos) << e;
  EXPECT_NE(e.find("visual.layer2.1"), std::string::npos) << e;
  patch([](nlohmann::json& mc) { mc["vision_cfg"]["timm_model_name"] = "vit_base_patch16_224"; });
  e = load_error(m);
  EXPECT_NE(e.find("'timm_model_name' is not supported"), std::string::npos) << e;
  EXPECT_NE(e.find("open_clip_config.json"), std::string::npos) << e;
  test::write_file(cfg_path, cfg);
  fs::rename(m + "/open_clip_model.safetensors", m + "/open_clip_pytorch_model.bin");
  e = load_error(m);
  EXPECT_NE(e.find("only open_clip_pytorch_model.bin, a pickle"), std::string::npos) << e;
  EXPECT_NE(e.find("safetensors"), std::string::npos) << e;
  fs::rename(m + "/open_clip_pytorch_model.bin", m + "/open_clip_model.safetensors");

  EXPECT_EQ(load_error(m), "");
}

// SigLIP dirs: a truncated or foreign tokenizer model, a tokenizer.json without the SentencePiece
// model, and a config that is not JSON each name the file.
TEST(BrokenSiglip, TokenizerAndConfigFaultsAreNamed) {
  test::TempDir dir;
  std::string m = dir / "sig";
  test::write_siglip_fixture({}, m);
  EXPECT_EQ(load_error(m), "");
  const std::string spm = test::read_file(m + "/spiece.model");
  for (size_t cut : {(size_t)100, (size_t)5000, spm.size() - 7}) {
    test::write_file(m + "/spiece.model", spm.substr(0, cut));
    auto e = load_error(m);
    EXPECT_NE(e.find("spiece.model: not a SentencePiece model"), std::string::npos) << cut << ": " << e;
  }
  test::write_file(m + "/spiece.model", "{\"not\": \"a model\"}");
  EXPECT_NE(load_error(m).find("not a SentencePiece model"), std::string::npos) << load_error(m);
  fs::remove(m + "/spiece.model");
  test::write_file(m + "/tokenizer.json", "{}");
  EXPECT_NE(load_error(m).find("only tokenizer.json is present"), std::string::npos) << load_error(m);
  test::write_file(m + "/config.json", "{\"model_type\": \"siglip\", ");
  EXPECT_NE(load_error(m).find("config.json is not a JSON object"), std::string::npos) << load_error(m);
}

TEST(SafetensorsHeader, RejectsMalformedHeaders) {
  auto parse = [](const std::string& json, size_t data = 0) {
    std::string f(8, '\0');
    uint64_t n = json.size();
    std::memcpy(f.data(), &n, 8);
    f += json + std::string(data, '\0');
    return parse_safetensors_header((const uint8_t*)f.data(), f.size(), f.size());
  };
  EXPECT_EQ(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8).tensors.at("a").numel(), 2);
  for (auto [json, why] : std::initializer_list<std::pair<const char*, const char*>>{
           {"[1,2]", "not a JSON object"},
           {"{not json", "not a JSON object"},
           {R"({"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", "F64 is not supported"},
           {R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "non-integer or negative"},
           {R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "holds 8 bytes"},
           {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", "outside"},
           {R"({"a":{"dtype":"F32","shape":[2]}})", "needs dtype, shape and data_offsets"},
           {R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
            "implausibly large"},
       }) {
    try {
      parse(json, 8);
      ADD_FAILURE() << "accepted " << json;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << json << " -> " << e.what();
    }
  }
  EXPECT_THROW(parse_safetensors_header((const uint8_t*)"abc", 3, 3), std::runtime_error);
}

}  // namespace capforge
