// Progress reporting: a redrawn bar on a TTY, periodic plain lines otherwise, JSON events with
// --log-json.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>

#include "capforge/pipeline.h"

namespace capforge {

struct ProgressCounters {
  std::atomic<int64_t> samples{0}, failed{0}, shards_done{0}, shards_failed{0};
};

class ProgressReporter {
 public:
  ProgressReporter(const ProgressCounters& c, std::optional<int64_t> total_shards, ProgressMode mode,
                   double interval);
  ~ProgressReporter();  // stops and, for the bar, ends its line

 private:
  void loop();
  void draw(bool final);

  const ProgressCounters& c_;
  std::optional<int64_t> total_;
  ProgressMode mode_;
  double interval_;
  double start_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// "1:02:03" / "2:03"
std::string format_duration(double seconds);
double now_seconds();

}  // namespace capforge
