#!/usr/bin/env python3
"""Assembles bench/gpu/run's ONE result file from the files its steps left in WORK, and prints its
markdown table. Sections (each with a "status": ok | failed | timeout | skipped | missing):
env, build, fixtures, captioner (rows), caption, gpu_util, clip (rows); plus "steps" (every step's
record, log tails of the failed ones) and "markdown".

usage: report.py WORK MODE OUT.json
"""
import json
import os
import sys

SECTIONS = ["env", "build", "fixtures", "captioner", "caption", "gpu_util", "clip"]


def lines(path):
    if not os.path.exists(path):
        return []
    out = []
    for line in open(path, errors="replace"):
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None


def main():
    work, mode, out = sys.argv[1], sys.argv[2], sys.argv[3]
    steps = lines(os.path.join(work, "steps.jsonl"))
    by = {s["name"]: s for s in steps}

    def status(*names):
        got = [by[n]["status"] for n in names if n in by]
        if not got:
            return "missing"
        for bad in ("timeout", "failed"):
            if bad in got:
                return bad
        return "ok" if "ok" in got else "skipped"

    r = {"capforge_gpu_run": 1, "mode": mode, "steps": steps}
    r["env"] = dict(load(os.path.join(work, "env.json")) or {}, status=status("env"))
    build_steps = ["cuda_configure", "cpu_build"] if mode == "dry" else ["pack", "configure", "compile"]
    r["build"] = {"status": status(*[n for n in build_steps if n != "pack"]),
                  "steps": {n: by.get(n, {"status": "missing"})["status"] for n in build_steps}}
    if mode == "dry":
        r["build"]["note"] = "dry run: the CUDA build is configured only; the CPU build is reused"
    r["fixtures"] = {"status": status("fixtures"), "shape": r["env"].get("shape"),
                     "text_layers": r["env"].get("text_layers"),
                     "files": {f: os.path.getsize(os.path.join(work, "fix", f))
                               for f in sorted(os.listdir(os.path.join(work, "fix")))
                               if f.endswith(".gguf")} if os.path.isdir(os.path.join(work, "fix")) else {}}
    r["captioner"] = {"status": status("captioner"), "rows": lines(os.path.join(work, "captioner.jsonl"))}
    cap = load(os.path.join(work, "caption.json")) or {}
    gpu = cap.pop("gpu_util", None) or {"status": "missing"}
    r["caption"] = dict(cap, status=status("caption"))
    r["gpu_util"] = gpu
    r["clip"] = {"status": status("clip"), "rows": lines(os.path.join(work, "clip.jsonl"))}
    if mode == "compile":
        for k in ("fixtures", "captioner", "caption", "gpu_util", "clip"):
            r[k] = {"status": "skipped", "reason": "--compile-only"}
    r["markdown"] = markdown(r)
    with open(out, "w") as f:
        json.dump(r, f, indent=1)
    print(r["markdown"])


def fmt(v, d=2):
    return "-" if v is None else f"{v:.{d}f}"


def markdown(r):
    e = r["env"]
    md = [f"### bench/gpu/run ({r['mode']}), {e.get('date_utc', '?')}",
          f"{e.get('gpu') or 'no GPU'}; {e.get('cpu', '?')}, {e.get('cores', '?')} cores; capforge "
          f"{e.get('capforge_commit', '?')}; CUDA arch {e.get('cuda_arch', '?')}; nvcc {e.get('nvcc') or '-'}",
          "", "| step | status | seconds | note |", "| --- | --- | --- | --- |"]
    for s in r["steps"]:
        md.append(f"| {s['name']} | {s['status']} | {s['seconds']} | {s.get('reason', '')} |")
    rows = r["captioner"].get("rows")
    if rows:
        md += ["", f"Captioner ({r['fixtures'].get('shape')}, text layers {r['fixtures'].get('text_layers') or 'all'}):",
               "", "| weights (text/mmproj) | case | peer | capforge img/s | peer img/s | capforge tok/s | peer tok/s "
               "| ratio | peer settings |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for x in rows:
            if x["status"] != "ok":
                md.append(f"| {x['weights']} | {x['case']} | {x['peer']} | failed: {x.get('error', '')} | | | | | |")
                continue
            md.append(f"| {x['weights']} | {x['case']} | {x['peer']} | {fmt(x['ours_img_s'])} | {fmt(x['peer_img_s'])} "
                      f"| {fmt(x['ours_tok_s'], 0)} | {fmt(x['peer_tok_s'], 0)} | **{fmt(x['ratio'])}x** "
                      f"| {x['peer_settings']} |")
    c, g = r["caption"], r["gpu_util"]
    s = c.get("summary") or {}
    md += ["", f"caption end to end: {c['status']}; {s.get('samples', '-')} samples in {fmt(s.get('seconds'))} s "
               f"({fmt(s.get('samples_per_s'))} samples/s); GPU busy fraction of wall time: "
               f"{fmt(g.get('busy_fraction'))} ({g.get('status')}{': ' + g['reason'] if g.get('reason') else ''})"]
    if r["clip"].get("rows"):
        md += ["", "| CLIP dtype | images/s | texts/s |", "| --- | --- | --- |"]
        for x in r["clip"]["rows"]:
            rr = x.get("r") or {}
            md.append(f"| {x['shape']} {x['dtype']} | {fmt(rr.get('images_per_s'), 1)} | {fmt(rr.get('texts_per_s'), 1)} |")
    return "\n".join(md)


if __name__ == "__main__":
    main()
