// The SSRF guard: which network addresses a download may connect to.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace capforge::fetch {

// Empty if `addr` is a public unicast address; else why it is refused ("loopback", "private",
// "link-local", "multicast", "cloud metadata", "reserved", ...). IPv4-mapped/NAT64 IPv6
// addresses are judged by their IPv4 part.
std::string blocked_reason(const sockaddr* addr);
std::string address_string(const sockaddr* addr);

// A network like "127.0.0.0/8" or "fd00::/8". Throws std::invalid_argument on bad syntax.
struct Network {
  int family = 0;
  uint8_t bytes[16] = {};
  int prefix = 0;
  static Network parse(const std::string& cidr);
  bool contains(const sockaddr* addr) const;
};

}  // namespace capforge::fetch
