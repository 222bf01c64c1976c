#include "rate/server.h"

#include <httplib.h>

#include <charconv>
#include <stdexcept>

#include "core/log.h"
#include "rate/pages.h"

namespace capforge::rate {

namespace {

std::optional<int64_t> parse_int(const std::string& s, size_t max_digits) {
  if (s.empty() || s.size() > max_digits) return std::nullopt;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

}  // namespace

struct RateServer::Impl {
  RateStore& store;
  ServeParams p;
  httplib::Server svr;

  Impl(RateStore& s, ServeParams params) : store(s), p(std::move(params)) {
    svr.set_payload_max_length(64 * 1024);
    svr.set_read_timeout(10);
    svr.set_write_timeout(10);
    svr.set_default_headers({{"Content-Security-Policy", kCsp},
                             {"X-Content-Type-Options", "nosniff"},
                             {"X-Frame-Options", "DENY"},
                             {"Referrer-Policy", "no-referrer"}});
    svr.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      error("rating app: {}", what);
      html(res, 500,
           message_page(p.title, "Something went wrong", "The server could not handle this request."));
    });
    svr.Get("/", [this](const httplib::Request&, httplib::Response& res) {
      html(res, 200,
           message_page(p.title, p.title, "Open the personal link you were given to start rating."));
    });
    svr.Get(R"(/r/([0-9a-f]{1,64}))", [this](const httplib::Request& req, httplib::Response& res) {
      auto rater = authorise(req, res);
      if (!rater) return;
      if (auto task = store.next_task(rater->id))
        html(res, 200, task_page(p.title, *rater, req.matches[1], *task));
      else
        html(res, 200, done_page(p.title, *rater, store.progress(rater->id).first));
    });
    svr.Get(R"(/r/([0-9a-f]{1,64})/image/(\d{1,18}))",
            [this](const httplib::Request& req, httplib::Response& res) {
              auto rater = authorise(req, res);
              if (!rater) return;
              auto item = parse_int(req.matches[2], 18);
              auto img = item ? store.image_for(rater->id, *item) : std::nullopt;
              if (!img) return html(res, 404, message_page(p.title, "Not found", "No such image."));
              res.set_header("Cache-Control", "private, max-age=3600");
              res.set_content(*img, "image/jpeg");
            });
    svr.Post(R"(/r/([0-9a-f]{1,64})/rate)", [this](const httplib::Request& req, httplib::Response& res) {
      auto rater = authorise(req, res);
      if (!rater) return;
      std::string back = "/r/" + std::string(req.matches[1]);
      auto item = parse_int(req.get_param_value("item"), 18);
      auto score = parse_int(req.get_param_value("score"), 1);
      std::string believed = req.get_param_value("believed");
      Recorded r = item && score ? store.record(rater->id, *item, believed, (int)*score) : Recorded::invalid;
      switch (r) {
        case Recorded::ok:
          res.status = 303;
          res.set_header("Location", back);
          return;
        case Recorded::already_rated:
          return html(res, 409,
                      message_page(p.title, "Already rated", "You rated this caption already.", back));
        case Recorded::not_assigned:
          return html(res, 403, message_page(p.title, "Not yours", "This caption is not in your set.", back));
        case Recorded::invalid:
          return html(res, 400,
                      message_page(p.title, "Incomplete answer",
                                   "Choose who wrote the caption and a rating from 0 to 5.", back));
      }
    });
    svr.set_error_handler([this](const httplib::Request&, httplib::Response& res) {
      if (res.body.empty())
        html(res, res.status, message_page(p.title, "Not found", "There is nothing here."));
    });
  }

  static void html(httplib::Response& res, int status, const std::string& body) {
    res.status = status;
    res.set_header("Cache-Control", "no-store");
    res.set_content(body, "text/html; charset=utf-8");
  }

  std::optional<Rater> authorise(const httplib::Request& req, httplib::Response& res) {
    auto rater = store.rater_by_token(req.matches[1]);
    if (!rater)
      html(res, 403,
           message_page(p.title, "Unknown link", "This rating link is not valid. Ask for your own link."));
    return rater;
  }
};

RateServer::RateServer(RateStore& store, ServeParams params)
    : impl_(std::make_unique<Impl>(store, std::move(params))) {}
RateServer::~RateServer() = default;

int RateServer::bind() {
  auto& p = impl_->p;
  int port = p.port == 0 ? impl_->svr.bind_to_any_port(p.host)
                         : (impl_->svr.bind_to_port(p.host, p.port) ? p.port : -1);
  if (port <= 0)
    throw std::runtime_error(
        fmt::format("cannot listen on {}:{} (in use, or not an address here)", p.host, p.port));
  return port;
}

void RateServer::run() { impl_->svr.listen_after_bind(); }
void RateServer::stop() { impl_->svr.stop(); }

}  // namespace capforge::rate
