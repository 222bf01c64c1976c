#!/usr/bin/python3
"""Independent float64 numpy forwards of the ranker's other model families, used to check
capforge's ggml graphs. Written from the model definitions, not from capforge's code:

  siglip     Hugging Face SiglipModel (Zhai et al. 2023, "Sigmoid Loss for Language Image
             Pre-Training"; SigLIP 2 fixed-resolution checkpoints share the layout): ViT without
             class token + attention-probe ("MAP") head; bidirectional text encoder pooled at the
             last position, Linear head with bias. GELU is the tanh approximation.
  open_clip  open_clip directories with OpenAI's CLIP state_dict names (Radford et al. 2021):
             OpenAI text transformer (causal, pooled at argmax(ids) = EOS); vision either a ViT
             (class token, ln_pre, ln_post, proj) or the ModifiedResNet (3-conv stem, anti-aliased
             bottlenecks, attention pooling). Activation QuickGELU or exact GELU per quick_gelu.

usage: ranker_reference.py KIND MODEL_DIR IDS.json PIXELS.f32 N_IMAGES
  KIND:       siglip | open_clip
  IDS.json:   [[...], ...] token ids exactly as the text tower takes them (padded where padded)
  PIXELS.f32: N_IMAGES preprocessed images, float32, planar (3, S, S) each
prints {"text": [[...], ...], "image": [[...], ...]}: embeddings, L2-normalised
"""
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np


# --- weights -------------------------------------------------------------------------------------


def load_safetensors(path):
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        buf = raw[base + a : base + b]
        dt = e["dtype"]
        if dt == "F32":
            arr = np.frombuffer(buf, dtype="<f4")
        elif dt == "F16":
            arr = np.frombuffer(buf, dtype="<f2")
        elif dt == "BF16":
            arr = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif dt == "I64":
            arr = np.frombuffer(buf, dtype="<i8")
        else:
            raise SystemExit(f"{path}: tensor {name} has unsupported dtype {dt}")
        out[name] = arr.reshape(e["shape"]).astype(np.float64)
    return out


def load_weights(model_dir, single):
    d = Path(model_dir)
    if (d / single).exists():
        return load_safetensors(d / single)
    index = d / (single + ".index.json")
    W = {}
    for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
        W.update(load_safetensors(d / shard))
    return W


# --- primitives ----------------------------------------------------------------------------------

_erf = np.vectorize(math.erf)


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def gelu_erf(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def quick_gelu(x):
    return x / (1.0 + np.exp(-1.702 * x))


def softmax(s):
    s = np.exp(s - s.max(-1, keepdims=True))
    return s / s.sum(-1, keepdims=True)


def attention(q, k, v, heads, mask=None):
    """Scaled dot-product attention: q (Tq, D), k and v (Tk, D), already projected."""
    Tq, D = q.shape
    Tk = k.shape[0]
    hd = D // heads
    qh = q.reshape(Tq, heads, hd).transpose(1, 0, 2)
    kh = k.reshape(Tk, heads, hd).transpose(1, 0, 2)
    vh = v.reshape(Tk, heads, hd).transpose(1, 0, 2)
    s = qh @ kh.transpose(0, 2, 1) / math.sqrt(hd)
    if mask is not None:
        s = s + mask
    return (softmax(s) @ vh).transpose(1, 0, 2).reshape(Tq, D)


def linear(x, W, name, bias=True):
    y = x @ W[name + ".weight"].T
    return y + W[name + ".bias"] if bias else y


def mha_fused(query, kv, W, p, heads, mask=None):
    """torch.nn.MultiheadAttention: in_proj_weight (3D, D) = [Wq; Wk; Wv], then out_proj."""
    D = query.shape[-1]
    w, b = W[p + "in_proj_weight"], W[p + "in_proj_bias"]
    q = query @ w[:D].T + b[:D]
    k = kv @ w[D : 2 * D].T + b[D : 2 * D]
    v = kv @ w[2 * D :].T + b[2 * D :]
    return linear(attention(q, k, v, heads, mask), W, p + "out_proj")


def unit(v):
    return (v / np.linalg.norm(v)).tolist()


# --- SigLIP --------------------------------------------------------------------------------------


def siglip_encoder(x, W, prefix, cfg):
    heads, eps = cfg["num_attention_heads"], cfg.get("layer_norm_eps", 1e-6)
    for i in range(cfg["num_hidden_layers"]):
        p = f"{prefix}.encoder.layers.{i}."
        h = layer_norm(x, W[p + "layer_norm1.weight"], W[p + "layer_norm1.bias"], eps)
        q, k, v = (linear(h, W, p + f"self_attn.{n}_proj") for n in "qkv")
        x = x + linear(attention(q, k, v, heads), W, p + "self_attn.out_proj")
        h = layer_norm(x, W[p + "layer_norm2.weight"], W[p + "layer_norm2.bias"], eps)
        x = x + linear(gelu_tanh(linear(h, W, p + "mlp.fc1")), W, p + "mlp.fc2")
    return x


def siglip_text(ids, W, cfg):
    x = W["text_model.embeddings.token_embedding.weight"][ids]
    x = x + W["text_model.embeddings.position_embedding.weight"][: len(ids)]
    x = siglip_encoder(x, W, "text_model", cfg)  # no attention mask: every position sees every other
    eps = cfg.get("layer_norm_eps", 1e-6)
    x = layer_norm(x, W["text_model.final_layer_norm.weight"], W["text_model.final_layer_norm.bias"], eps)
    return linear(x[-1], W, "text_model.head")  # the last position (padding included)


def siglip_image(pixels, W, cfg):
    w = W["vision_model.embeddings.patch_embedding.weight"]  # (D, 3, P, P), stride P
    D, C, P, _ = w.shape
    S = pixels.shape[-1]
    G = S // P
    patches = pixels.reshape(C, G, P, G, P).transpose(1, 3, 0, 2, 4).reshape(G * G, C * P * P)
    x = patches @ w.reshape(D, -1).T + W["vision_model.embeddings.patch_embedding.bias"]
    x = x + W["vision_model.embeddings.position_embedding.weight"]  # no class token
    x = siglip_encoder(x, W, "vision_model", cfg)
    eps = cfg.get("layer_norm_eps", 1e-6)
    x = layer_norm(x, W["vision_model.post_layernorm.weight"], W["vision_model.post_layernorm.bias"], eps)
    # Multihead attention pooling: a learned probe queries every token.
    h = "vision_model.head."
    probe = W[h + "probe"].reshape(1, D)
    r = mha_fused(probe, x, W, h + "attention.", cfg["num_attention_heads"])
    m = layer_norm(r, W[h + "layernorm.weight"], W[h + "layernorm.bias"], eps)
    r = r + linear(gelu_tanh(linear(m, W, h + "mlp.fc1")), W, h + "mlp.fc2")
    return r[0]


def run_siglip(model_dir, ids, pix, n):
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    W = load_weights(model_dir, "model.safetensors")
    texts = [unit(siglip_text(np.array(t), W, cfg["text_config"])) for t in ids]
    images = []
    if n:
        S = cfg["vision_config"]["image_size"]
        images = [unit(siglip_image(p, W, cfg["vision_config"])) for p in pix.reshape(n, 3, S, S)]
    return texts, images


# --- open_clip (OpenAI CLIP layout) --------------------------------------------------------------

LN_EPS = 1e-5  # torch.nn.LayerNorm's default, what OpenAI's and open_clip's towers use
BN_EPS = 1e-5


def resblocks(x, W, prefix, layers, heads, act, mask=None):
    for i in range(layers):
        p = f"{prefix}.resblocks.{i}."
        h = layer_norm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"], LN_EPS)
        x = x + mha_fused(h, h, W, p + "attn.", heads, mask)
        h = layer_norm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"], LN_EPS)
        x = x + linear(act(linear(h, W, p + "mlp.c_fc")), W, p + "mlp.c_proj")
    return x


def open_clip_text(ids, W, tcfg, act):
    T = len(ids)
    x = W["token_embedding.weight"][ids] + W["positional_embedding"][:T]
    causal = np.triu(np.full((T, T), -np.inf), 1)
    x = resblocks(x, W, "transformer", tcfg["layers"], tcfg["heads"], act, causal)
    x = layer_norm(x, W["ln_final.weight"], W["ln_final.bias"], LN_EPS)
    return x[int(np.argmax(ids))] @ W["text_projection"]


def open_clip_vit(pixels, W, vcfg, act):
    w = W["visual.conv1.weight"]  # (width, 3, P, P), stride P, no bias
    D, C, P, _ = w.shape
    S = pixels.shape[-1]
    G = S // P
    patches = pixels.reshape(C, G, P, G, P).transpose(1, 3, 0, 2, 4).reshape(G * G, C * P * P)
    x = patches @ w.reshape(D, -1).T
    x = np.concatenate([W["visual.class_embedding"][None], x]) + W["visual.positional_embedding"]
    x = layer_norm(x, W["visual.ln_pre.weight"], W["visual.ln_pre.bias"], LN_EPS)
    heads = vcfg["width"] // vcfg.get("head_width", 64)
    x = resblocks(x, W, "visual.transformer", vcfg["layers"], heads, act)
    return layer_norm(x[0], W["visual.ln_post.weight"], W["visual.ln_post.bias"], LN_EPS) @ W["visual.proj"]


def conv2d(x, w, stride=1, pad=0):
    """x (C, H, W), w (O, C, k, k), no bias; im2col."""
    C, H, Wd = x.shape
    O, _, k, _ = w.shape
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    Ho = (H + 2 * pad - k) // stride + 1
    Wo = (Wd + 2 * pad - k) // stride + 1
    cols = np.empty((C, k, k, Ho, Wo))
    for i in range(k):
        for j in range(k):
            cols[:, i, j] = x[:, i : i + stride * Ho : stride, j : j + stride * Wo : stride]
    return (w.reshape(O, -1) @ cols.reshape(C * k * k, Ho * Wo)).reshape(O, Ho, Wo)


def avg_pool(x, k):
    """AvgPool2d(k): kernel k, stride k, no padding (floor)."""
    C, H, Wd = x.shape
    Ho, Wo = H // k, Wd // k
    return x[:, : Ho * k, : Wo * k].reshape(C, Ho, k, Wo, k).mean(axis=(2, 4))


def batch_norm(x, W, p):
    """BatchNorm2d in eval mode: running statistics."""
    scale = W[p + ".weight"] / np.sqrt(W[p + ".running_var"] + BN_EPS)
    shift = W[p + ".bias"] - W[p + ".running_mean"] * scale
    return x * scale[:, None, None] + shift[:, None, None]


def relu(x):
    return np.maximum(x, 0.0)


def bottleneck(x, W, p, stride):
    out = relu(batch_norm(conv2d(x, W[p + "conv1.weight"]), W, p + "bn1"))
    out = relu(batch_norm(conv2d(out, W[p + "conv2.weight"], pad=1), W, p + "bn2"))
    if stride > 1:
        out = avg_pool(out, stride)
    out = batch_norm(conv2d(out, W[p + "conv3.weight"]), W, p + "bn3")
    identity = x
    if p + "downsample.0.weight" in W:  # Sequential("-1": AvgPool2d, "0": Conv2d, "1": BatchNorm2d)
        identity = avg_pool(x, stride) if stride > 1 else x
        identity = batch_norm(conv2d(identity, W[p + "downsample.0.weight"]), W, p + "downsample.1")
    return relu(out + identity)


def open_clip_resnet(pixels, W, vcfg):
    v = "visual."
    x = relu(batch_norm(conv2d(pixels, W[v + "conv1.weight"], stride=2, pad=1), W, v + "bn1"))
    x = relu(batch_norm(conv2d(x, W[v + "conv2.weight"], pad=1), W, v + "bn2"))
    x = relu(batch_norm(conv2d(x, W[v + "conv3.weight"], pad=1), W, v + "bn3"))
    x = avg_pool(x, 2)
    inplanes = vcfg["width"]
    for stage, depth in enumerate(vcfg["layers"]):
        planes = vcfg["width"] * 2**stage
        for b in range(depth):
            stride = 2 if stage > 0 and b == 0 else 1
            p = f"{v}layer{stage + 1}.{b}."
            needs_down = stride > 1 or inplanes != planes * 4
            if needs_down != (p + "downsample.0.weight" in W):
                raise SystemExit(f"{p}: downsample branch presence does not match the architecture")
            x = bottleneck(x, W, p, stride)
            inplanes = planes * 4
    # Attention pooling: the mean token queries [mean; tokens] (+ positions).
    C = x.shape[0]
    tokens = x.reshape(C, -1).T  # (HW, C), row-major over (h, w)
    tokens = np.concatenate([tokens.mean(0, keepdims=True), tokens]) + W[v + "attnpool.positional_embedding"]
    heads = vcfg["width"] * 32 // vcfg.get("head_width", 64)
    a = "attnpool."
    q = linear(tokens[:1], W, v + a + "q_proj")
    k = linear(tokens, W, v + a + "k_proj")
    val = linear(tokens, W, v + a + "v_proj")
    return linear(attention(q, k, val, heads), W, v + a + "c_proj")[0]


def run_open_clip(model_dir, ids, pix, n):
    cfg = json.loads((Path(model_dir) / "open_clip_config.json").read_text())
    mcfg = cfg.get("model_cfg", cfg)
    act = quick_gelu if mcfg.get("quick_gelu", False) else gelu_erf
    W = load_weights(model_dir, "open_clip_model.safetensors")
    texts = [unit(open_clip_text(np.array(t), W, mcfg["text_cfg"], act)) for t in ids]
    images = []
    if n:
        vcfg = mcfg["vision_cfg"]
        S = vcfg["image_size"]
        resnet = isinstance(vcfg["layers"], (list, tuple))
        for p in pix.reshape(n, 3, S, S):
            e = open_clip_resnet(p, W, vcfg) if resnet else open_clip_vit(p, W, vcfg, act)
            images.append(unit(e))
    return texts, images


def main():
    if len(sys.argv) != 6 or sys.argv[1] not in ("siglip", "open_clip"):
        raise SystemExit(__doc__)
    kind, model, ids_path, pix_path, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    ids = json.loads(Path(ids_path).read_text())
    pix = np.fromfile(pix_path, dtype="<f4").astype(np.float64) if n else None
    texts, images = (run_siglip if kind == "siglip" else run_open_clip)(model, ids, pix, n)
    print(json.dumps({"text": texts, "image": images}))


if __name__ == "__main__":
    main()
