#!/usr/bin/env bash
# bench/gpu/run --dry-run on an existing CPU build: tiny shapes, every step but the CUDA ones, and
# a result file with every section. Skips (77) when the build lacks a binary the script uses.
#   gpu_run_dry.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
src=$1 build=$2
for t in capforge capforge-make-fixture capforge-bench-clip llama-server; do
  [ -x "$build/bin/$t" ] || { echo "no $build/bin/$t: skipped"; exit 77; }
done
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# the CUDA configure check is build.cuda_configures' job; here it would add half a minute
"$src/bench/gpu/run" --dry-run --build-dir "$build" --results "$dir" --skip cuda_configure > "$dir/out.log" 2>&1
rc=$?
cat "$dir/out.log"
f=$(ls "$dir"/capforge-gpu-dry-*.json 2>/dev/null | head -1)
[ -n "$f" ] || { echo "no result file"; exit 1; }
python3 - "$f" "$rc" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
errors = []
def check(cond, what):
    if not cond:
        errors.append(what)
for k in ["env", "build", "fixtures", "captioner", "caption", "gpu_util", "clip", "steps", "markdown"]:
    check(k in r, f"section {k} missing")
st = {s["name"]: s["status"] for s in r.get("steps", [])}
check(st.get("cuda_configure") == "skipped", f"cuda_configure {st.get('cuda_configure')}")
for k in ["env", "cpu_build", "fixtures", "captioner", "caption", "clip"]:
    check(st.get(k) == "ok", f"step {k}: {st.get(k)}")
rows = r.get("captioner", {}).get("rows", [])
check(len(rows) == 4, f"{len(rows)} captioner rows, want 4 (2 weight types x N=1, N=8)")
check({x.get("weights") for x in rows} == {"q4_k_m/f16", "f16/f16"}, "captioner weight types")
for x in rows:
    check(x.get("status") == "ok" and x.get("ours_img_s", 0) > 0 and x.get("peer_img_s", 0) > 0
          and x.get("peer") == "server", f"captioner row {x}")
fx = r.get("fixtures", {}).get("files", {})
for f in ["text.gguf", "text-q4_k_m.gguf", "text-f16.gguf", "mmproj.gguf", "mmproj-f16.gguf"]:
    check(f in fx, f"fixture {f}")
if "text.gguf" in fx and "text-f16.gguf" in fx:
    check(fx["text-f16.gguf"] < fx["text.gguf"], "f16 text model not smaller than f32")
if "mmproj.gguf" in fx and "mmproj-f16.gguf" in fx:
    check(fx["mmproj-f16.gguf"] < 0.75 * fx["mmproj.gguf"], "f16 mmproj not smaller than f32")
s = (r.get("caption") or {}).get("summary") or {}
check(s.get("samples") == 4 and s.get("shards_done") == 2 and s.get("shards_failed") == 0, f"caption summary {s}")
check(r.get("gpu_util", {}).get("status") == "skipped" and r["gpu_util"].get("reason"), "gpu_util skip reason")
clip = r.get("clip", {}).get("rows", [])
check([x.get("dtype") for x in clip] == ["f32", "f16"] and all((x.get("r") or {}).get("images_per_s", 0) > 0 for x in clip),
      f"clip rows {clip}")
check("| weights (text/mmproj) |" in r.get("markdown", ""), "markdown table")
check(int(sys.argv[2]) == 0, f"bench/gpu/run exited {sys.argv[2]}")
print("\n".join(errors) or "all sections present and ok")
sys.exit(1 if errors else 0)
PY
