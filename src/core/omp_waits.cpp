#include "core/omp_waits.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace capforge {

namespace {

// Whether /proc/self/exe is the file this code was loaded from: not so when a loader runs the
// program (`ld.so capforge ...`, valgrind, qemu-user), where exec'ing it would run the loader
// without its arguments.
bool exe_is_this_program() {
  const auto here = (uintptr_t)(void*)&exe_is_this_program;
  std::FILE* maps = std::fopen("/proc/self/maps", "r");
  if (!maps) return false;
  char line[4096];
  std::string file;
  while (std::fgets(line, sizeof line, maps)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line, "%lx-%lx", &lo, &hi) != 2 || here < lo || here >= hi) continue;
    if (const char* slash = std::strchr(line, '/')) file.assign(slash, std::strcspn(slash, "\n"));
    break;
  }
  std::fclose(maps);
  struct stat mine {
  }, exe{};
  return !file.empty() && ::stat(file.c_str(), &mine) == 0 && ::stat("/proc/self/exe", &exe) == 0 &&
         mine.st_dev == exe.st_dev && mine.st_ino == exe.st_ino;
}

}  // namespace

void exec_with_short_waits(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT") || std::getenv("CAPFORGE_NO_REEXEC"))
    return;
  if (!exe_is_this_program()) return;
  if (::setenv("GOMP_SPINCOUNT", kComputeSpinCount, 1) != 0) return;
  ::execv("/proc/self/exe", argv);
  ::unsetenv("GOMP_SPINCOUNT");  // no exec: run as is, children included
}

}  // namespace capforge
