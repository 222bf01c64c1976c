#!/usr/bin/python3
"""Prints the CLIP benchmark table for one shape from the runner's raw results.

FLOPs are counted from the model's shapes, 2 per multiply-add, for what both sides execute:
every convolution (patch embedding; for the ResNet all 3x3 and 1x1 convolutions and the
downsample branches), every matrix product (projections, MLPs, heads) and the two attention
products; texts at the length each batch of 64 is padded to (SigLIP: 64). Norms, activations,
pooling and softmax are not counted.
usage: report.py SHAPE MODEL_DIR RESULTS.jsonl WORK_DIR PEAK_JSON IMAGES TEXTS
"""
import json
import sys
from pathlib import Path

import numpy as np


def encoder_flops(tokens, d, f, layers):
    """Pre-LN transformer layers: q, k, v, o (4 d^2), the MLP (2 d f), q k^T and att v (2 T^2 d)."""
    return layers * (2 * tokens * (4 * d * d + 2 * d * f) + 4 * tokens * tokens * d)


def padded_lengths(ids, batch=64):
    """The length each text is computed at: its batch's longest."""
    out = []
    for i in range(0, len(ids), batch):
        chunk = ids[i : i + batch]
        out += [max(len(t) for t in chunk)] * len(chunk)
    return out


def resnet_flops(v, embed_dim):
    """OpenAI ModifiedResNet at image_size: stem, bottlenecks (conv2 at the block's input
    resolution, conv3 and the downsample after the stride's average pool), attention pool."""
    w, S = v["width"], v["image_size"]
    H = S // 2
    f = 2 * H * H * (w // 2) * 3 * 9 + 2 * H * H * (w // 2) * (w // 2) * 9 + 2 * H * H * w * (w // 2) * 9
    H //= 2
    inplanes = w
    for s, depth in enumerate(v["layers"]):
        planes = w << s
        for i in range(depth):
            stride = 2 if (i == 0 and s > 0) else 1
            Ho = H // stride
            f += 2 * H * H * inplanes * planes + 2 * H * H * planes * planes * 9 + 2 * Ho * Ho * planes * 4 * planes
            if stride > 1 or inplanes != 4 * planes:
                f += 2 * Ho * Ho * inplanes * 4 * planes
            inplanes, H = 4 * planes, Ho
    C, T = w * 32, H * H + 1
    return f + 2 * 2 * T * C * C + 2 * C * C + 4 * T * C + 2 * C * embed_dim


def model_flops(model, ids):
    """(GFLOP per image, mean GFLOP per text, a line describing the shapes)."""
    model = Path(model)
    lens = padded_lengths(ids)
    if (model / "open_clip_config.json").exists():
        m = json.loads((model / "open_clip_config.json").read_text())["model_cfg"]
        v, t, E = m["vision_cfg"], m["text_cfg"], m["embed_dim"]
        if not isinstance(v["layers"], list):
            raise SystemExit("report.py: open_clip ViT towers are not benchmarked here")
        img = resnet_flops(v, E)
        D = t.get("width", 512)
        txt = np.mean([encoder_flops(n, D, 4 * D, t.get("layers", 12)) + 2 * D * E for n in lens])
        return img, txt, f"ResNet {v['layers']} width {v['width']} at {v['image_size']} px"
    cfg = json.loads((model / "config.json").read_text())
    v, t = cfg["vision_config"], cfg["text_config"]
    siglip = cfg.get("model_type") == "siglip"
    n_patch = (v["image_size"] // v["patch_size"]) ** 2
    D, F = v["hidden_size"], v["intermediate_size"]
    img = 2 * n_patch * D * 3 * v["patch_size"] ** 2
    Dt, Ft = t["hidden_size"], t["intermediate_size"]
    if siglip:  # no class token; the attention-probe head (k, v over every token; q, o, MLP on the probe)
        img += encoder_flops(n_patch, D, F, v["num_hidden_layers"])
        img += 2 * 2 * n_patch * D * D + 2 * 2 * D * D + 4 * n_patch * D + 2 * 2 * D * F
        E = Dt
    else:  # class token, then the projection
        E = cfg["projection_dim"]
        img += encoder_flops(n_patch + 1, D, F, v["num_hidden_layers"]) + 2 * D * E
    txt = np.mean([encoder_flops(n, Dt, Ft, t["num_hidden_layers"]) + 2 * Dt * E for n in lens])
    return img, txt, f"{n_patch} patches"


def main():
    shape, model, results, work, peak, n_img, n_txt = sys.argv[1:8]
    peak, n_img, n_txt, work = json.loads(peak), int(n_img), int(n_txt), Path(work)
    ids = json.loads((work / "ids.json").read_text())
    img_flops, txt_flops, what = model_flops(model, ids)
    rows = [json.loads(l) for l in Path(results).read_text().splitlines()]

    def emb(path):
        e = np.fromfile(path, dtype="<f4")
        return e.reshape(n_img + n_txt, -1)

    ref = emb(work / "f32.emb")

    def cos(path):
        """Minimum cosine to capforge f32 over the images and over the texts."""
        if not path.exists():
            return "-", "-"
        c = np.sum(emb(path) * ref, 1)
        return f"{c[:n_img].min():.5f}", f"{c[n_img:].min():.5f}"

    # the peer: for each variant its best thread setting, per workload
    table = []
    for r in rows:
        if r["side"] == "capforge":
            table.append(dict(side="capforge", dtype=r["dtype"], img=r["r"]["images_per_s"], img_env="",
                              txt=r["r"]["texts_per_s"], txt_env="", cos=cos(work / f"{r['dtype']}.emb")))
    variants = list(dict.fromkeys(r["dtype"] for r in rows if r["side"] == "torch"))
    for v in variants:
        runs = [r for r in rows if r["side"] == "torch" and r["dtype"] == v]
        bi = max(runs, key=lambda r: r["r"]["images_per_s"])
        bt = max(runs, key=lambda r: r["r"]["texts_per_s"])
        table.append(dict(side="torch", dtype=v, img=bi["r"]["images_per_s"], img_env=bi.get("env", ""),
                          txt=bt["r"]["texts_per_s"], txt_env=bt.get("env", ""),
                          cos=cos(work / f"torch-{v}-{bi.get('env', '')}.emb")))
    torch_rows = [r for r in table if r["side"] == "torch"]
    best_img = max(r["img"] for r in torch_rows)
    best_txt = max(r["txt"] for r in torch_rows)

    print(f"\n{shape} ({what}): {img_flops / 1e9:.2f} GFLOP/image, {txt_flops / 1e9:.3f} GFLOP/text "
          f"(mean {np.mean([len(i) for i in ids]):.1f} tokens, padded {np.mean(padded_lengths(ids)):.1f}), "
          f"{n_img} images, {n_txt} texts")
    for r in rows:
        if r["side"] == "torch":
            x = r["r"]
            print(f"  torch {r['dtype']:8} {r.get('env', ''):8} img/s {x['images_per_s']:8.3f}  txt/s {x['texts_per_s']:8.2f}")
    print(f"{'side':9} {'dtype':8} {'img/s':>8} {'vs best':>8} {'GFLOP/s':>8} {'of peak':>7} {'txt/s':>8} "
          f"{'vs best':>8} {'GFLOP/s':>8} {'of peak':>7} {'cos img':>8} {'cos txt':>8}  peer env (img/txt)")
    for r in table:
        gi, gt = r["img"] * img_flops / 1e9, r["txt"] * txt_flops / 1e9
        pk = peak["fp32"] if r["dtype"] in ("f32", "fp32", "fp32-cl") else peak["bf16"]
        env = f"{r['img_env']}/{r['txt_env']}" if r["side"] == "torch" else ""
        print(f"{r['side']:9} {r['dtype']:8} {r['img']:8.3f} {r['img'] / best_img:7.2f}x {gi:8.1f} {gi / pk:7.0%} "
              f"{r['txt']:8.2f} {r['txt'] / best_txt:7.2f}x {gt:8.1f} {gt / pk:7.0%} {r['cos'][0]:>8} {r['cos'][1]:>8}  {env}")
    print("ratios are against torch's best variant and thread setting for each workload; 'of peak' divides by the "
          "fp32 GEMM peak for f32/fp32 rows and by the bf16 peak for the others (int8 too, whose products reach ~2x "
          "it); cos: minimum cosine to capforge f32")


if __name__ == "__main__":
    main()
