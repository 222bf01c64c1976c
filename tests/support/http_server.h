// A loopback HTTP server for download tests and benchmarks (cpp-httplib), with routes for every
// failure a crawler meets, and a raw listener that resets connections.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

namespace capforge::test {

class TestHttpServer {
 public:
  // `latency_ms`: delay before every response (benchmarks).
  explicit TestHttpServer(int latency_ms = 0);
  ~TestHttpServer();
  std::string url(const std::string& path) const;  // http://127.0.0.1:PORT/path
  std::string reset_url() const;                   // a port that accepts and resets at once
  int port() const { return port_; }

  // Routes: /img/<n>.jpg (a 320x240 JPEG), /photo/<n>.jpg (800x600, ~web-sized), /img/<n>.png, /404, /500,
  // /slow (drips a byte every 300 ms), /loop (redirects to itself), /big (50 MB), /html (text/html),
  // /truncated.jpg, /noai.jpg (X-Robots-Tag: noai), /to-private (302 to 10.0.0.1), /to-metadata (302 to
  // 169.254.169.254), /redirect.jpg (302 to /img/7.jpg), /flaky.jpg (503 on every other request).

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace capforge::test
