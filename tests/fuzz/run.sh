#!/usr/bin/env bash
# Builds the safetensors header fuzzer with clang's libFuzzer + ASan/UBSan and runs it.
#   tests/fuzz/run.sh [SECONDS]   (default 10; exit 77 = skipped: no clang/libFuzzer)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-10}
command -v clang++ >/dev/null || { echo "no clang++: skipped"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' |
    clang++ -x c++ -fsanitize=fuzzer - -o "$work/probe" 2>/dev/null; then
  echo "clang has no libFuzzer runtime: skipped"; exit 77
fi
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$root/src" -I"$root/include" "$here/safetensors_header_fuzz.cpp" "$root/src/models/safetensors_header.cpp" \
  $(pkg-config --cflags --libs fmt) -o "$work/fuzz"
mkdir -p "$work/corpus"
printf '\x3a\x00\x00\x00\x00\x00\x00\x00{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}    \x00\x00\x00\x00\x00\x00\x00\x00' > "$work/corpus/seed"
"$work/fuzz" -max_total_time="$secs" -max_len=4096 -timeout=5 "$work/corpus" 2>&1 | tail -3
