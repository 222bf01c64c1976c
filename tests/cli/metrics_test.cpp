// --metrics-port: a running caption (or worker) serves Prometheus text with samples, statuses,
// shards, per-stage time and queue depths.
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "support/fixtures.h"
#include "support/process.h"

namespace capforge {

namespace {
int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, (sockaddr*)&a, sizeof a);
  socklen_t n = sizeof a;
  getsockname(fd, (sockaddr*)&a, &n);
  close(fd);
  return ntohs(a.sin_port);
}
}  // namespace

TEST(Metrics, ARunningCaptionServesPrometheusText) {
  test::TempDir dir;
  std::vector<std::string> args = {"caption", "--out",          dir / "out", "--captioner",
                                   "none",    "--progress",     "off",       "--debug-sample-delay",
                                   "0.1",     "--metrics-host", "127.0.0.1"};
  for (int s = 0; s < 2; ++s) {
    std::string name = "0000" + std::to_string(s);
    test::write_tar(dir / (name + ".tar"), test::wds_members(name, 8, (uint32_t)s));
    args.push_back(dir / (name + ".tar"));
  }
  int port = free_port();
  args.push_back("--metrics-port");
  args.push_back(std::to_string(port));
  int pid = test::spawn_capforge(args);
  httplib::Client c("127.0.0.1", port);
  std::string body;
  for (int i = 0; i < 100; ++i) {  // until a few samples went through
    auto r = c.Get("/metrics");
    if (r && r->status == 200 && r->body.find("capforge_samples_total ") != std::string::npos &&
        r->body.find("capforge_samples_total 0\n") == std::string::npos) {
      body = r->body;
      EXPECT_NE(r->get_header_value("Content-Type").find("text/plain; version=0.0.4"), std::string::npos);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(body.empty()) << "no metrics while running";
  for (auto needle :
       {"# TYPE capforge_samples_total counter", "capforge_samples_by_status_total{status=\"success\"}",
        "capforge_shards_total{result=\"done\"}", "capforge_stage_seconds_total{stage=\"decode\"}",
        "capforge_stage_items_total{stage=\"decode\"}", "capforge_queue_depth{queue=\"decode\"}",
        "capforge_queue_depth{queue=\"writer\"}"})
    EXPECT_NE(body.find(needle), std::string::npos) << needle << "\n" << body;
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st));
}

}  // namespace capforge
