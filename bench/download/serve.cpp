// capforge-bench-server: the loopback image server for the download benchmark.
//   capforge-bench-server LATENCY_MS SECONDS   prints its port, serves /img/<n>.jpg for SECONDS
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "support/http_server.h"

int main(int argc, char** argv) {
  int latency = argc > 1 ? std::atoi(argv[1]) : 5, seconds = argc > 2 ? std::atoi(argv[2]) : 600;
  capforge::test::TestHttpServer server(latency);
  std::printf("%d\n", server.port());
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  return 0;
}
