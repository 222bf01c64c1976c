// Memory stays flat with the number of shards: the pipeline streams.
#include <gtest/gtest.h>

#include "support/fixtures.h"
#include "support/process.h"

namespace capforge {

TEST(Memory, PeakRssFlatFrom1To50Shards) {
  test::TempDir dir;
  std::vector<std::string> all;
  auto members = [](int s) {
    std::vector<test::Member> m;
    for (int i = 0; i < 8; ++i) {
      std::string k = std::to_string(s * 100 + i);
      m.push_back({k + ".jpg", test::make_jpeg(256, 192, (uint32_t)(s * 8 + i))});
      m.push_back({k + ".txt", "caption " + k});
    }
    return m;
  };
  for (int s = 0; s < 50; ++s) {
    std::string path = dir / ("s" + std::to_string(s) + ".tar");
    test::write_tar(path, members(s));
    all.push_back(path);
  }
  auto run = [&](size_t n, const std::string& out) {
    std::vector<std::string> args = {"caption"};
    args.insert(args.end(), all.begin(), all.begin() + (long)n);
    for (auto a : {"--out", out.c_str(), "--progress", "off", "--threads", "2"}) args.push_back(a);
    auto r = test::run_capforge(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.max_rss_kb;
  };
  long one = run(1, dir / "o1"), fifty = run(50, dir / "o50");
  RecordProperty("rss_1_shard_kb", (int)one);
  RecordProperty("rss_50_shards_kb", (int)fifty);
  std::printf("peak RSS: 1 shard %ld KiB, 50 shards %ld KiB\n", one, fifty);
  EXPECT_LT(fifty, one * 5 / 4 + 16 * 1024) << "1 shard: " << one << " KiB, 50 shards: " << fifty << " KiB";
}

}  // namespace capforge
