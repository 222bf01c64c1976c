// How many CPUs this process may really use, for the default thread counts of every stage.
#pragma once

#include <string>

namespace capforge {

// The CPUs this process can run on: the smallest of the online cores, the affinity mask
// (taskset, Slurm's cgroup cpusets) and the CPU quota (cgroup v2 cpu.max, or v1
// cpu.cfs_quota_us / cpu.cfs_period_us: Kubernetes CPU limits, `docker --cpus`), the quota
// rounded up. At least 1. Read once per process; `CAPFORGE_CPUS=N` overrides it.
int available_cpus();

// What available_cpus() found, for logs: e.g. "2 (affinity 2 of 16, quota 2.0)".
std::string describe_cpus();

// The CPU quota in a cgroup v2 `cpu.max` text ("200000 100000" -> 2.0; "max 100000" -> 0:
// none), or a v1 pair (quota, period) read from cpu.cfs_quota_us / cpu.cfs_period_us (quota -1:
// none). Returns 0 when there is no quota or the text is malformed. Exposed for tests.
double parse_cpu_max(const std::string& text);
double parse_cfs_quota(const std::string& quota, const std::string& period);

}  // namespace capforge
