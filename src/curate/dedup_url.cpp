#include <cctype>
#include <string>
#include <vector>

#include "curate/dedup.h"

namespace capforge::curate {

namespace {
std::string lower(std::string s) {
  for (auto& c : s) c = (char)std::tolower((unsigned char)c);
  return s;
}

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool unreserved(unsigned char c) { return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~'; }

// Decodes %XX of unreserved characters, upper-cases the hex of the others.
std::string percent(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      unsigned char c = (unsigned char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      if (unreserved(c)) {
        out += (char)c;
      } else {
        out += '%';
        out += (char)std::toupper((unsigned char)s[i + 1]);
        out += (char)std::toupper((unsigned char)s[i + 2]);
      }
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// RFC 3986 remove_dot_segments, on a path starting with '/'.
std::string remove_dots(const std::string& path) {
  std::vector<std::string> segs;
  size_t i = 1;
  while (true) {
    size_t j = path.find('/', i);
    std::string seg = path.substr(i, j == std::string::npos ? std::string::npos : j - i);
    bool last = j == std::string::npos;
    if (seg == ".") {
      if (last) segs.push_back("");
    } else if (seg == "..") {
      if (!segs.empty()) segs.pop_back();
      if (last) segs.push_back("");
    } else {
      segs.push_back(seg);
    }
    if (last) break;
    i = j + 1;
  }
  std::string out;
  for (auto& s : segs) out += "/" + s;
  return out.empty() ? "/" : out;
}

const char* default_port(const std::string& scheme) {
  if (scheme == "http" || scheme == "ws") return "80";
  if (scheme == "https" || scheme == "wss") return "443";
  if (scheme == "ftp") return "21";
  return nullptr;
}
}  // namespace

std::string normalize_url(const std::string& raw) {
  size_t b = 0, e = raw.size();
  while (b < e && std::isspace((unsigned char)raw[b])) ++b;
  while (e > b && std::isspace((unsigned char)raw[e - 1])) --e;
  std::string u = raw.substr(b, e - b);
  if (auto hash = u.find('#'); hash != std::string::npos) u.resize(hash);
  // scheme
  size_t colon = u.find(':');
  bool has_scheme = colon != std::string::npos && colon > 0 && std::isalpha((unsigned char)u[0]);
  for (size_t i = 0; has_scheme && i < colon; ++i)
    if (!std::isalnum((unsigned char)u[i]) && u[i] != '+' && u[i] != '-' && u[i] != '.') has_scheme = false;
  if (!has_scheme || u.compare(colon + 1, 2, "//") != 0) {
    if (has_scheme) u = lower(u.substr(0, colon)) + u.substr(colon);
    return u;
  }
  std::string scheme = lower(u.substr(0, colon));
  size_t auth_begin = colon + 3;
  size_t auth_end = u.find_first_of("/?", auth_begin);
  if (auth_end == std::string::npos) auth_end = u.size();
  std::string auth = u.substr(auth_begin, auth_end - auth_begin), rest = u.substr(auth_end);
  std::string userinfo;
  if (auto at = auth.rfind('@'); at != std::string::npos) {
    userinfo = auth.substr(0, at);
    auth = auth.substr(at + 1);
  }
  std::string host = auth, port;
  size_t pc = auth.rfind(':');
  if (pc != std::string::npos && auth.find(']', pc) == std::string::npos) {  // not inside [v6]
    host = auth.substr(0, pc);
    port = auth.substr(pc + 1);
  }
  host = lower(percent(host));
  while (!host.empty() && host.back() == '.') host.pop_back();
  while (port.size() > 1 && port[0] == '0') port.erase(0, 1);
  if (const char* d = default_port(scheme); d && port == d) port.clear();
  std::string path = rest, query;
  if (auto q = rest.find('?'); q != std::string::npos) {
    path = rest.substr(0, q);
    query = rest.substr(q + 1);
  }
  path = path.empty() ? "/" : remove_dots(percent(path));
  query = percent(query);
  std::string out = scheme + "://";
  if (!userinfo.empty()) out += userinfo + "@";
  out += host;
  if (!port.empty()) out += ":" + port;
  out += path;
  if (!query.empty()) out += "?" + query;
  return out;
}

}  // namespace capforge::curate
