#!/usr/bin/python3
"""The peer for SigLIP: PyTorch eager (Debian's python3-torch) running the SigLIP forward on the
same weights and inputs as capforge-bench-clip, written from the model's definition (Zhai et al.,
"Sigmoid Loss for Language Image Pre-Training") with the tensor names of a Hugging Face
SiglipModel's model.safetensors.

  vision: patch convolution with bias, + position embeddings (no class token), pre-LN encoder
          layers (GELU, tanh form), LayerNorm on every token, then the attention-probe pooling head
          (a learned probe queries every token through multi-head attention with a fused in_proj,
          out_proj; then probe + MLP(LayerNorm(probe))).
  text:   token + position embeddings, bidirectional pre-LN encoder layers, final LayerNorm, the
          LAST position (texts are padded to 64), a Linear head with bias.

usage: see peer_common.py (VARIANT fp32 | bf16 | bf16w)
"""
import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_common  # noqa: E402
from peer_common import ln  # noqa: E402


def attention(q, k, v, heads):
    """q [B, Tq, D], k and v [B, Tk, D] -> [B, Tq, D], softmax(q k^T / sqrt(hd)) v per head."""
    B, Tq, D = q.shape
    Tk, hd = k.shape[1], D // heads
    q = q.view(B, Tq, heads, hd).transpose(1, 2)
    k = k.view(B, Tk, heads, hd).transpose(1, 2)
    v = v.view(B, Tk, heads, hd).transpose(1, 2)
    s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
    return torch.matmul(s.softmax(-1), v).transpose(1, 2).reshape(B, Tq, D)


def gelu(x):
    return F.gelu(x, approximate="tanh")


def encoder(x, W, prefix, cfg):
    H, eps = cfg["num_attention_heads"], cfg["layer_norm_eps"]
    for i in range(cfg["num_hidden_layers"]):
        p = f"{prefix}.encoder.layers.{i}."
        h = ln(x, W[p + "layer_norm1.weight"], W[p + "layer_norm1.bias"], eps)
        q, k, v = (F.linear(h, W[p + f"self_attn.{n}_proj.weight"], W[p + f"self_attn.{n}_proj.bias"]) for n in "qkv")
        x = x + F.linear(attention(q, k, v, H), W[p + "self_attn.out_proj.weight"], W[p + "self_attn.out_proj.bias"])
        h = ln(x, W[p + "layer_norm2.weight"], W[p + "layer_norm2.bias"], eps)
        h = F.linear(gelu(F.linear(h, W[p + "mlp.fc1.weight"], W[p + "mlp.fc1.bias"])),
                     W[p + "mlp.fc2.weight"], W[p + "mlp.fc2.bias"])
        x = x + h
    return x


def images(pix, W, cfg):
    P, eps = cfg["patch_size"], cfg["layer_norm_eps"]
    x = F.conv2d(pix, W["vision_model.embeddings.patch_embedding.weight"],
                 W["vision_model.embeddings.patch_embedding.bias"], stride=P)
    x = x.flatten(2).transpose(1, 2) + W["vision_model.embeddings.position_embedding.weight"]
    x = encoder(x, W, "vision_model", cfg)
    B, T, D = x.shape
    x = ln(x, W["vision_model.post_layernorm.weight"], W["vision_model.post_layernorm.bias"], eps)
    # attention-probe pooling head (nn.MultiheadAttention math with a fused in_proj)
    hp = "vision_model.head."
    wq, wk, wv = W[hp + "attention.in_proj_weight"].chunk(3)
    bq, bk, bv = W[hp + "attention.in_proj_bias"].chunk(3)
    probe = W[hp + "probe"].expand(B, 1, D)
    a = attention(F.linear(probe, wq, bq), F.linear(x, wk, bk), F.linear(x, wv, bv), cfg["num_attention_heads"])
    h = F.linear(a, W[hp + "attention.out_proj.weight"], W[hp + "attention.out_proj.bias"])
    h = h.to(W[hp + "layernorm.weight"].dtype)  # the residual stream in the weights' dtype, as in the encoder
    m = ln(h, W[hp + "layernorm.weight"], W[hp + "layernorm.bias"], eps)
    m = F.linear(gelu(F.linear(m, W[hp + "mlp.fc1.weight"], W[hp + "mlp.fc1.bias"])),
                 W[hp + "mlp.fc2.weight"], W[hp + "mlp.fc2.bias"])
    return F.normalize((h + m)[:, 0].float(), dim=-1)


def texts(ids, lengths, W, cfg):
    x = F.embedding(ids, W["text_model.embeddings.token_embedding.weight"])
    x = x + W["text_model.embeddings.position_embedding.weight"][: ids.shape[1]]
    x = encoder(x, W, "text_model", cfg)
    x = ln(x[:, -1], W["text_model.final_layer_norm.weight"], W["text_model.final_layer_norm.bias"],
           cfg["layer_norm_eps"])  # only the last position is pooled; LayerNorm is per token
    return F.normalize(F.linear(x, W["text_model.head.weight"], W["text_model.head.bias"]).float(), dim=-1)


def tower_cfg(c):
    d = {"num_attention_heads": 12, "num_hidden_layers": 12, "layer_norm_eps": 1e-6, "patch_size": 16,
         "image_size": 224, "pad_token_id": 1}
    d.update(c)
    return d


def main():
    args = peer_common.parse_args()
    cfg = json.loads((args["model"] / "config.json").read_text())
    vc, tc = tower_cfg(cfg.get("vision_config", {})), tower_cfg(cfg.get("text_config", {}))
    pre = json.loads((args["model"] / "preprocessor_config.json").read_text())
    W = peer_common.weights_as_params(peer_common.load_safetensors(args["model"] / "model.safetensors"),
                                     args["variant"])
    pix = peer_common.read_pixels(args["pixels"], args["n_img"], vc["image_size"], pre.get("image_mean", [0.5] * 3),
                                  pre.get("image_std", [0.5] * 3))
    batches = list(peer_common.text_batches(args["ids"], tc["pad_token_id"]))
    peer_common.run(args, lambda p: images(p, W, vc), lambda i, n: texts(i, n, W, tc), pix, batches)


if __name__ == "__main__":
    main()
