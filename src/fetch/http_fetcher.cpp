#include "fetch/http_fetcher.h"

#include <curl/curl.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include <chrono>
#include <deque>
#include <mutex>
#include <thread>

#include "core/text.h"
#include "fetch/ssrf.h"

namespace capforge::fetch {

namespace {

using Clock = std::chrono::steady_clock;

struct Transfer {
  size_t index = 0;
  const std::string* url = nullptr;
  CURL* easy = nullptr;
  FetchResult* out = nullptr;
  std::vector<std::string> robots;  // X-Robots-Tag header values of the final response
  std::string refused;              // set by the SSRF guard
  bool too_big = false;
  Clock::time_point not_before{};  // retry backoff
  size_t params_max = 0;
  bool allow_private = false;
  const std::vector<Network>* allowed = nullptr;
};

bool transient(CURLcode rc, long status) {
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_COULDNT_RESOLVE_HOST:
      return true;
    case CURLE_OK:
      return status >= 500 || status == 429;
    default:
      return false;
  }
}

std::string trim(std::string s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

}  // namespace

struct Fetcher::Impl {
  explicit Impl(FetchParams p) : params(std::move(p)) {
    for (auto& c : params.allow_networks) allowed.push_back(Network::parse(c));
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 16L);
    share = curl_share_init();  // DNS cache shared by this fetcher's transfers
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  }
  ~Impl() {
    for (CURL* e : pool) curl_easy_cleanup(e);
    curl_multi_cleanup(multi);
    curl_share_cleanup(share);
  }

  static size_t on_body(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    size_t len = size * n;
    if (t->out->body.size() + len > t->params_max) {
      t->too_big = true;
      return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
    }
    t->out->body.append(data, len);
    return len;
  }

  static size_t on_header(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    std::string line(data, size * n);
    if (line.rfind("HTTP/", 0) == 0) t->robots.clear();  // a new response (after a redirect)
    auto colon = line.find(':');
    if (colon != std::string::npos && ascii_lower(line.substr(0, colon)) == "x-robots-tag")
      t->robots.push_back(trim(line.substr(colon + 1)));
    return size * n;
  }

  // Connects only to public addresses (checked for every connection: after DNS and on redirects).
  static curl_socket_t on_open(void* user, curlsocktype, curl_sockaddr* addr) {
    auto* t = static_cast<Transfer*>(user);
    if (!t->allow_private) {
      std::string why = blocked_reason(&addr->addr);
      for (auto& n : *t->allowed)
        if (n.contains(&addr->addr)) why.clear();
      if (!why.empty()) {
        t->refused = fmt::format(
            "refused to connect to {} ({} address; SSRF guard, --allow-private-networks "
            "lifts it)",
            address_string(&addr->addr), why);
        return CURL_SOCKET_BAD;
      }
    }
    return ::socket(addr->family, addr->socktype, addr->protocol);
  }

  CURL* take_easy() {
    if (!pool.empty()) {
      CURL* e = pool.back();
      pool.pop_back();
      curl_easy_reset(e);
      return e;
    }
    return curl_easy_init();
  }

  void start(Transfer& t) {
    t.out->body.clear();
    t.robots.clear();
    t.refused.clear();
    t.too_big = false;
    t.out->attempts++;
    t.params_max = params.max_bytes;
    t.allow_private = params.allow_private_networks;
    t.allowed = &allowed;
    CURL* e = t.easy = take_easy();
    curl_easy_setopt(e, CURLOPT_URL, t.url->c_str());
    curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, &t);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)params.max_redirects);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_PROXY, "");  // a proxy would bypass the address check
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(params.timeout * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(params.connect_timeout * 1000));
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)params.max_bytes);
    curl_easy_setopt(e, CURLOPT_USERAGENT, params.user_agent.c_str());
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_SHARE, share);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_multi_add_handle(multi, e);
  }

  // Fills t.out from a finished attempt; true if it should be retried.
  bool finish(Transfer& t, CURLcode rc) {
    FetchResult& r = *t.out;
    curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &r.http_status);
    char* ct = nullptr;
    curl_easy_getinfo(t.easy, CURLINFO_CONTENT_TYPE, &ct);
    r.content_type = ct ? ct : "";
    curl_multi_remove_handle(multi, t.easy);
    pool.push_back(t.easy);
    t.easy = nullptr;
    r.ok = false;
    if (!t.refused.empty()) {
      r.error = t.refused;
      return false;
    }
    if (t.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
      r.error = fmt::format("body is larger than {} bytes (--max-bytes)", params.max_bytes);
      r.body.clear();
      return false;
    }
    if (rc != CURLE_OK) {
      if (rc == CURLE_TOO_MANY_REDIRECTS)
        r.error = fmt::format("more than {} redirects (--max-redirects)", params.max_redirects);
      else if (rc == CURLE_OPERATION_TIMEDOUT)
        r.error = fmt::format("timed out after {:g} s (--timeout)", params.timeout);
      else
        r.error = curl_easy_strerror(rc);
      r.body.clear();
      return transient(rc, 0);
    }
    if (r.http_status >= 400) {
      r.error = fmt::format("HTTP {}", r.http_status);
      r.body.clear();
      return transient(rc, r.http_status);
    }
    for (std::string d : directives_for_us(t.robots, params.robots_token))
      for (auto& no : params.disallowed_directives)
        if (d == no) {
          r.error = fmt::format("X-Robots-Tag '{}' forbids this use (--disallowed-header-directives)", d);
          r.body.clear();
          return false;
        }
    std::string type = ascii_lower(r.content_type.substr(0, r.content_type.find(';')));
    if (type.rfind("text/", 0) == 0 || type == "application/json" || type.find("xml") != std::string::npos) {
      r.error = fmt::format("server sent {}, not an image", type);
      r.body.clear();
      return false;
    }
    r.ok = true;
    r.error.clear();
    return false;
  }

  // As img2dataset: a header value "crawler: a, b" counts only if crawler is our token; a value
  // without one counts for everybody. {"noai, noindex", "otherbot: noimageai"} -> {"noai", "noindex"}
  static std::vector<std::string> directives_for_us(const std::vector<std::string>& headers,
                                                    const std::string& token) {
    std::vector<std::string> out;
    for (std::string v : headers) {
      if (auto colon = v.find(':'); colon != std::string::npos) {
        if (ascii_lower(trim(v.substr(0, colon))) != ascii_lower(token)) continue;
        v = v.substr(colon + 1);
      }
      size_t start = 0;
      while (true) {
        size_t comma = v.find(',', start);
        std::string part = ascii_lower(
            trim(v.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
        if (!part.empty()) out.push_back(part);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    }
    return out;
  }

  std::vector<FetchResult> run(const std::vector<std::string>& urls) {
    std::vector<FetchResult> out(urls.size());
    std::vector<Transfer> ts(urls.size());
    std::deque<size_t> waiting;
    for (size_t i = 0; i < urls.size(); ++i) {
      ts[i].index = i;
      ts[i].url = &urls[i];
      ts[i].out = &out[i];
      waiting.push_back(i);
    }
    size_t active = 0, done = 0;
    while (done < urls.size()) {
      // admit waiting transfers whose backoff has passed
      auto now = Clock::now();
      for (size_t k = waiting.size(); k > 0 && active < (size_t)params.concurrency; --k) {
        size_t i = waiting.front();
        waiting.pop_front();
        if (ts[i].not_before > now) {
          waiting.push_back(i);
          continue;
        }
        start(ts[i]);
        ++active;
      }
      int running = 0;
      curl_multi_perform(multi, &running);
      int left = 0;
      while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
        if (m->msg != CURLMSG_DONE) continue;
        Transfer* t = nullptr;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char**)&t);
        CURLcode rc = m->data.result;
        --active;
        if (finish(*t, rc) && t->out->attempts <= params.retries) {
          t->not_before = Clock::now() +
                          std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(params.backoff * (1 << (t->out->attempts - 1))));
          waiting.push_back(t->index);
        } else {
          ++done;
        }
      }
      if (done < urls.size()) curl_multi_poll(multi, nullptr, 0, active ? 50 : 10, nullptr);
    }
    return out;
  }

  FetchParams params;
  CURLM* multi = nullptr;
  CURLSH* share = nullptr;
  std::vector<CURL*> pool;
  std::vector<Network> allowed;
};

Fetcher::Fetcher(FetchParams params) : impl_(std::make_unique<Impl>(std::move(params))) {}
Fetcher::~Fetcher() = default;
std::vector<FetchResult> Fetcher::fetch(const std::vector<std::string>& urls) { return impl_->run(urls); }

}  // namespace capforge::fetch
