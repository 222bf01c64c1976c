// Downloads against a loopback server: every failure ends with the right reason, nothing hangs.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <chrono>

#include "capforge/image.h"
#include "fetch/http_fetcher.h"
#include "fetch/ssrf.h"
#include "image/resize.h"
#include "support/fixtures.h"
#include "support/http_server.h"

namespace capforge {

namespace {
sockaddr_storage addr(const char* ip) {
  sockaddr_storage ss{};
  if (inet_pton(AF_INET, ip, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr) == 1)
    ss.ss_family = AF_INET;
  else if (inet_pton(AF_INET6, ip, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr) == 1)
    ss.ss_family = AF_INET6;
  return ss;
}
std::string reason(const char* ip) {
  auto ss = addr(ip);
  return fetch::blocked_reason((sockaddr*)&ss);
}
}  // namespace

TEST(Ssrf, ClassifiesAddresses) {
  EXPECT_EQ(reason("8.8.8.8"), "");
  EXPECT_EQ(reason("2606:4700::1111"), "");
  EXPECT_EQ(reason("127.0.0.1"), "loopback");
  EXPECT_EQ(reason("10.1.2.3"), "private");
  EXPECT_EQ(reason("172.20.0.1"), "private");
  EXPECT_EQ(reason("192.168.1.1"), "private");
  EXPECT_EQ(reason("169.254.169.254"), "cloud metadata");
  EXPECT_EQ(reason("169.254.1.1"), "link-local");
  EXPECT_EQ(reason("224.0.0.1"), "multicast");
  EXPECT_EQ(reason("0.0.0.0"), "reserved");
  EXPECT_EQ(reason("100.64.0.1"), "carrier-grade NAT");
  EXPECT_EQ(reason("::1"), "loopback");
  EXPECT_EQ(reason("::ffff:127.0.0.1"), "loopback");  // IPv4-mapped
  EXPECT_EQ(reason("fd00:ec2::254"), "private");      // AWS metadata over IPv6
  EXPECT_EQ(reason("fe80::1"), "link-local");
  EXPECT_EQ(reason("ff02::1"), "multicast");
  auto net = fetch::Network::parse("127.0.0.0/8");
  auto a = addr("127.4.5.6"), b = addr("128.0.0.1");
  EXPECT_TRUE(net.contains((sockaddr*)&a));
  EXPECT_FALSE(net.contains((sockaddr*)&b));
  EXPECT_THROW(fetch::Network::parse("not-an-ip/8"), std::invalid_argument);
}

struct Fetch : ::testing::Test {
  test::TestHttpServer server;
  fetch::FetchParams params() {
    fetch::FetchParams p;
    p.timeout = 1.5;
    p.allow_networks = {"127.0.0.0/8"};
    return p;
  }
  fetch::FetchResult one(const std::string& url, fetch::FetchParams p) {
    fetch::Fetcher f(std::move(p));
    auto t0 = std::chrono::steady_clock::now();
    auto r = f.fetch({url})[0];
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0) << url;
    return r;
  }
  fetch::FetchResult one(const std::string& path) { return one(server.url(path), params()); }
};

TEST_F(Fetch, EveryFailureHasItsReason) {
  auto ok = one("/img/1.jpg");
  EXPECT_TRUE(ok.ok) << ok.error;
  EXPECT_EQ(sniff_image_ext(ok.body), "jpg");
  EXPECT_EQ(one("/404").error, "HTTP 404");
  EXPECT_EQ(one("/500").error, "HTTP 500");
  EXPECT_NE(one("/slow").error.find("timed out after 1.5 s"), std::string::npos);
  auto reset = one(server.reset_url(), params());
  EXPECT_FALSE(reset.ok);
  EXPECT_FALSE(reset.error.empty());
  EXPECT_NE(one("/loop").error.find("more than 5 redirects"), std::string::npos);
  auto p = params();
  p.max_bytes = 32u << 20;
  EXPECT_NE(one(server.url("/big"), p).error.find("larger than 33554432 bytes"), std::string::npos);
  EXPECT_EQ(one("/html").error, "server sent text/html, not an image");
  EXPECT_NE(one("/noai.jpg").error.find("X-Robots-Tag 'noai'"), std::string::npos);
  EXPECT_TRUE(one("/redirect.jpg").ok);
  EXPECT_TRUE(one("/truncated.jpg").ok);  // a download; the resize stage rejects it
}

TEST_F(Fetch, SsrfGuardChecksEveryConnectionIncludingRedirects) {
  auto priv = one("/to-private");
  EXPECT_NE(priv.error.find("refused to connect to 10.0.0.1 (private address"), std::string::npos)
      << priv.error;
  auto meta = one("/to-metadata");
  EXPECT_NE(meta.error.find("169.254.169.254 (cloud metadata"), std::string::npos) << meta.error;
  auto guarded = one(server.url("/img/1.jpg"), fetch::FetchParams{});
  EXPECT_NE(guarded.error.find("127.0.0.1 (loopback address"), std::string::npos) << guarded.error;
  auto open = fetch::FetchParams{};
  open.allow_private_networks = true;
  EXPECT_TRUE(one(server.url("/img/1.jpg"), open).ok);
  EXPECT_FALSE(one(server.url("/img/1.jpg").replace(0, 4, "ftp"), params()).ok);  // http(s) only
}

TEST_F(Fetch, RetriesTransientFailuresWithBackoff) {
  auto p = params();
  p.retries = 0;
  auto first = one(server.url("/flaky.jpg"), p);  // 503 on the 1st request
  EXPECT_EQ(first.error, "HTTP 503");
  p.retries = 2;
  p.backoff = 0.05;
  auto again = one(server.url("/flaky.jpg"), p);  // 2nd request (503 is transient) then 3rd
  EXPECT_TRUE(again.ok || again.attempts >= 2) << again.error;
  EXPECT_GE(again.attempts, 1);
}

TEST_F(Fetch, ManyConcurrentTransfersKeepOrder) {
  fetch::Fetcher f(params());
  std::vector<std::string> urls;
  for (int i = 0; i < 100; ++i)
    urls.push_back(server.url(i % 10 == 3 ? "/404" : "/img/" + std::to_string(i) + ".jpg"));
  auto r = f.fetch(urls);
  ASSERT_EQ(r.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(r[(size_t)i].ok, i % 10 != 3) << i << ": " << r[(size_t)i].error;
}

TEST(Resize, Img2datasetModes) {
  std::string jpeg = test::make_jpeg(320, 240, 1);
  auto run = [&](ResizeMode m, bool only_if_bigger = false, int size = 256) {
    ResizeParams p;
    p.mode = m;
    p.image_size = size;
    p.only_if_bigger = only_if_bigger;
    ResizedImage r;
    EXPECT_EQ(resize_image(jpeg, p, r), "");
    EXPECT_EQ(r.original_width, 320);
    DecodedImage d;
    EXPECT_EQ(decode_image(r.bytes, {}, d), "");
    EXPECT_EQ(d.pixels.width, r.width);
    return std::make_pair(r.width, r.height);
  };
  EXPECT_EQ(run(ResizeMode::keep_ratio), std::make_pair(341, 256));
  EXPECT_EQ(run(ResizeMode::keep_ratio_largest), std::make_pair(256, 192));
  EXPECT_EQ(run(ResizeMode::center_crop), std::make_pair(256, 256));
  EXPECT_EQ(run(ResizeMode::border), std::make_pair(256, 256));
  EXPECT_EQ(run(ResizeMode::no), std::make_pair(320, 240));
  EXPECT_EQ(run(ResizeMode::keep_ratio, false, 480), std::make_pair(640, 480));  // enlarges
  EXPECT_EQ(run(ResizeMode::keep_ratio, true, 480), std::make_pair(320, 240));   // only if bigger
  ResizeParams small;
  small.min_image_size = 300;
  ResizedImage r;
  EXPECT_NE(resize_image(jpeg, small, r).find("smaller than --min-image-size 300"), std::string::npos);
  EXPECT_NE(resize_image(jpeg.substr(0, jpeg.size() / 2), ResizeParams{}, r).find("cannot decode"),
            std::string::npos);
}

}  // namespace capforge
