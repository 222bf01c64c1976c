# shellcheck shell=bash
# The steps of bench/gpu/run (sourced by `run --internal NAME`; each runs under a timeout with its
# output in $WORK/logs/NAME.log). Inputs come from the environment run exports; outputs are files in
# $WORK that report.py reads: env.json, captioner.jsonl, caption.json, clip.jsonl.

internal_env() {
  "$PY" - > "$WORK/env.json" <<'PY'
import json, os, platform, subprocess
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception as e:
        return f"error: {e}"
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
env = {
    "mode": os.environ["MODE"], "date_utc": sh("date -u +%Y-%m-%dT%H:%M:%SZ"), "host": platform.node(),
    "cores": os.cpu_count(), "cpu": cpu, "memory": sh("grep -m1 MemTotal /proc/meminfo | awk '{print $2/1048576 \" GiB\"}'"),
    "os": sh(". /etc/os-release 2>/dev/null && echo $PRETTY_NAME"), "glibc": sh("ldd --version | head -1"),
    "cxx": sh("c++ --version | head -1"), "cmake": sh("cmake --version | head -1"),
    "nvcc": sh("nvcc --version | tail -2 | head -1") or None,
    "gpu": sh("nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader") or None,
    "capforge_commit": sh(f"git -C {os.environ['REPO']} rev-parse --short HEAD") or "unknown",
    "cuda_arch": os.environ["CUDA_ARCH"], "jobs": os.environ["JOBS"], "build_dir": os.environ["BUILD"],
    "shape": os.environ.get("SHAPE"), "text_layers": os.environ.get("LAYERS") or None,
    "images": os.environ.get("IMAGES"), "threads": os.environ.get("THREADS"),
}
print(json.dumps(env))
PY
  cat "$WORK/env.json"
}

# unpack PACK_DIR: bench/gpu/pack's archives into /tmp/capforge-pack (kept for reruns on a warm
# machine), and $WORK/pack.env, which run sources: where the sysroot and llama.cpp source are.
internal_unpack() {
  local pack=$1 dest=${PACK_ROOT:-/tmp/capforge-pack} a
  local stamp
  stamp=$(cat "$pack"/*.tar.xz | cksum | cut -d' ' -f1)
  if [ "$(cat "$dest/.stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$dest" && mkdir -p "$dest/sysroot" "$dest/llama.cpp" || return 1
    for a in deps:sysroot llama:llama.cpp; do
      if command -v xz >/dev/null; then
        tar -C "$dest/${a#*:}" -xJf "$pack/${a%%:*}.tar.xz" || return 1
      else
        "$PY" -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" \
          "$pack/${a%%:*}.tar.xz" "$dest/${a#*:}" || return 1
      fi
    done
    echo "$stamp" > "$dest/.stamp"
  fi
  local s=$dest/sysroot lib=$dest/sysroot/usr/lib/x86_64-linux-gnu
  cat > "$WORK/pack.env" <<EOF
export CAPFORGE_LLAMA_DIR=$dest/llama.cpp CAPFORGE_DUCKDB_DIR=$s/opt/duckdb CMAKE_PREFIX_PATH=$s/usr
export PKG_CONFIG_SYSROOT_DIR=$s PKG_CONFIG_LIBDIR=$lib/pkgconfig:$s/usr/share/pkgconfig
export PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
export PACK_CMAKE_ARGS="-DPKG_CONFIG_EXECUTABLE=$s/usr/bin/pkg-config -DBLA_VENDOR=Generic -DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags,-rpath,$lib:$s/opt/duckdb/lib,-rpath-link,$lib"
EOF
  cat "$s/MANIFEST" "$WORK/pack.env"
}

# configure: the CUDA build (PACK_CMAKE_ARGS: the sysroot's flags, when a pack was unpacked)
internal_configure() {
  command -v nvcc >/dev/null || { echo "no nvcc on PATH"; return 1; }
  cmake -S "$REPO" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCAPFORGE_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" -DCAPFORGE_BUILD_TESTS=ON -DCAPFORGE_BUILD_BENCH=ON \
    -DCMAKE_POLICY_VERSION_MINIMUM=3.5 ${PACK_CMAKE_ARGS:-}  # CMake 4 and old package configs
}

internal_compile() {
  cmake --build "$BUILD" -j "$JOBS" --target capforge capforge-make-fixture capforge-bench-clip llama-server ||
    return 1
  local libs
  libs=$(ldd "$BUILD/bin/capforge") || return 1
  echo "$libs" | grep -iE "cuda|cublas|not found"
  echo "$libs" | grep -q "libcublas" || { echo "capforge is not linked with cuBLAS: not a CUDA build"; return 1; }
  # libcuda.so.1 comes with the NVIDIA driver, not the toolkit: only a machine with a driver has it
  if echo "$libs" | grep "not found" | grep -qv "libcuda\.so\.1" ||
    { [ -e /proc/driver/nvidia/version ] && echo "$libs" | grep -q "not found"; }; then
    echo "capforge needs libraries this machine does not have"
    return 1
  fi
}

# dry run: the CUDA build configures (no compile) in a scratch dir
internal_cuda_configure() {
  cmake -S "$REPO" -B "$WORK/cuda-configure" -G Ninja -DCAPFORGE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" \
    -DCAPFORGE_BUILD_TESTS=OFF -DCAPFORGE_BUILD_BENCH=OFF &&
    grep -q "^GGML_CUDA:BOOL=ON" "$WORK/cuda-configure/CMakeCache.txt" &&
    grep "^CMAKE_CUDA_ARCHITECTURES" "$WORK/cuda-configure/CMakeCache.txt"
}

# dry run: the existing CPU build has every binary the steps use (never builds here)
internal_cpu_build() {
  local t missing=""
  for t in capforge capforge-make-fixture capforge-bench-clip llama-server; do
    [ -x "$BUILD/bin/$t" ] || missing="$missing $t"
  done
  [ -z "$missing" ] || { echo "missing in $BUILD/bin:$missing (cmake --build $BUILD --target$missing)"; return 1; }
  echo "reusing $BUILD"
}

# fixtures: the VLM (f32, then Q4_K_M and f16 text, f16 mmproj) in bench/captioner's naming, and the CLIP model
internal_fixtures() {
  local fx="$BUILD/bin/capforge-make-fixture" f=$WORK/fix t0
  mkdir -p "$f"
  t0=$(date +%s)
  "$fx" vlm "$f/text.gguf" "$f/mmproj.gguf" --shape "$SHAPE" --vocab spm ${LAYERS:+--layers $LAYERS} || return 1
  echo "f32 fixture in $(($(date +%s) - t0))s"
  "$fx" quantize "$f/text.gguf" "$f/text-q4_k_m.gguf" Q4_K_M > "$WORK/logs/quantize.log" 2>&1 &&
    "$fx" quantize "$f/text.gguf" "$f/text-f16.gguf" F16 >> "$WORK/logs/quantize.log" 2>&1 &&
    "$fx" quantize "$f/mmproj.gguf" "$f/mmproj-f16.gguf" F16 || { tail -5 "$WORK/logs/quantize.log"; return 1; }
  "$fx" clip "$f/clip" --shape "$CLIP_SHAPE" >/dev/null || return 1
  ls -la "$f"
  echo "fixtures in $(($(date +%s) - t0))s"
}

internal_captioner() {
  FIXTURE_DIR=$WORK/fix WEIGHTS="q4_k_m/f16 f16/f16" CASES="1 8" N1_PEERS=server \
    IMAGE_SIZE=$([ "$SHAPE" = tiny ] && echo 64 || echo 336) JSON=$WORK/captioner.jsonl PYTHON=$PY STEP_TIMEOUT=120 \
    "$REPO/bench/captioner/run" "$BUILD" "$IMAGES"
}

# caption: `capforge caption` over synth shards, nvidia-smi sampling utilization.gpu meanwhile
internal_caption() {
  local cf="$BUILD/bin/capforge" smi="" rc t0 t1
  "$cf" synth --out "$WORK/shards" --count "$CAPTION_COUNT" --shards 2 --size "$CAPTION_SIZE" --seed 1 || return 1
  if [ "$GPU" = 1 ] && command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 200 > "$WORK/util.csv" &
    smi=$!
  fi
  t0=$(date +%s.%N)
  "$cf" --log-json caption "$WORK"/shards/*.tar --out "$WORK/caption-out" --model "$WORK/fix/text-q4_k_m.gguf" \
    --mmproj "$WORK/fix/mmproj-f16.gguf" --candidates 8 --max-new-tokens "$NEW" --min-new-tokens "$NEW" \
    --loop-repeats 1000 --parallel 16 --threads "$THREADS" --progress off 2> "$WORK/caption.log"
  rc=$?
  t1=$(date +%s.%N)
  [ -n "$smi" ] && { kill "$smi"; wait "$smi" 2>/dev/null; }
  tail -3 "$WORK/caption.log"
  "$PY" - "$WORK" "$rc" "$t0" "$t1" "$GPU" "$smi" > "$WORK/caption.json" <<'PY'
import json, os, shutil, sys
work, rc, t0, t1, gpu, smi = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6]
summary = None
for line in open(os.path.join(work, "caption.log"), errors="replace"):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") == "summary" or e.get("msg") == "summary":
        summary = e
r = {"rc": rc, "wall_s": t1 - t0, "summary": summary}
if smi:
    util = []
    for line in open(os.path.join(work, "util.csv")):
        try:
            util.append(float(line.strip().split(",")[0]))
        except ValueError:
            pass
    r["gpu_util"] = {"status": "ok" if util else "failed", "samples": len(util), "interval_ms": 200,
                     "busy_fraction": sum(util) / len(util) / 100 if util else None,
                     "nonzero_fraction": sum(u > 0 for u in util) / len(util) if util else None}
else:
    r["gpu_util"] = {"status": "skipped", "reason": "dry run: no GPU work to sample" if gpu != "1"
                     else "nvidia-smi not found"}
print(json.dumps(r))
PY
  cat "$WORK/caption.json"
  [ "$rc" = 0 ]
}

internal_clip() {
  local dt r fail=0
  for dt in f32 f16; do
    if r=$(IMAGE_BATCH=16 "$BUILD/bin/capforge-bench-clip" "$WORK/fix/clip" $dt "$THREADS" "$CLIP_IMAGES" "$CLIP_TEXTS"); then
      echo "{\"shape\": \"$CLIP_SHAPE\", \"dtype\": \"$dt\", \"status\": \"ok\", \"r\": $r}" >> "$WORK/clip.jsonl"
    else
      echo "{\"shape\": \"$CLIP_SHAPE\", \"dtype\": \"$dt\", \"status\": \"failed\"}" >> "$WORK/clip.jsonl"
      fail=1
    fi
  done
  cat "$WORK/clip.jsonl"
  return $fail
}
