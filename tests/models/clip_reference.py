#!/usr/bin/python3
"""An independent numpy CLIP forward (Radford et al. 2021, "Learning Transferable Visual Models
From Natural Language Supervision", with the Hugging Face CLIPModel weight layout), used to check
capforge's ggml graphs. Reads a Hugging Face CLIP dir directly (safetensors parsed here).

usage: clip_reference.py MODEL_DIR TEXT_IDS.json PIXELS.f32 N_IMAGES
  TEXT_IDS.json: [[49406, ..., 49407], ...] token ids with BOS/EOS
  PIXELS.f32:    N_IMAGES preprocessed images, float32, planar (3, S, S) each
prints {"text": [[...], ...], "image": [[...], ...]}: projected, L2-normalised embeddings
"""
import json
import sys
from pathlib import Path

import numpy as np


# the safetensors reader shared with the other families' reference (same directory)
from ranker_reference import load_safetensors  # noqa: E402


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def act(x, kind):
    if kind == "quick_gelu":
        return x / (1.0 + np.exp(-1.702 * x))
    from math import erf

    return 0.5 * x * (1.0 + np.vectorize(erf)(x / np.sqrt(2.0)))


def encoder(x, W, prefix, cfg, causal):
    heads = cfg["num_attention_heads"]
    T, D = x.shape
    hd = D // heads
    eps = cfg.get("layer_norm_eps", 1e-5)
    for i in range(cfg["num_hidden_layers"]):
        p = f"{prefix}.encoder.layers.{i}."
        h = layer_norm(x, W[p + "layer_norm1.weight"], W[p + "layer_norm1.bias"], eps)
        q, k, v = (h @ W[p + f"self_attn.{n}_proj.weight"].T + W[p + f"self_attn.{n}_proj.bias"] for n in "qkv")
        q, k, v = (m.reshape(T, heads, hd).transpose(1, 0, 2) for m in (q, k, v))
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
        if causal:
            s = s + np.triu(np.full((T, T), -np.inf), 1)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = (s @ v).transpose(1, 0, 2).reshape(T, D)
        x = x + a @ W[p + "self_attn.out_proj.weight"].T + W[p + "self_attn.out_proj.bias"]
        h = layer_norm(x, W[p + "layer_norm2.weight"], W[p + "layer_norm2.bias"], eps)
        h = act(h @ W[p + "mlp.fc1.weight"].T + W[p + "mlp.fc1.bias"], cfg.get("hidden_act", "quick_gelu"))
        x = x + h @ W[p + "mlp.fc2.weight"].T + W[p + "mlp.fc2.bias"]
    return x


def text_embed(ids, W, cfg):
    x = W["text_model.embeddings.token_embedding.weight"][ids]
    x = x + W["text_model.embeddings.position_embedding.weight"][: len(ids)]
    x = encoder(x, W, "text_model", cfg, causal=True)
    x = layer_norm(x, W["text_model.final_layer_norm.weight"], W["text_model.final_layer_norm.bias"],
                   cfg.get("layer_norm_eps", 1e-5))
    pooled = x[len(ids) - 1]  # the EOS token ends every sequence
    return pooled @ W["text_projection.weight"].T


def image_embed(pixels, W, cfg):
    w = W["vision_model.embeddings.patch_embedding.weight"]  # (D, 3, P, P)
    D, _, P, _ = w.shape
    S = pixels.shape[-1]
    G = S // P
    patches = pixels.reshape(3, G, P, G, P).transpose(1, 3, 0, 2, 4).reshape(G * G, 3 * P * P)
    x = patches @ w.reshape(D, -1).T
    x = np.concatenate([W["vision_model.embeddings.class_embedding"][None], x])
    x = x + W["vision_model.embeddings.position_embedding.weight"]
    eps = cfg.get("layer_norm_eps", 1e-5)
    x = layer_norm(x, W["vision_model.pre_layrnorm.weight"], W["vision_model.pre_layrnorm.bias"], eps)
    x = encoder(x, W, "vision_model", cfg, causal=False)
    pooled = layer_norm(x[0], W["vision_model.post_layernorm.weight"], W["vision_model.post_layernorm.bias"], eps)
    return pooled @ W["visual_projection.weight"].T


def unit(v):
    return (v / np.linalg.norm(v)).tolist()


def main():
    model, ids_path, pix_path, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    cfg = json.loads((Path(model) / "config.json").read_text())
    W = load_safetensors(Path(model) / "model.safetensors")
    ids = json.loads(Path(ids_path).read_text())
    texts = [unit(text_embed(np.array(t), W, cfg["text_config"])) for t in ids]
    images = []
    if n:
        S = cfg["vision_config"]["image_size"]
        pix = np.fromfile(pix_path, dtype="<f4").astype(np.float64).reshape(n, 3, S, S)
        images = [unit(image_embed(p, W, cfg["vision_config"])) for p in pix]
    print(json.dumps({"text": texts, "image": images}))


if __name__ == "__main__":
    main()
