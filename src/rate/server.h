// `capforge rate serve`: the rating app over HTTP (cpp-httplib). Raters open /r/<token>; each
// page shows the next image with one caption, asks "human or AI?" and a 0-5 rating, and posts
// back. A token only ever reaches its own rater's items and images.
#pragma once

#include <memory>
#include <string>

#include "rate/store.h"

namespace capforge::rate {

struct ServeParams {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port
  std::string title = "Caption rating";
};

class RateServer {
 public:
  RateServer(RateStore& store, ServeParams params);
  ~RateServer();
  // Binds the socket; returns the port. Throws std::runtime_error if it cannot.
  int bind();
  // Serves until stop(); call bind() first.
  void run();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace capforge::rate
