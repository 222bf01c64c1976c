#include "pipeline/progress.h"

#include <unistd.h>

#include <fmt/format.h>

#include <chrono>
#include <cstdio>

#include "core/log.h"

namespace capforge {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string format_duration(double s) {
  if (s < 0 || s > 1e8) return "?";
  auto t = (int64_t)(s + 0.5);
  if (t >= 3600) return fmt::format("{}:{:02d}:{:02d}", t / 3600, t / 60 % 60, t % 60);
  return fmt::format("{}:{:02d}", t / 60, t % 60);
}

ProgressReporter::ProgressReporter(const ProgressCounters& c, std::optional<int64_t> total_shards,
                                   ProgressMode mode, double interval)
    : c_(c), total_(total_shards), mode_(mode), interval_(interval), start_(now_seconds()) {
  if (mode_ == ProgressMode::automatic) {
    if (logging::format() == logging::Format::json)
      mode_ = ProgressMode::json;
    else
      mode_ = isatty(STDERR_FILENO) ? ProgressMode::bar : ProgressMode::lines;
  }
  if (mode_ == ProgressMode::off) return;
  thread_ = std::thread([this] { loop(); });
}

ProgressReporter::~ProgressReporter() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  draw(true);
}

void ProgressReporter::loop() {
  double period = mode_ == ProgressMode::bar ? 0.25 : interval_;
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, std::chrono::duration<double>(period), [&] { return stop_; })) {
    lock.unlock();
    draw(false);
    lock.lock();
  }
}

void ProgressReporter::draw(bool final) {
  double elapsed = now_seconds() - start_;
  int64_t samples = c_.samples, done = c_.shards_done + c_.shards_failed;
  double rate = elapsed > 0 ? samples / elapsed : 0;
  std::string shards = total_ ? fmt::format("{}/{}", done, *total_) : fmt::format("{}", done);
  std::string eta = "?";
  if (total_ && done > 0) eta = format_duration(elapsed / done * (double)(*total_ - done));
  if (total_ && done == *total_) eta = "0:00";
  switch (mode_) {
    case ProgressMode::bar: {
      int width = 24;
      double frac = total_ && *total_ > 0 ? (double)done / *total_ : 0;
      int fill = (int)(frac * width);
      std::string bar = std::string(fill, '#') + std::string(width - fill, '.');
      std::fprintf(stderr, "\r[%s] shards %s | %lld samples (%lld failed) | %.1f/s | ETA %s\033[K%s",
                   bar.c_str(), shards.c_str(), (long long)samples, (long long)c_.failed.load(), rate,
                   eta.c_str(), final ? "\n" : "");
      std::fflush(stderr);
      break;
    }
    case ProgressMode::lines:
      if (!final)
        info("progress: shards {} | {} samples ({} failed) | {:.1f}/s | elapsed {} | ETA {}", shards, samples,
             c_.failed.load(), rate, format_duration(elapsed), eta);
      break;
    case ProgressMode::json:
      logging::event("progress", {{"shards_done", done},
                                  {"shards_total", total_ ? Json(*total_) : Json(nullptr)},
                                  {"samples", samples},
                                  {"failed", c_.failed.load()},
                                  {"samples_per_s", rate},
                                  {"elapsed_s", elapsed}});
      break;
    default:
      break;
  }
}

}  // namespace capforge
