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
  if (mode_ == ProgressMode::off || !logging::shows_info()) return;  // -q: no progress either
  // under --log-json every mode is JSON events: stderr carries JSON lines only
  if (logging::format() == logging::Format::json)
    mode_ = ProgressMode::json;
  else if (mode_ == ProgressMode::automatic)
    mode_ = isatty(STDERR_FILENO) ? ProgressMode::bar : ProgressMode::lines;
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
  // The bar redraws 4 times a second; lines and events come every `interval_`, and once as soon
  // as the first samples are done (a slow first batch would otherwise show nothing for a while).
  double last = now_seconds();
  bool shown_samples = false;
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, std::chrono::duration<double>(0.25), [&] { return stop_; })) {
    lock.unlock();
    double now = now_seconds();
    bool first = !shown_samples && c_.samples > 0;
    if (mode_ == ProgressMode::bar || first || now - last >= interval_) {
      draw(false);
      last = now;
      shown_samples = shown_samples || c_.samples > 0;
    }
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
  // until the first samples are done, a rate of 0/s says nothing: show that work is under way
  std::string speed = samples > 0 ? fmt::format("{:.1f}/s", rate) : "waiting for the first batch";
  switch (mode_) {
    case ProgressMode::bar: {
      int width = 24;
      double frac = total_ && *total_ > 0 ? (double)done / *total_ : 0;
      int fill = (int)(frac * width);
      std::string bar = std::string(fill, '#') + std::string(width - fill, '.');
      std::fprintf(stderr, "\r[%s] shards %s | %lld samples (%lld failed) | %s | ETA %s\033[K%s", bar.c_str(),
                   shards.c_str(), (long long)samples, (long long)c_.failed.load(), speed.c_str(),
                   eta.c_str(), final ? "\n" : "");
      std::fflush(stderr);
      break;
    }
    case ProgressMode::lines:
      if (!final)
        info("progress: shards {} | {} samples ({} failed) | {} | elapsed {} | ETA {}", shards, samples,
             c_.failed.load(), speed, format_duration(elapsed), eta);
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
