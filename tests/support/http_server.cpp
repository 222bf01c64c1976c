#include "support/http_server.h"

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "support/fixtures.h"

namespace capforge::test {

struct TestHttpServer::Impl {
  httplib::Server server;
  std::thread thread, reset_thread;
  int reset_fd = -1, reset_port = 0;
  std::atomic<bool> stop{false};
  std::atomic<int> flaky{0};
  std::string jpeg = make_jpeg(320, 240, 3), png = make_png(64, 48, 4), photo = make_jpeg(800, 600, 5, 85);
};

TestHttpServer::TestHttpServer(int latency_ms) : impl_(std::make_unique<Impl>()) {
  auto& s = impl_->server;
  auto* im = impl_.get();
  s.new_task_queue = [] { return new httplib::ThreadPool(96); };  // a thread per keep-alive connection
  s.set_pre_routing_handler([latency_ms](const httplib::Request&, httplib::Response&) {
    if (latency_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(latency_ms));
    return httplib::Server::HandlerResponse::Unhandled;
  });
  s.Get(R"(/img/(\d+)\.jpg)",
        [im](const httplib::Request&, httplib::Response& r) { r.set_content(im->jpeg, "image/jpeg"); });
  s.Get(R"(/img/(\d+)\.png)",
        [im](const httplib::Request&, httplib::Response& r) { r.set_content(im->png, "image/png"); });
  s.Get(R"(/photo/(\d+)\.jpg)",
        [im](const httplib::Request&, httplib::Response& r) { r.set_content(im->photo, "image/jpeg"); });
  s.Get("/404", [](const httplib::Request&, httplib::Response& r) { r.status = 404; });
  s.Get("/500", [](const httplib::Request&, httplib::Response& r) { r.status = 500; });
  s.Get("/slow", [](const httplib::Request&, httplib::Response& r) {
    r.set_chunked_content_provider("image/jpeg", [](size_t, httplib::DataSink& sink) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      return sink.write("x", 1);
    });
  });
  s.Get("/loop", [](const httplib::Request&, httplib::Response& r) { r.set_redirect("/loop"); });
  s.Get("/big", [](const httplib::Request&, httplib::Response& r) {
    const size_t total = 50u << 20;
    r.set_content_provider(total, "image/jpeg", [](size_t off, size_t len, httplib::DataSink& sink) {
      static const std::string block(1 << 16, 'x');
      (void)off;
      return sink.write(block.data(), std::min(len, block.size()));
    });
  });
  s.Get("/html", [](const httplib::Request&, httplib::Response& r) {
    r.set_content("<html><body>not found</body></html>", "text/html");
  });
  s.Get("/truncated.jpg", [im](const httplib::Request&, httplib::Response& r) {
    r.set_content(im->jpeg.substr(0, im->jpeg.size() / 2), "image/jpeg");
  });
  s.Get("/noai.jpg", [im](const httplib::Request&, httplib::Response& r) {
    r.set_header("X-Robots-Tag", "otherbot: noimageai");  // another crawler's: not ours
    r.set_header("X-Robots-Tag", "noai, nofollow");
    r.set_content(im->jpeg, "image/jpeg");
  });
  s.Get("/to-private",
        [](const httplib::Request&, httplib::Response& r) { r.set_redirect("http://10.0.0.1/x.jpg"); });
  s.Get("/to-metadata", [](const httplib::Request&, httplib::Response& r) {
    r.set_redirect("http://169.254.169.254/latest/meta-data/");
  });
  s.Get("/redirect.jpg", [](const httplib::Request&, httplib::Response& r) { r.set_redirect("/img/7.jpg"); });
  s.Get("/flaky.jpg", [im](const httplib::Request&, httplib::Response& r) {
    if (im->flaky++ % 2 == 0)
      r.status = 503;
    else
      r.set_content(im->jpeg, "image/jpeg");
  });
  port_ = s.bind_to_any_port("127.0.0.1");
  impl_->thread = std::thread([im] { im->server.listen_after_bind(); });
  while (!s.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  // a listener that resets every connection
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, (sockaddr*)&a, sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, (sockaddr*)&a, &len);
  ::listen(fd, 64);
  impl_->reset_fd = fd;
  impl_->reset_port = ntohs(a.sin_port);
  impl_->reset_thread = std::thread([im] {
    while (!im->stop) {
      int c = ::accept(im->reset_fd, nullptr, nullptr);
      if (c < 0) break;
      char buf[512];
      (void)!::recv(c, buf, sizeof buf, 0);  // read the request, then reset
      linger l{1, 0};
      ::setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      ::close(c);
    }
  });
}

TestHttpServer::~TestHttpServer() {
  impl_->stop = true;
  impl_->server.stop();
  ::shutdown(impl_->reset_fd, SHUT_RDWR);
  ::close(impl_->reset_fd);
  impl_->thread.join();
  impl_->reset_thread.join();
}

std::string TestHttpServer::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + (path.empty() || path[0] != '/' ? "/" : "") + path;
}

std::string TestHttpServer::reset_url() const {
  return "http://127.0.0.1:" + std::to_string(impl_->reset_port) + "/x.jpg";
}

}  // namespace capforge::test
