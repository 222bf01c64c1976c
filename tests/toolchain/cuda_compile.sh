#!/usr/bin/env bash
# The CUDA build compiles and links, not only configures: bench/gpu/run --compile-only builds
# capforge, capforge-make-fixture, capforge-bench-clip and llama-server with -DCAPFORGE_CUDA=ON for
# sm_90 (CUDA_ARCH) in a scratch build dir. Hours on 2 cores (ggml-cuda's kernels): label slow.
# Skips (77) without a CUDA toolkit.   cuda_compile.sh SOURCE_DIR
set -uo pipefail
src=$1
nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
[ -n "$nvcc" ] || { echo "no nvcc: skipped"; exit 77; }
export PATH="$(dirname "$nvcc"):$PATH"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$src/bench/gpu/run" --compile-only --build-dir "$dir/build" --results "$dir" --budget "${BUDGET_S:-20000}"
rc=$?
cat "$dir"/capforge-gpu-compile-*.json 2>/dev/null | python3 -c "import json,sys; [print(s) for s in json.load(sys.stdin)['steps']]"
exit $rc
