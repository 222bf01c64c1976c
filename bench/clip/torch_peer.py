#!/usr/bin/python3
"""The peer: PyTorch eager (Debian's python3-torch) running the CLIP forward on the same weights
and shapes as capforge-bench-clip. Written from the paper with the Hugging Face weight layout.

usage: torch_peer.py MODEL_DIR DTYPE(fp32|bf16) THREADS IMAGES IDS.json
  IDS.json: the token ids capforge-bench-clip used (--ids), so both sides run the same shapes
prints {"images_per_s": ..., "texts_per_s": ...}
"""
import json
import math
import struct
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def load(model_dir, dtype):
    raw = (Path(model_dir) / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        t = torch.frombuffer(bytearray(raw[8 + n + a : 8 + n + b]), dtype={"F32": torch.float32, "F16": torch.float16,
                                                                           "BF16": torch.bfloat16}[e["dtype"]])
        out[name] = t.reshape(e["shape"]).to(dtype)
    return out


def encoder(x, W, prefix, cfg, causal):
    B, T, D = x.shape
    H = cfg["num_attention_heads"]
    eps = cfg.get("layer_norm_eps", 1e-5)
    mask = torch.full((T, T), float("-inf"), dtype=x.dtype).triu(1) if causal else None
    for i in range(cfg["num_hidden_layers"]):
        p = f"{prefix}.encoder.layers.{i}."
        h = F.layer_norm(x, (D,), W[p + "layer_norm1.weight"], W[p + "layer_norm1.bias"], eps)
        q, k, v = (F.linear(h, W[p + f"self_attn.{n}_proj.weight"], W[p + f"self_attn.{n}_proj.bias"])
                   .view(B, T, H, D // H).transpose(1, 2) for n in "qkv")
        s = (q @ k.transpose(-1, -2)) / math.sqrt(D // H)
        if mask is not None:
            s = s + mask
        a = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = x + F.linear(a, W[p + "self_attn.out_proj.weight"], W[p + "self_attn.out_proj.bias"])
        h = F.layer_norm(x, (D,), W[p + "layer_norm2.weight"], W[p + "layer_norm2.bias"], eps)
        h = F.linear(h, W[p + "mlp.fc1.weight"], W[p + "mlp.fc1.bias"])
        h = h * torch.sigmoid(1.702 * h) if cfg.get("hidden_act", "quick_gelu") == "quick_gelu" else F.gelu(h)
        x = x + F.linear(h, W[p + "mlp.fc2.weight"], W[p + "mlp.fc2.bias"])
    return x


def images(pix, W, cfg):
    w = W["vision_model.embeddings.patch_embedding.weight"]
    x = F.conv2d(pix, w, stride=w.shape[-1]).flatten(2).transpose(1, 2)
    cls = W["vision_model.embeddings.class_embedding"].expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], 1) + W["vision_model.embeddings.position_embedding.weight"]
    eps = cfg.get("layer_norm_eps", 1e-5)
    D = x.shape[-1]
    x = F.layer_norm(x, (D,), W["vision_model.pre_layrnorm.weight"], W["vision_model.pre_layrnorm.bias"], eps)
    x = encoder(x, W, "vision_model", cfg, False)
    pooled = F.layer_norm(x[:, 0], (D,), W["vision_model.post_layernorm.weight"], W["vision_model.post_layernorm.bias"], eps)
    return F.normalize(F.linear(pooled, W["visual_projection.weight"]), dim=-1)


def texts(ids, lengths, W, cfg):
    x = W["text_model.embeddings.token_embedding.weight"][ids]
    x = x + W["text_model.embeddings.position_embedding.weight"][: ids.shape[1]]
    x = encoder(x, W, "text_model", cfg, True)
    D = x.shape[-1]
    x = F.layer_norm(x, (D,), W["text_model.final_layer_norm.weight"], W["text_model.final_layer_norm.bias"],
                     cfg.get("layer_norm_eps", 1e-5))
    pooled = x[torch.arange(x.shape[0]), lengths - 1]  # EOS ends each text
    return F.normalize(F.linear(pooled, W["text_projection.weight"]), dim=-1)


def main():
    model, dt, threads, n_img = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    all_ids = json.loads(Path(sys.argv[5]).read_text())
    n_txt = len(all_ids)
    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if dt == "bf16" else torch.float32
    cfg = json.loads((Path(model) / "config.json").read_text())
    W = load(model, dtype)
    S = cfg["vision_config"]["image_size"]
    g = torch.Generator().manual_seed(7)
    pix = torch.randn(n_img, 3, S, S, generator=g).to(dtype)
    batches = []  # padded per batch of 64 to its longest text, as capforge does
    for i in range(0, n_txt, 64):
        chunk = all_ids[i : i + 64]
        T = max(len(t) for t in chunk)
        ids = torch.zeros(len(chunk), T, dtype=torch.long)
        for r, t in enumerate(chunk):
            ids[r, : len(t)] = torch.tensor(t)
        batches.append((ids, torch.tensor([len(t) for t in chunk])))
    with torch.no_grad():
        images(pix[:1], W, cfg["vision_config"]), texts(batches[0][0][:1], batches[0][1][:1], W, cfg["text_config"])
        t0 = time.perf_counter()
        for i in range(0, n_img, 16):
            images(pix[i : i + 16], W, cfg["vision_config"])
        t1 = time.perf_counter()
        for ids, lengths in batches:
            texts(ids, lengths, W, cfg["text_config"])
        t2 = time.perf_counter()
    print(json.dumps({"images_per_s": n_img / (t1 - t0), "texts_per_s": n_txt / (t2 - t1)}))


if __name__ == "__main__":
    main()
