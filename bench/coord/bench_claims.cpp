// Job store throughput: C concurrent claimers (each with its own connection) claim and complete
// S shards as fast as they can. Prints JSON: claims/s and the mean claim+complete latency.
//   capforge-bench-claims URL SHARDS CLAIMERS
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "capforge/jobstore.h"

using namespace capforge;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s URL SHARDS CLAIMERS\n", argv[0]);
    return 2;
  }
  std::string url = argv[1];
  int shards = std::atoi(argv[2]), claimers = std::atoi(argv[3]);
  {
    auto store = open_job_store(url);
    std::vector<ShardInput> in;
    for (int i = 0; i < shards; ++i)
      in.push_back({"/in/" + std::to_string(i) + ".tar", std::to_string(i), InputFormat::webdataset});
    store->add_shards(in);
  }
  std::vector<std::unique_ptr<JobStore>> stores;
  for (int c = 0; c < claimers; ++c) stores.push_back(open_job_store(url));  // connections ready first
  std::vector<int> done(claimers, 0);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < claimers; ++c)
    threads.emplace_back([&, c] {
      std::string owner = "bench-host:" + std::to_string(c);
      while (auto r = stores[c]->claim(owner, 60)) {
        stores[c]->complete(r->id, owner, 1, [] {});
        ++done[c];
      }
    });
  for (auto& t : threads) t.join();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int total = 0;
  for (int d : done) total += d;
  std::printf(
      "{\"claims\": %d, \"claimers\": %d, \"seconds\": %.3f, \"claims_per_s\": %.1f, "
      "\"claim_complete_ms\": %.3f}\n",
      total, claimers, s, total / s, 1000.0 * s * claimers / total);
  return total == shards ? 0 : 1;
}
