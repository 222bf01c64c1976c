// Concurrent HTTP(S) downloads on libcurl's multi interface: many transfers per thread, keep-alive
// and HTTP/2, limits, retries with backoff, X-Robots-Tag opt-outs and an SSRF guard.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace capforge::fetch {

struct FetchParams {
  double timeout = 10;  // seconds for a whole attempt
  double connect_timeout = 5;
  int retries = 0;       // extra attempts after a transient failure (timeout, reset, 5xx, 429)
  double backoff = 0.5;  // seconds before the first retry, doubling each time
  int max_redirects = 5;
  size_t max_bytes = 32u << 20;
  int concurrency = 64;  // transfers in flight per fetcher
  std::string user_agent = "capforge/0.1 (image-text dataset builder; honours X-Robots-Tag noai)";
  // X-Robots-Tag directives that forbid use, as img2dataset
  std::vector<std::string> disallowed_directives = {"noai", "noimageai", "noindex", "noimageindex"};
  // "X-Robots-Tag: <token>: noai" applies to us; a header naming another crawler does not
  std::string robots_token = "capforge";
  bool allow_private_networks = false;      // SSRF guard off
  std::vector<std::string> allow_networks;  // CIDRs let through the guard (e.g. an internal mirror)
};

struct FetchResult {
  bool ok = false;
  std::string body;
  std::string error;  // why it failed, one line
  long http_status = 0;
  std::string content_type;
  int attempts = 0;
};

// One per worker thread; reuses connections across calls.
class Fetcher {
 public:
  explicit Fetcher(FetchParams params);
  ~Fetcher();
  Fetcher(const Fetcher&) = delete;
  Fetcher& operator=(const Fetcher&) = delete;

  // Downloads every URL (concurrently), one result per URL in order. Never throws for a URL.
  std::vector<FetchResult> fetch(const std::vector<std::string>& urls);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace capforge::fetch
