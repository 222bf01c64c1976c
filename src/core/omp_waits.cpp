#include "core/omp_waits.h"

#include <unistd.h>

#include <cstdlib>

namespace capforge {

void exec_with_short_waits(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  if (::setenv("GOMP_SPINCOUNT", kComputeSpinCount, 1) != 0) return;
  ::execv("/proc/self/exe", argv);
  ::unsetenv("GOMP_SPINCOUNT");  // no exec (no /proc?): run as is, children included
}

}  // namespace capforge
