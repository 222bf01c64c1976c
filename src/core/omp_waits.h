// How long the compute threads spin before they sleep, for processes that share their cores.
//
// ggml's CPU backend, oneDNN and capforge's own parallel loops wait for each other in libgomp
// barriers: spin GOMP_SPINCOUNT rounds of `pause`, then sleep in the kernel. libgomp's default,
// 300000 rounds (milliseconds), suits a machine the process has to itself. When another process
// (in another session or cgroup: a fleet node's other jobs, Kubernetes pods, Slurm jobs) shares
// the cores, a waiting thread spins away its share while the thread it waits for is off its core,
// and a decode step of a few hundred barriers takes 5-25x longer than idle. kComputeSpinCount
// keeps the idle speed (barrier waits there are microseconds) and gives the core back soon under
// contention (docs/benchmarks.md, "Shared cores").
#pragma once

namespace capforge {

constexpr const char* kComputeSpinCount = "3000";

// libgomp reads its settings once, when it loads, so they can only change for a new process image:
// re-executes the running program (/proc/self/exe, the same argv, the same pid) with
// GOMP_SPINCOUNT=kComputeSpinCount added to its environment, unless OMP_WAIT_POLICY or
// GOMP_SPINCOUNT is set already (the user's choice wins; after the exec it is set), or
// CAPFORGE_NO_REEXEC is, or /proc/self/exe is not this program (run by a loader: `ld.so capforge`,
// valgrind, qemu-user). Returns only when it did not exec (libgomp's defaults then stay).
// Call it before any side effect (files, output, threads).
void exec_with_short_waits(char** argv);

}  // namespace capforge
