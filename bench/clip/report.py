#!/usr/bin/python3
"""Prints the CLIP benchmark table for one shape from the runner's raw results."""
import json
import sys
from pathlib import Path

import numpy as np

shape, model, results, work, peak, n_img, n_txt = sys.argv[1:8]
peak = json.loads(peak)
cfg = json.loads((Path(model) / "config.json").read_text())
v, t = cfg["vision_config"], cfg["text_config"]
ids = json.loads((Path(work) / "ids.json").read_text())


def tower_flops(tokens, d, f, layers):
    return layers * (2 * tokens * (4 * d * d + 2 * d * f) + 4 * tokens * tokens * d)


n_patch = (v["image_size"] // v["patch_size"]) ** 2
img_flops = tower_flops(n_patch + 1, v["hidden_size"], v["intermediate_size"], v["num_hidden_layers"]) + \
    2 * n_patch * v["hidden_size"] * 3 * v["patch_size"] ** 2
txt_flops = np.mean([tower_flops(len(i), t["hidden_size"], t["intermediate_size"], t["num_hidden_layers"]) for i in ids])
rows = [json.loads(l) for l in Path(results).read_text().splitlines()]
torch = {r["dtype"]: r["r"] for r in rows if r["side"] == "torch"}
best_img = max(torch.values(), key=lambda r: r["images_per_s"])
best_txt = max(torch.values(), key=lambda r: r["texts_per_s"])
E = cfg["projection_dim"]
ref = np.fromfile(Path(work) / "f32.emb", dtype="<f4").reshape(-1, E)


def cos(dt):
    e = np.fromfile(Path(work) / f"{dt}.emb", dtype="<f4").reshape(-1, E)
    return float(np.min(np.sum(e * ref, 1)))


print(f"\n{shape}: {img_flops / 1e9:.2f} GFLOP/image, {txt_flops / 1e9:.3f} GFLOP/text "
      f"(mean {np.mean([len(i) for i in ids]):.1f} tokens), {n_img} images, {n_txt} texts")
print(f"{'side':10} {'dtype':6} {'img/s':>8} {'vs torch':>9} {'GFLOP/s':>8} {'of peak':>8} {'txt/s':>8} {'vs torch':>9} "
      f"{'GFLOP/s':>8} {'min cos':>8}")
for r in rows:
    x = r["r"]
    gi, gt = x["images_per_s"] * img_flops / 1e9, x["texts_per_s"] * txt_flops / 1e9
    pk = peak["bf16"] if r["dtype"] in ("bf16", "f16", "q8_0") else peak["fp32"]
    c = f"{cos(r['dtype']):.5f}" if r["side"] == "capforge" else "-"
    print(f"{r['side']:10} {r['dtype']:6} {x['images_per_s']:8.2f} {x['images_per_s'] / best_img['images_per_s']:8.2f}x "
          f"{gi:8.1f} {gi / pk:7.0%} {x['texts_per_s']:8.1f} {x['texts_per_s'] / best_txt['texts_per_s']:8.2f}x {gt:8.1f} {c:>8}")
print("ratios are against torch's best configuration for each workload; 'of peak' divides by the fp32 or bf16 GEMM peak")
