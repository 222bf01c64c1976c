#include "core/cpus.h"

#include <fmt/format.h>
#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

namespace capforge {
namespace {

std::string read_small(const std::string& path) {
  std::ifstream f(path);
  if (!f) return "";
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// The cgroups this process is in, from /proc/self/cgroup's "ID:CONTROLLERS:/path" lines: the v2
// (unified) path under "" and each v1 hierarchy's path under its controllers ("cpu,cpuacct").
std::vector<std::pair<std::string, std::string>> own_cgroups() {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(read_small("/proc/self/cgroup"));
  for (std::string line; std::getline(in, line);) {
    size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    out.emplace_back(line.substr(a + 1, b - a - 1), line.substr(b + 1));
  }
  return out;
}

// Calls f(dir) for `path` and each of its parents up to the root ("/a/b", "/a", ""): a parent's
// limit binds its children too.
template <typename F>
void up_the_tree(std::string path, F f) {
  while (!path.empty() && path.back() == '/') path.pop_back();
  for (;;) {
    f(path);
    if (path.empty()) break;
    path = path.substr(0, path.rfind('/'));
  }
}

// The tightest CPU quota over the process's cgroups (v2 cpu.max at /sys/fs/cgroup or, on hybrid
// hosts, /sys/fs/cgroup/unified; v1 cpu.cfs_quota_us in the cpu controller's mount); 0 when none.
// In a container the cgroup is usually mounted as the root, which the walk reaches last.
double cgroup_quota() {
  double best = 0;
  auto take = [&](double q) {
    if (q > 0 && (best == 0 || q < best)) best = q;
  };
  for (const auto& [controllers, path] : own_cgroups()) {
    if (controllers.empty()) {
      for (const char* root : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"})
        up_the_tree(path,
                    [&](const std::string& p) { take(parse_cpu_max(read_small(root + p + "/cpu.max"))); });
      continue;
    }
    if (("," + controllers + ",").find(",cpu,") == std::string::npos) continue;
    for (std::string mount : {"/sys/fs/cgroup/" + controllers, std::string("/sys/fs/cgroup/cpu"),
                              std::string("/sys/fs/cgroup/cpu,cpuacct")})
      up_the_tree(path, [&](const std::string& p) {
        take(parse_cfs_quota(read_small(mount + p + "/cpu.cfs_quota_us"),
                             read_small(mount + p + "/cpu.cfs_period_us")));
      });
  }
  return best;
}

struct Cpus {
  int n = 1, online = 1, affinity = 0;
  double quota = 0;
  bool overridden = false;
};

const Cpus& cpus() {
  static Cpus c;
  static std::once_flag once;
  std::call_once(once, [] {
    c.online = (int)std::max(1u, std::thread::hardware_concurrency());
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) c.affinity = CPU_COUNT(&set);
    c.quota = cgroup_quota();
    c.n = c.online;
    if (c.affinity > 0) c.n = std::min(c.n, c.affinity);
    if (c.quota > 0) c.n = std::min(c.n, (int)std::ceil(c.quota - 1e-9));
    if (const char* e = std::getenv("CAPFORGE_CPUS"); e && *e) {
      char* end = nullptr;
      long v = std::strtol(e, &end, 10);
      if (end && *end == '\0' && v >= 1 && v <= 4096) {
        c.n = (int)v;
        c.overridden = true;
      }
    }
    c.n = std::max(1, c.n);
  });
  return c;
}

}  // namespace

double parse_cpu_max(const std::string& text) {
  std::istringstream in(text);
  std::string quota;
  double period = 0;
  if (!(in >> quota >> period) || quota == "max" || period <= 0) return 0;
  char* end = nullptr;
  double q = std::strtod(quota.c_str(), &end);
  if (!end || *end != '\0' || !(q > 0)) return 0;
  return q / period;
}

double parse_cfs_quota(const std::string& quota, const std::string& period) {
  char* end = nullptr;
  double q = std::strtod(quota.c_str(), &end);
  if (end == quota.c_str() || !(q > 0)) return 0;
  double p = std::strtod(period.c_str(), &end);
  if (end == period.c_str() || !(p > 0)) return 0;
  return q / p;
}

int available_cpus() { return cpus().n; }

std::string describe_cpus() {
  const Cpus& c = cpus();
  std::string s = fmt::format("{} (online {}", c.n, c.online);
  if (c.affinity > 0) s += fmt::format(", affinity {}", c.affinity);
  if (c.quota > 0) s += fmt::format(", quota {:.2f}", c.quota);
  if (c.overridden) s += ", CAPFORGE_CPUS";
  return s + ")";
}

}  // namespace capforge
