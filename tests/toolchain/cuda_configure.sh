#!/usr/bin/env bash
# -DCAPFORGE_CUDA=ON must configure on a machine without a GPU (explicit architectures).
# Skips (77) when there is no CUDA toolkit.
set -euo pipefail
src=$1
nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
[ -n "$nvcc" ] || { echo "no nvcc: skipped"; exit 77; }
export PATH="$(dirname "$nvcc"):$PATH"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cmake -S "$src" -B "$dir" -G Ninja -DCAPFORGE_CUDA=ON -DCAPFORGE_BUILD_TESTS=OFF -DCAPFORGE_BUILD_BENCH=OFF > "$dir/log" 2>&1 ||
  { tail -30 "$dir/log"; exit 1; }
grep -q "CMAKE_CUDA_ARCHITECTURES=80;86;89;90" "$dir/log" || { echo "unexpected CUDA architectures"; tail -30 "$dir/log"; exit 1; }
echo "configured with CUDA: $("$nvcc" --version | tail -1)"
