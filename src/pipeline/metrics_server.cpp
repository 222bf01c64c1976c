#include "pipeline/metrics_server.h"

#include <httplib.h>

#include <fmt/format.h>

#include <stdexcept>

#include "core/log.h"

namespace capforge {

struct MetricsServer::Impl {
  httplib::Server svr;
};

MetricsServer::MetricsServer(PipelineMetrics& metrics, const std::string& host, int port)
    : impl_(std::make_unique<Impl>()) {
  impl_->svr.Get("/metrics", [&metrics](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  if (!impl_->svr.bind_to_port(host, port))
    throw std::runtime_error(fmt::format("cannot serve metrics on {}:{} (port in use?)", host, port));
  info("metrics on http://{}:{}/metrics", host, port);
  thread_ = std::thread([this] { impl_->svr.listen_after_bind(); });
}

MetricsServer::~MetricsServer() {
  impl_->svr.stop();
  thread_.join();
}

}  // namespace capforge
