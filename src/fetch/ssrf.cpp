#include "fetch/ssrf.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace capforge::fetch {

namespace {

std::string v4_reason(uint32_t a) {  // host byte order
  auto in = [&](uint32_t net, int bits) { return (a >> (32 - bits)) == (net >> (32 - bits)); };
  if (a == 0xA9FEA9FE) return "cloud metadata";  // 169.254.169.254
  if (in(0x7F000000, 8)) return "loopback";
  if (in(0x0A000000, 8) || in(0xAC100000, 12) || in(0xC0A80000, 16)) return "private";
  if (in(0x64400000, 10)) return "carrier-grade NAT";
  if (in(0xA9FE0000, 16)) return "link-local";
  if (in(0xE0000000, 4)) return "multicast";
  if (in(0x00000000, 8) || in(0xF0000000, 4) || in(0xC0000000, 24) || in(0xC0000200, 24) ||
      in(0xC6120000, 15) || in(0xC6336400, 24) || in(0xCB007100, 24))
    return "reserved";
  return "";
}

}  // namespace

std::string blocked_reason(const sockaddr* addr) {
  if (addr->sa_family == AF_INET) {
    auto* v4 = reinterpret_cast<const sockaddr_in*>(addr);
    return v4_reason(ntohl(v4->sin_addr.s_addr));
  }
  if (addr->sa_family == AF_INET6) {
    const uint8_t* b = reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr.s6_addr;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (!std::memcmp(b, mapped, 12) || !std::memcmp(b, nat64, 12))
      return v4_reason((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15]);
    bool zero = true;
    for (int i = 0; i < 15; ++i) zero = zero && b[i] == 0;
    if (zero && (b[15] == 0 || b[15] == 1)) return b[15] ? "loopback" : "unspecified";
    if ((b[0] & 0xfe) == 0xfc) return "private";                     // fc00::/7 (includes AWS fd00:ec2::254)
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return "link-local";  // fe80::/10
    if (b[0] == 0xff) return "multicast";
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return "reserved";  // documentation
    return "";
  }
  return "not an IP address";
}

std::string address_string(const sockaddr* addr) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (addr->sa_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr, buf, sizeof buf);
  else if (addr->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr, buf, sizeof buf);
  return buf;
}

Network Network::parse(const std::string& cidr) {
  Network n;
  auto slash = cidr.find('/');
  std::string host = cidr.substr(0, slash);
  if (inet_pton(AF_INET, host.c_str(), n.bytes) == 1)
    n.family = AF_INET, n.prefix = 32;
  else if (inet_pton(AF_INET6, host.c_str(), n.bytes) == 1)
    n.family = AF_INET6, n.prefix = 128;
  else
    throw std::invalid_argument("not an IP network: '" + cidr + "' (expected e.g. 10.1.0.0/16)");
  if (slash != std::string::npos) {
    int p = std::atoi(cidr.c_str() + slash + 1);
    if (p < 0 || p > n.prefix || cidr.find_first_not_of("0123456789", slash + 1) != std::string::npos)
      throw std::invalid_argument("bad prefix length in '" + cidr + "'");
    n.prefix = p;
  }
  return n;
}

bool Network::contains(const sockaddr* addr) const {
  const uint8_t* b = nullptr;
  if (addr->sa_family == AF_INET && family == AF_INET)
    b = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(addr)->sin_addr);
  else if (addr->sa_family == AF_INET6 && family == AF_INET6)
    b = reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr.s6_addr;
  if (!b) return false;
  int full = prefix / 8, rest = prefix % 8;
  if (std::memcmp(b, bytes, (size_t)full) != 0) return false;
  if (rest == 0) return true;
  uint8_t mask = (uint8_t)(0xFF << (8 - rest));
  return (b[full] & mask) == (bytes[full] & mask);
}

}  // namespace capforge::fetch
