// Dedup building blocks: URL normalisation, the .npy reader, pHash against a numpy reference, and
// the pair searches against brute force.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "capforge/image.h"
#include "curate/blob_image.h"
#include "curate/dedup.h"
#include "curate/dedup_search.h"
#include "curate/npy_reader.h"
#include "curate/phash.h"
#include "support/fixtures.h"
#include "support/process.h"

namespace fs = std::filesystem;
using namespace capforge;
using namespace capforge::curate;

namespace {
fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("capforge_dedup_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// An .npy file written by hand: version 1.0, the header padded to 64 bytes as numpy does.
std::string npy_bytes(const std::string& descr, const std::string& shape, const std::string& body,
                      const std::string& order = "False") {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': " + order + ", 'shape': " + shape + ", }";
  size_t total = 10 + dict.size() + 1;
  dict += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += (char)(dict.size() & 0xff);
  out += (char)(dict.size() >> 8);
  return out + dict + body;
}

template <class T>
std::string raw(const std::vector<T>& v) {
  return std::string((const char*)v.data(), v.size() * sizeof(T));
}
}  // namespace

TEST(DedupUrl, NormalisationRules) {
  EXPECT_EQ(normalize_url("  HTTP://Example.COM:80/a/b?x=1#frag "), "http://example.com/a/b?x=1");
  EXPECT_EQ(normalize_url("https://example.com:443"), "https://example.com/");
  EXPECT_EQ(normalize_url("https://example.com:8443/"), "https://example.com:8443/");
  EXPECT_EQ(normalize_url("http://example.com./a/./b/../c"), "http://example.com/a/c");
  EXPECT_EQ(normalize_url("http://example.com/%7euser/%2f%e2"), "http://example.com/~user/%2F%E2");
  EXPECT_EQ(normalize_url("http://example.com/a?"), "http://example.com/a");
  EXPECT_EQ(normalize_url("http://user@Example.com:/A"), "http://user@example.com/A");
  EXPECT_EQ(normalize_url("http://[::1]:80/x"), "http://[::1]/x");
  // Kept apart: scheme, www, trailing slash, path case, query order.
  EXPECT_NE(normalize_url("http://example.com/a"), normalize_url("https://example.com/a"));
  EXPECT_NE(normalize_url("http://example.com/a"), normalize_url("http://www.example.com/a"));
  EXPECT_NE(normalize_url("http://example.com/a"), normalize_url("http://example.com/a/"));
  EXPECT_NE(normalize_url("http://example.com/A"), normalize_url("http://example.com/a"));
  EXPECT_NE(normalize_url("http://e.com/?a=1&b=2"), normalize_url("http://e.com/?b=2&a=1"));
  // Not a URL with an authority: trimmed, scheme lower-cased, fragment dropped, else as is.
  EXPECT_EQ(normalize_url("DATA:image/png;base64,AAA#x"), "data:image/png;base64,AAA");
  EXPECT_EQ(normalize_url("no scheme here"), "no scheme here");
  EXPECT_EQ(normalize_url(""), "");
}

TEST(DedupNpy, ReadsFloat32AndFloat16) {
  auto dir = temp_dir("npy");
  std::vector<float> f = {1.f, -2.5f, 0.f, 3.25f, 1e-3f, 7.f};
  test::write_file((dir / "f4.npy").string(), npy_bytes("<f4", "(2, 3)", raw(f)));
  auto m = read_npy((dir / "f4.npy").string());
  EXPECT_EQ(m.rows, 2);
  EXPECT_EQ(m.cols, 3);
  EXPECT_EQ(m.data, f);
  // 1, -2, 65504, the smallest subnormal, 0.5, -0
  std::vector<uint16_t> h = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x3800, 0x8000};
  test::write_file((dir / "f2.npy").string(), npy_bytes("<f2", "(3, 2)", raw(h)));
  m = read_npy((dir / "f2.npy").string());
  ASSERT_EQ(m.data.size(), 6u);
  EXPECT_EQ(m.data[0], 1.f);
  EXPECT_EQ(m.data[1], -2.f);
  EXPECT_EQ(m.data[2], 65504.f);
  EXPECT_FLOAT_EQ(m.data[3], std::ldexp(1.f, -24));
  EXPECT_EQ(m.data[4], 0.5f);
  EXPECT_TRUE(std::signbit(m.data[5]));
}

TEST(DedupNpy, MatchesNumpysOwnFiles) {
  const std::string& py = test::numpy_python();
  if (py.empty()) GTEST_SKIP() << "python3 with numpy not found";
  auto dir = temp_dir("npy_numpy");
  std::string script =
      "import numpy as np, sys\n"
      "r = np.random.default_rng(5)\n"
      "a = r.standard_normal((7, 5)).astype(np.float32)\n"
      "np.save(sys.argv[1] + '/a4.npy', a)\n"
      "np.save(sys.argv[1] + '/a2.npy', a.astype(np.float16))\n"
      "np.savetxt(sys.argv[1] + '/a2.txt', a.astype(np.float16).astype(np.float64).ravel(), fmt='%.10g')\n"
      "np.savetxt(sys.argv[1] + '/a4.txt', a.astype(np.float64).ravel(), fmt='%.10g')\n";
  test::write_file((dir / "gen.py").string(), script);
  auto r = test::run_process({py, (dir / "gen.py").string(), dir.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (std::string name : {"a4", "a2"}) {
    auto m = read_npy((dir / (name + ".npy")).string());
    ASSERT_EQ(m.rows, 7);
    ASSERT_EQ(m.cols, 5);
    std::ifstream want(dir / (name + ".txt"));
    for (float got : m.data) {
      double w;
      ASSERT_TRUE(want >> w);
      EXPECT_NEAR(got, w, 1e-6 * std::max(1.0, std::fabs(w))) << name;
    }
  }
}

TEST(DedupNpy, RefusesMalformedFiles) {
  auto dir = temp_dir("npy_bad");
  std::vector<float> f(6, 1.f);
  auto expect_refused = [&](const std::string& name, const std::string& bytes, const std::string& why) {
    std::string path = (dir / name).string();
    test::write_file(path, bytes);
    try {
      read_npy(path);
      ADD_FAILURE() << name << " was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  };
  expect_refused("magic.npy", "PK\x03\x04 not numpy", "not an .npy file");
  expect_refused("f8.npy", npy_bytes("<f8", "(3,)", raw(f)), "'<f8' is not supported");
  expect_refused("big_endian.npy", npy_bytes(">f4", "(2, 3)", raw(f)), "not supported");
  expect_refused("fortran.npy", npy_bytes("<f4", "(2, 3)", raw(f), "True"), "Fortran");
  expect_refused("short.npy", npy_bytes("<f4", "(3, 3)", raw(f)), "truncated");
  expect_refused("long.npy", npy_bytes("<f4", "(1, 3)", raw(f)), "after the data");
  expect_refused("huge.npy", npy_bytes("<f4", "(999999999999, 999999999)", raw(f)), "truncated");
  expect_refused("3d.npy", npy_bytes("<f4", "(1, 2, 3)", raw(f)), "3-D");
  expect_refused("header.npy", npy_bytes("<f4", "(2, x)", raw(f)), "malformed");
  std::string cut = npy_bytes("<f4", "(2, 3)", raw(f));
  expect_refused("cut.npy", cut.substr(0, 20), "truncated header");
}

namespace {
using test::blob_image;
}  // namespace

TEST(DedupPhash, MatchesNumpyReference) {
  const std::string& py = test::numpy_python();
  if (py.empty()) GTEST_SKIP() << "python3 with numpy not found";
  auto dir = temp_dir("phash_ref");
  std::ofstream px(dir / "gray.txt"), ours(dir / "ours.txt");
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    Image img = blob_image(120 + 17 * seed, 90 + 11 * seed, seed);
    curate::Gray32 g;
    ASSERT_EQ(curate::gray32(img, g), "");
    for (double v : g) px << fmt::format("{:.17g} ", v);
    px << "\n";
    ours << curate::phash_from_gray32(g) << "\n";
  }
  px.close();
  ours.close();
  // An independent pHash: scipy-free orthonormal DCT-II as a matrix, numpy's median.
  std::string script =
      "import numpy as np, sys\n"
      "d = sys.argv[1]\n"
      "X = np.loadtxt(d + '/gray.txt').reshape(-1, 32, 32)\n"
      "n = 32\n"
      "k = np.arange(n)[:, None]; i = np.arange(n)[None, :]\n"
      "B = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n)); B[0] /= np.sqrt(2)\n"
      "out = []\n"
      "for x in X:\n"
      "    C = B @ x @ B.T\n"
      "    low = C[1:9, 1:9].ravel()\n"
      "    bits = low > np.median(low)\n"
      "    out.append(sum(int(b) << (63 - j) for j, b in enumerate(bits)))\n"
      "print('\\n'.join(str(v) for v in out))\n";
  test::write_file((dir / "ref.py").string(), script);
  auto r = test::run_process({py, (dir / "ref.py").string(), dir.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, test::read_file((dir / "ours.txt").string()));
}

TEST(DedupPhash, TransformsOfOnePictureStayClose) {
  Image img = blob_image(256, 192, 3);
  uint64_t a = 0, b = 0, c = 0;
  ASSERT_EQ(phash_image(test::encode_png(img), a), "");
  ASSERT_EQ(phash_image(encode_jpeg(img, 40), b), "");
  ASSERT_EQ(phash_image(encode_jpeg(blob_image(256, 192, 4), 90), c), "");
  EXPECT_LE(hamming(a, b), 4);
  EXPECT_GT(hamming(a, c), 12);
  uint64_t bad = 0;
  EXPECT_NE(phash_image("not an image", bad), "");
  EXPECT_NE(phash_image(test::corrupt_png_crc(test::encode_png(img)), bad), "");
}

namespace {
std::set<std::pair<uint32_t, uint32_t>> brute_phash(const std::vector<uint64_t>& h, int t) {
  std::set<std::pair<uint32_t, uint32_t>> out;
  for (uint32_t i = 0; i < h.size(); ++i)
    for (uint32_t j = i + 1; j < h.size(); ++j)
      if (hamming(h[i], h[j]) <= t) out.insert({i, j});
  return out;
}
}  // namespace

TEST(DedupSearch, PhashPairsEqualBruteForce) {
  std::mt19937_64 rng(11);
  std::vector<uint64_t> h;
  for (int i = 0; i < 1500; ++i) h.push_back(rng());
  for (int i = 0; i < 600; ++i) {  // near copies at 0..12 flipped bits, and exact repeats
    uint64_t v = h[rng() % 1500];
    int flips = (int)(rng() % 13);
    for (int f = 0; f < flips; ++f) v ^= uint64_t(1) << (rng() % 64);
    h.push_back(v);
  }
  for (int i = 0; i < 50; ++i) h.push_back(0);  // a flood of one value (blank images)
  for (int t : {0, 3, 6, 7, 10, 15}) {
    auto pairs = phash_pairs(h, t);
    // Same components as brute force (identical hashes are chained, not all paired).
    std::vector<uint32_t> comp_fast(h.size()), comp_slow(h.size());
    auto comps = [&](const std::vector<std::pair<uint32_t, uint32_t>>& edges, std::vector<uint32_t>& root) {
      for (uint32_t i = 0; i < root.size(); ++i) root[i] = i;
      std::function<uint32_t(uint32_t)> find = [&](uint32_t x) {
        return root[x] == x ? x : root[x] = find(root[x]);
      };
      for (auto [a, b] : edges) {
        uint32_t ra = find(a), rb = find(b);
        if (ra != rb) root[std::max(ra, rb)] = std::min(ra, rb);
      }
      for (uint32_t i = 0; i < root.size(); ++i) root[i] = find(i);
    };
    std::vector<std::pair<uint32_t, uint32_t>> fast;
    for (auto& p : pairs) {
      EXPECT_LE(hamming(h[p.a], h[p.b]), t);
      EXPECT_EQ(p.distance, hamming(h[p.a], h[p.b]));
      EXPECT_LT(p.a, p.b);
      fast.push_back({p.a, p.b});
    }
    auto slow_set = brute_phash(h, t);
    std::vector<std::pair<uint32_t, uint32_t>> slow(slow_set.begin(), slow_set.end());
    comps(fast, comp_fast);
    comps(slow, comp_slow);
    EXPECT_EQ(comp_fast, comp_slow) << "threshold " << t;
    // Every brute-force pair between the first holders of two distinct values is found directly.
    std::set<std::pair<uint32_t, uint32_t>> fast_set(fast.begin(), fast.end());
    std::map<uint64_t, uint32_t> first;
    for (uint32_t i = 0; i < h.size(); ++i) first.emplace(h[i], i);
    for (auto& pr : slow)
      if (h[pr.first] != h[pr.second] && first[h[pr.first]] == pr.first && first[h[pr.second]] == pr.second) {
        EXPECT_TRUE(fast_set.count(pr)) << pr.first << " " << pr.second << " at threshold " << t;
      }
  }
  EXPECT_THROW(phash_pairs(h, 16), std::invalid_argument);
}

namespace {
// n unit vectors: groups of near copies (cosine about 0.97) and hard negatives (about 0.88).
std::vector<float> planted_embeddings(int64_t n, int64_t d, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0, 1);
  std::vector<float> x((size_t)(n * d));
  auto unit = [&](float* v) {
    double s = 0;
    for (int64_t k = 0; k < d; ++k) s += v[k] * v[k];
    for (int64_t k = 0; k < d; ++k) v[k] = (float)(v[k] / std::sqrt(s));
  };
  for (int64_t i = 0; i < n; ++i) {
    float* v = x.data() + i * d;
    if (i % 5 == 1 || i % 5 == 2) {  // near copy of row i - (i % 5) + 0 (cos ~0.97) or hard negative (~0.88)
      const float* base = x.data() + (i - i % 5) * d;
      const float noise = i % 5 == 1 ? 0.25f : 0.54f;
      for (int64_t k = 0; k < d; ++k) v[k] = base[k] + noise * g(rng) / std::sqrt((float)d);
    } else {
      for (int64_t k = 0; k < d; ++k) v[k] = g(rng);
    }
    unit(v);
  }
  return x;
}

std::set<std::pair<uint32_t, uint32_t>> brute_cos(const std::vector<float>& x, int64_t n, int64_t d,
                                                  float t) {
  std::set<std::pair<uint32_t, uint32_t>> out;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) {
      double s = 0;
      for (int64_t k = 0; k < d; ++k) s += x[i * d + k] * x[j * d + k];
      if (s >= t) out.insert({(uint32_t)i, (uint32_t)j});
    }
  return out;
}
}  // namespace

TEST(DedupSearch, EmbeddingPairsFlatIsExactAndIvfFindsNearCopies) {
  const int64_t n = 3000, d = 64;
  auto x = planted_embeddings(n, d, 9);
  auto truth = brute_cos(x, n, d, 0.94f);
  ASSERT_GE(truth.size(), 500u);
  EmbeddingSearchParams p;
  EmbeddingSearchInfo info;
  auto flat = embedding_pairs(x.data(), n, d, p, &info);
  EXPECT_EQ(info.index, "IndexFlatIP");
  std::set<std::pair<uint32_t, uint32_t>> got;
  for (auto& pr : flat) {
    got.insert({pr.a, pr.b});
    EXPECT_LE(pr.distance, 0.06f + 1e-5f);
  }
  EXPECT_EQ(got, truth);
  p.ivf_above = 1000;  // force IVF
  auto ivf = embedding_pairs(x.data(), n, d, p, &info);
  EXPECT_EQ(info.index, "IndexIVFFlat");
  EXPECT_EQ(info.nlist, 55);  // round(sqrt(3000))
  EXPECT_EQ(info.nprobe, 8);
  size_t hit = 0;
  for (auto& pr : ivf) {
    EXPECT_TRUE(truth.count({pr.a, pr.b})) << pr.a << " " << pr.b;
    hit += truth.count({pr.a, pr.b});
  }
  const double recall = (double)hit / truth.size();
  std::printf("[ dedup ] IVF (nlist %lld, nprobe %lld) recall on %zu planted pairs: %.4f\n",
              (long long)info.nlist, (long long)info.nprobe, truth.size(), recall);
  EXPECT_GE(recall, 0.98);
  for (int nprobe : {1, 2, 4, 16}) {  // what the default (8) trades: printed for docs/dedup.md
    p.nprobe = nprobe;
    size_t found = 0;
    for (auto& pr : embedding_pairs(x.data(), n, d, p, &info)) found += truth.count({pr.a, pr.b});
    std::printf("[ dedup ] IVF nprobe %2d: recall %.4f\n", nprobe, (double)found / truth.size());
  }
  EXPECT_TRUE(embedding_pairs(x.data(), 1, d, p).empty());
  // Bit-identical rows are chained, not searched: 100 rows twice over give 100 distinct rows.
  std::vector<float> twice(x.begin(), x.begin() + 100 * d);
  twice.insert(twice.end(), x.begin(), x.begin() + 100 * d);
  p.ivf_above = 5000;
  auto pairs = embedding_pairs(twice.data(), 200, d, p, &info);
  EXPECT_EQ(info.distinct_rows, 100);
  EXPECT_EQ(info.rows, 200);
  std::set<std::pair<uint32_t, uint32_t>> twice_pairs;
  for (auto& pr : pairs) twice_pairs.insert({pr.a, pr.b});
  for (uint32_t i = 0; i < 100; ++i) EXPECT_TRUE(twice_pairs.count({i, i + 100})) << i;
  for (auto& [a, b] : truth)  // the near copies among the first 100 rows, found once
    if (b < 100) EXPECT_TRUE(twice_pairs.count({a, b})) << a << " " << b;
}

// Scale measurements (run by hand with --gtest_also_run_disabled_tests); docs/dedup.md quotes them.
TEST(DedupScale, DISABLED_PhashSearchOneMillion) {
  std::mt19937_64 rng(5);
  std::vector<uint64_t> h(1000000);
  for (size_t i = 0; i < h.size(); ++i) {
    h[i] = rng();
    if (i % 10 == 9) h[i] = h[i - 1] ^ (uint64_t(1) << (rng() % 64)) ^ (uint64_t(1) << (rng() % 64));
  }
  for (int t : {6, 10}) {
    auto t0 = std::chrono::steady_clock::now();
    auto pairs = phash_pairs(h, t);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[ dedup ] phash_pairs: 1M hashes, <= %d bits: %zu pairs in %.2f s\n", t, pairs.size(), s);
    EXPECT_GE(pairs.size(), 100000u);
  }
}

TEST(DedupScale, DISABLED_PhashImageThroughput) {
  std::vector<std::string> jpegs;
  for (uint32_t i = 0; i < 200; ++i) jpegs.push_back(encode_jpeg(blob_image(512, 384, i), 90));
  auto t0 = std::chrono::steady_clock::now();
  for (auto& j : jpegs) {
    uint64_t v;
    ASSERT_EQ(phash_image(j, v), "");
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ dedup ] phash_image: %zu 512x384 JPEGs on one thread in %.2f s (%.2f ms each)\n",
              jpegs.size(), s, 1000 * s / jpegs.size());
}

TEST(DedupScale, DISABLED_FlatSearchTenThousand) {
  const int64_t n = 10000, d = 512;
  auto x = planted_embeddings(n, d, 4);
  EmbeddingSearchInfo info;
  auto pairs = embedding_pairs(x.data(), n, d, EmbeddingSearchParams{}, &info);
  std::printf("[ dedup ] %s: %lld x %lld, %zu pairs in %.2f s\n", info.index.c_str(), (long long)n,
              (long long)d, pairs.size(), info.seconds);
  EXPECT_EQ(info.index, "IndexFlatIP");
  EXPECT_GE(pairs.size(), (size_t)n / 5);
}
