// Serves a PipelineMetrics as Prometheus text on GET /metrics (cpp-httplib) on its own thread,
// from construction to destruction.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "pipeline/metrics.h"

namespace capforge {

class MetricsServer {
 public:
  // Throws std::runtime_error if the port cannot be bound.
  MetricsServer(PipelineMetrics& metrics, const std::string& host, int port);
  ~MetricsServer();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
};

}  // namespace capforge
