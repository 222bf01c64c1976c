// NSFW heads and zero-shot concepts (src/models/safety) and the float16 .npy writer, checked
// against tests/curate/curate_reference.py (numpy) on generated heads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "capforge/sample.h"
#include "curate/head_file.h"
#include "io/npy_writer.h"
#include "models/safety/concepts.h"
#include "models/safety/nsfw_head.h"
#include "models/safety/safety_stage.h"
#include "support/fixtures.h"
#include "support/process.h"

namespace capforge {
namespace {

std::vector<float> random_unit(size_t dim, std::mt19937& rng) {
  std::normal_distribution<float> n(0, 1);
  std::vector<float> v(dim);
  double s = 0;
  for (auto& x : v) x = n(rng), s += (double)x * x;
  for (auto& x : v) x = (float)(x / std::sqrt(s));
  return v;
}

std::string f32_bytes(const std::vector<float>& v) {
  return std::string((const char*)v.data(), v.size() * 4);
}

struct Arch {
  const char* name;
  bool norm;
  std::vector<int> dims;  // input, then each layer's outputs
  std::vector<int> acts;
  std::string dtype;
};

// LAION's three released shapes, shrunk: L/14 (norm 64 relu 512 relu 256 relu 1 sigmoid),
// B/32 (norm 32 relu 32 relu 1 sigmoid) and the H/14 torch head (no norm, no sigmoid, the last
// two layers linear).
const std::vector<Arch> kArchs = {
    {"l14", true, {24, 8, 20, 12, 1}, {1, 1, 1, 2}, "F32"},
    {"b32", true, {24, 32, 32, 1}, {1, 1, 2}, "F16"},
    {"h14", false, {24, 16, 32, 16, 12, 8, 4, 1}, {1, 1, 1, 1, 1, 0, 0}, "BF16"},
};

float get_f32(const HeadTensor& t, size_t i) {
  float v;
  std::memcpy(&v, t.bytes.data() + i * 4, 4);
  return v;
}
void set_f32(HeadTensor& t, size_t i, float v) { std::memcpy(t.bytes.data() + i * 4, &v, 4); }

// Keras's epsilon: a dimension with zero variance is scaled by 1 / 1e-7 (not divided by zero).
// The first layer's weights on it are made tiny so that the scaled value moves the output without
// saturating it; without the epsilon the output is NaN or infinite.
void add_zero_variance_dim(std::vector<HeadTensor>& t) {
  int in = 0;
  for (auto& x : t)
    if (x.name == "dense.0.weight") in = (int)x.shape[1];
  for (auto& x : t) {
    if (x.name == "activations") continue;
    ASSERT_EQ(x.dtype, "F32");
    if (x.name == "norm.variance") set_f32(x, 0, 0.f);
    if (x.name == "dense.0.weight")
      for (int64_t o = 0; o < x.shape[0]; ++o)
        set_f32(x, (size_t)(o * in), get_f32(x, (size_t)(o * in)) * 1e-7f);
  }
}

// `n` random unit embeddings of `dim` values (appended to `all`) and the head's outputs for them.
std::vector<double> predict_random(const NsfwHead& head, int dim, int n, std::mt19937& rng,
                                   std::vector<float>& all) {
  std::vector<double> out;
  for (int i = 0; i < n; ++i) {
    auto e = random_unit((size_t)dim, rng);
    all.insert(all.end(), e.begin(), e.end());
    out.push_back(head.predict(e));
  }
  return out;
}

// The numpy reference's outputs (tests/curate/curate_reference.py) of the head file `path` for the
// `n` embeddings `all`.
Json numpy_nsfw(const test::TempDir& dir, const std::string& path, const std::vector<float>& all, int n) {
  test::write_file(dir / "emb.f32", f32_bytes(all));
  auto r = test::run_process({test::numpy_python(), CAPFORGE_TEST_SRC "/curate/curate_reference.py", "nsfw",
                              path, dir / "emb.f32", std::to_string(n)});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? Json::parse(r.out) : Json::array();
}

TEST(NsfwHead, MatchesTheNumpyReference) {
  if (test::numpy_python().empty()) GTEST_SKIP() << "no python3 with numpy";
  test::TempDir dir;
  std::mt19937 rng(11);
  for (auto& a : kArchs) {
    auto tensors = test_head_tensors(a.norm, a.dims, a.acts, a.dtype, 5 + (uint32_t)a.dims.size());
    if (std::string(a.name) == "l14") add_zero_variance_dim(tensors);
    std::string path = dir / (std::string(a.name) + ".safetensors");
    write_head_file(path, tensors);
    NsfwHead head = NsfwHead::load(path);
    EXPECT_EQ(head.input_dim(), a.dims[0]);
    std::vector<float> all;
    const int n = 6;
    std::vector<double> ours = predict_random(head, a.dims[0], n, rng, all);
    auto ref = numpy_nsfw(dir, path, all, n);
    ASSERT_EQ(ref.size(), (size_t)n);
    double spread = 0;
    for (int i = 0; i < n; ++i) {
      EXPECT_NEAR(ours[i], ref[i].get<double>(), 1e-6 * (1 + std::abs(ours[i]))) << a.name << " row " << i;
      spread = std::max(spread, std::abs(ours[i] - ours[0]));
    }
    EXPECT_GT(spread, 1e-4) << a.name << ": the generated head should not be constant";
    if (a.acts.back() == 2) {
      for (double v : ours) EXPECT_TRUE(v > 0 && v < 1);
    }
  }
}

// Heads at LAION's real sizes (L/14: 768 norm 64 relu 512 relu 256 relu 1 sigmoid; B/32: 512 norm
// 32 relu 32 relu 1 sigmoid), generated here: they load, describe themselves and predict as numpy.
TEST(NsfwHead, LaionSizesLoadAndPredict) {
  test::TempDir dir;
  struct Real {
    std::vector<int> dims, acts;
    std::string want;
  };
  const std::vector<Real> real = {
      {{768, 64, 512, 256, 1}, {1, 1, 1, 2}, "768 norm -> 64 relu -> 512 relu -> 256 relu -> 1 sigmoid"},
      {{512, 32, 32, 1}, {1, 1, 2}, "512 norm -> 32 relu -> 32 relu -> 1 sigmoid"}};
  std::mt19937 rng(17);
  for (auto& a : real) {
    auto tensors = test_head_tensors(true, a.dims, a.acts, "F32", 9);
    add_zero_variance_dim(tensors);
    const std::string path = dir / (std::to_string(a.dims[0]) + ".safetensors");
    write_head_file(path, tensors);
    NsfwHead head = NsfwHead::load(path);
    EXPECT_EQ(head.describe(), a.want);
    EXPECT_EQ(head.input_dim(), a.dims[0]);
    std::vector<float> all;
    const int n = 4;
    std::vector<double> ours = predict_random(head, a.dims[0], n, rng, all);
    for (int i = 0; i < n; ++i)
      EXPECT_TRUE(ours[i] > 0 && ours[i] < 1) << a.want << " row " << i << ": " << ours[i];
    if (test::numpy_python().empty()) continue;
    auto ref = numpy_nsfw(dir, path, all, n);
    ASSERT_EQ(ref.size(), (size_t)n);
    for (int i = 0; i < n; ++i) EXPECT_NEAR(ours[i], ref[i].get<double>(), 1e-6) << a.want << " row " << i;
  }
  if (test::numpy_python().empty()) GTEST_SKIP() << "no python3 with numpy: loaded, not compared";
}

// tools/safety/head_format.py (what both converters write with) and the C++ reader agree.
TEST(NsfwHead, ReadsWhatTheConvertersWrite) {
  if (test::numpy_python().empty()) GTEST_SKIP() << "no python3 with numpy";
  test::TempDir dir;
  const std::string script =
      "import sys, json, numpy as np\n"
      "sys.path.insert(0, sys.argv[1])\n"
      "import head_format as h\n"
      "r = np.random.default_rng(4)\n"
      "layers = [(r.standard_normal((6, 12)), r.standard_normal(6), 'relu'),\n"
      "          (r.standard_normal((3, 6)), r.standard_normal(3), 'linear'),\n"
      "          (r.standard_normal((1, 3)), r.standard_normal(1), 'sigmoid')]\n"
      "mean, var = 0.1 * r.standard_normal(12), r.uniform(0.01, 0.1, 12)\n"
      "h.write_head(sys.argv[2], layers, mean, var)\n"
      "x = h.random_unit(5, 12, 7)\n"
      "x.astype('<f4').tofile(sys.argv[3])\n"
      "print(json.dumps(h.forward(x, [(w.astype(np.float32), b.astype(np.float32), a) for w, b, a in "
      "layers],\n"
      "                           mean.astype(np.float32), var.astype(np.float32)).tolist()))\n";
  auto r = test::run_process({test::numpy_python(), "-B", "-c", script, CAPFORGE_TEST_SRC "/../tools/safety",
                              dir / "h.safetensors", dir / "x.f32"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto want = Json::parse(r.out);
  NsfwHead head = NsfwHead::load(dir / "h.safetensors");
  EXPECT_EQ(head.describe(), "12 norm -> 6 relu -> 3 linear -> 1 sigmoid");
  std::string x = test::read_file(dir / "x.f32");
  ASSERT_EQ(x.size(), 5u * 12 * 4);
  for (size_t i = 0; i < 5; ++i) {
    std::vector<float> e(12);
    std::memcpy(e.data(), x.data() + i * 48, 48);
    EXPECT_NEAR(head.predict(e), want[i].get<double>(), 1e-6) << i;
  }
}

TEST(NsfwHead, BrokenFilesAreClearErrors) {
  test::TempDir dir;
  auto good = test_head_tensors(true, {8, 4, 1}, {1, 2}, "F32", 3);
  auto expect_error = [&](std::vector<HeadTensor> t, const std::string& want) {
    std::string path = dir / "h.safetensors";
    write_head_file(path, t);
    try {
      NsfwHead::load(path);
      ADD_FAILURE() << "loaded; wanted an error with: " << want;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  auto without = [&](const std::string& name) {
    auto t = good;
    t.erase(std::remove_if(t.begin(), t.end(), [&](auto& x) { return x.name == name; }), t.end());
    return t;
  };
  auto with = [&](const std::string& name, std::vector<int64_t> shape) {
    auto t = good;
    for (auto& x : t)
      if (x.name == name) {
        int64_t n = 1;
        for (auto d : shape) n *= d;
        x.shape = shape;
        x.bytes.assign((size_t)n * (x.dtype == "F32" ? 4 : 2), '\0');
      }
    return t;
  };
  expect_error(without("activations"), "'activations' is missing");
  expect_error(without("dense.1.bias"), "'dense.1.bias' is missing");
  expect_error(without("norm.variance"), "come together");
  expect_error(with("dense.1.weight", {1, 5}), "dense.1 takes 5 inputs but dense.0 gives 4");
  expect_error(with("dense.1.weight", {2, 4}), "'dense.1.bias' has shape [1]; expected [2]");
  expect_error(with("norm.mean", {9}), "'norm.mean' has shape [9]; expected [8]");
  auto bad_act = good;
  for (auto& x : bad_act)
    if (x.name == "activations") x.bytes[8] = 7;
  expect_error(bad_act, "activations[1] is 7");
  auto nan = good;
  for (auto& x : nan)
    if (x.name == "dense.0.bias") {
      float v = NAN;
      std::memcpy(x.bytes.data(), &v, 4);
    }
  expect_error(nan, "NaN");
  // not a safetensors file at all, and a truncated one
  test::write_file(dir / "junk.safetensors", "this is not a head");
  EXPECT_THROW(NsfwHead::load(dir / "junk.safetensors"), std::runtime_error);
  write_head_file(dir / "t.safetensors", good);
  std::string bytes = test::read_file(dir / "t.safetensors");
  test::write_file(dir / "t.safetensors", bytes.substr(0, bytes.size() - 10));
  EXPECT_THROW(NsfwHead::load(dir / "t.safetensors"), std::runtime_error);
  EXPECT_THROW(NsfwHead::load(dir / "absent.safetensors"), std::runtime_error);
  // the wrong input size is refused, not read past
  NsfwHead h = NsfwHead::load([&] {
    write_head_file(dir / "ok.safetensors", good);
    return dir / "ok.safetensors";
  }());
  EXPECT_THROW(h.predict(std::vector<float>(9, 0.f)), std::invalid_argument);
}

TEST(Npy, Float16FilesMatchNumpy) {
  if (test::numpy_python().empty()) GTEST_SKIP() << "no python3 with numpy";
  test::TempDir dir;
  std::vector<float> v = {
      0.f,   -0.f,    1.f,     -2.5f,   0.1f, 1e-3f, 6.1e-5f,        5.96e-8f,       2.98e-8f,  8.9e-8f,
      3e-6f, 65504.f, 65519.f, 65520.f, 1e6f, -1e6f, 1.00048828125f, 1.00146484375f, 0.333333f, -0.7071068f};
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1, 1);
  for (int i = 0; i < 200; ++i) v.push_back(u(rng) * std::pow(2.f, (float)(i % 40 - 30)));
  while (v.size() % 4) v.push_back(0.5f);
  test::write_file(dir / "v.f32", f32_bytes(v));
  auto r = test::run_process(
      {test::numpy_python(), CAPFORGE_TEST_SRC "/curate/curate_reference.py", "half", dir / "v.f32"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto bits = Json::parse(r.out);
  std::vector<uint16_t> ours;
  for (size_t i = 0; i < v.size(); ++i) {
    ours.push_back(float_to_half(v[i]));
    EXPECT_EQ(ours[i], bits[i].get<int>()) << "value " << v[i];
  }
  test::write_file(dir / "a.npy", npy_f16_bytes(ours, v.size() / 4, 4));
  r = test::run_process(
      {test::numpy_python(), CAPFORGE_TEST_SRC "/curate/curate_reference.py", "npy", dir / "a.npy"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = Json::parse(r.out);
  EXPECT_EQ(j["dtype"], "float16");
  EXPECT_EQ(j["shape"], Json::array({v.size() / 4, 4}));
  for (size_t i = 0; i < v.size(); ++i) {
    double want = half_to_float(ours[i]);
    if (std::isinf(want))
      EXPECT_TRUE(j["data"][i].is_null() || std::abs(j["data"][i].get<double>()) > 65504) << i;
    else
      EXPECT_EQ(j["data"][i].get<double>(), want) << i;
  }
  // an empty set still says its width
  test::write_file(dir / "e.npy", npy_f16_bytes({}, 0, 32));
  r = test::run_process(
      {test::numpy_python(), CAPFORGE_TEST_SRC "/curate/curate_reference.py", "npy", dir / "e.npy"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out)["shape"], Json::array({0, 32}));
}

TEST(Npy, HeaderIsVersion1PaddedTo64) {
  std::string b = npy_f16_bytes(std::vector<uint16_t>(6, 0x3c00), 2, 3);
  ASSERT_GE(b.size(), 10u);
  EXPECT_EQ(b.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  size_t hlen = (unsigned char)b[8] | ((unsigned char)b[9] << 8);
  EXPECT_EQ((10 + hlen) % 64, 0u);
  EXPECT_EQ(b[10 + hlen - 1], '\n');
  EXPECT_NE(b.find("'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }"), std::string::npos);
  EXPECT_EQ(b.size(), 10 + hlen + 12);
  EXPECT_THROW(npy_f16_bytes(std::vector<uint16_t>(5), 2, 3), std::invalid_argument);
}

TEST(Concepts, MarginIsTheLargestCosineMinusThreshold) {
  // an orthonormal basis: the cosines are the image's coordinates
  std::vector<Concept> c = {{"a", "pa", 0.5}, {"b", "pb", 0.2}, {"c", "pc", 0.9}};
  std::vector<std::vector<float>> e = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
  ConceptSafety s(c, e);
  auto v = s.judge({0.6f, 0.64f, 0.48f});  // margins 0.1, 0.44, -0.42
  EXPECT_NEAR(v.margin, 0.44, 1e-6);
  EXPECT_EQ(v.concept_.value_or(""), "b");
  v = s.judge({0.3f, 0.1f, 0.9486833f});  // margins -0.2, -0.1, 0.0486833
  EXPECT_NEAR(v.margin, 0.0486833, 1e-6);
  EXPECT_EQ(v.concept_.value_or(""), "c");
  v = s.judge({0.0f, 0.0f, -1.0f});  // margins -0.5, -0.2, -1.9: safe, the margin still reported
  EXPECT_NEAR(v.margin, -0.2, 1e-6);
  EXPECT_FALSE(v.concept_);
}

// A sample whose embedding is not finite is left unscored by both detectors (a NaN margin would
// otherwise flag the first concept); its finite neighbours are scored.
TEST(SafetyStage, NonFiniteEmbeddingsAreUnscored) {
  std::vector<DenseLayer> layers(1);
  layers[0].in = 3, layers[0].out = 1, layers[0].weight = {1, 2, 3}, layers[0].bias = {0.5f};
  layers[0].act = DenseLayer::Act::sigmoid;
  auto head = std::make_shared<NsfwHead>(std::vector<float>{}, std::vector<float>{}, layers);
  auto concepts = std::make_shared<ConceptSafety>(std::vector<Concept>{{"a", "pa", 0.5}, {"b", "pb", 0.2}},
                                                  std::vector<std::vector<float>>{{1, 0, 0}, {0, 1, 0}});
  EXPECT_FALSE(concepts->judge({NAN, 0.f, 0.f}).concept_) << "a NaN margin flags nothing";
  auto stage = make_safety_stage(head, concepts);
  std::vector<Sample> samples(4);
  samples[0].img_emb = {0.6f, 0.64f, 0.48f};
  samples[1].img_emb = {NAN, 0.f, 0.f};
  samples[2].img_emb = {0.f, INFINITY, 0.f};
  samples[3].img_emb = {0.f, 0.f, 1.f};
  std::vector<Sample*> batch;
  for (auto& s : samples) batch.push_back(&s);
  stage->process(batch);
  for (size_t i : {0u, 3u}) {
    ASSERT_TRUE(samples[i].punsafe) << i;
    ASSERT_TRUE(samples[i].unsafe_margin) << i;
  }
  EXPECT_NEAR(*samples[0].punsafe, 1 / (1 + std::exp(-(0.6 + 1.28 + 1.44 + 0.5))), 1e-6);
  EXPECT_EQ(samples[0].unsafe_concept.value_or(""), "b");
  EXPECT_FALSE(samples[3].unsafe_concept);
  for (size_t i : {1u, 2u}) {
    EXPECT_FALSE(samples[i].punsafe) << i;
    EXPECT_FALSE(samples[i].unsafe_margin) << i;
    EXPECT_FALSE(samples[i].unsafe_concept) << i;
  }
}

TEST(Concepts, ConfigErrorsNameTheEntry) {
  test::TempDir dir;
  auto expect_error = [&](const std::string& json, const std::string& want) {
    test::write_file(dir / "c.json", json);
    try {
      load_concepts(dir / "c.json");
      ADD_FAILURE() << "accepted: " << json;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  expect_error("not json", "not a JSON object");
  expect_error("{\"concepts\": []}", "non-empty \"concepts\"");
  expect_error("{\"concepts\": [{\"name\": \"a\", \"prompt\": \"x\"}]}", "concepts[0]: \"threshold\"");
  expect_error("{\"concepts\": [{\"name\": \"a\", \"prompt\": \"x\", \"threshold\": 2}]}", "in [-1, 1]");
  expect_error("{\"concepts\": [{\"name\": \"a b\", \"prompt\": \"x\", \"threshold\": 0.2}]}",
               "letters, digits");
  expect_error(
      "{\"concepts\": [{\"name\": \"a\", \"prompt\": \"x\", \"threshold\": 0.2}, {\"name\": \"a\", "
      "\"prompt\": "
      "\"y\", \"threshold\": 0.2}]}",
      "concepts[1]: the name a is used twice");
  expect_error("{\"concepts\": [{\"name\": \"a\", \"prompt\": \"\", \"threshold\": 0.2}]}", "\"prompt\"");
  EXPECT_THROW(load_concepts(dir / "absent.json"), std::runtime_error);
}

TEST(Concepts, TheShippedDefaultLoads) {
  auto c = load_concepts(CAPFORGE_SOURCE_DATA_DIR "/safety/concepts.json");
  ASSERT_GE(c.size(), 3u);
  for (auto& k : c) {
    EXPECT_FALSE(k.prompt.empty());
    EXPECT_GT(k.threshold, 0);
    EXPECT_LT(k.threshold, 1);
  }
}

}  // namespace
}  // namespace capforge
