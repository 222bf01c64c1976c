#!/usr/bin/python3
"""Independent float64 numpy forward of Hugging Face's BlipForConditionalGeneration (Li et al.
2022, "BLIP: Bootstrapping Language-Image Pre-training"; Salesforce/blip-image-captioning-base and
-large), used to check capforge's ggml graphs. Written from transformers' model definitions
(models/blip/modeling_blip.py, modeling_blip_text.py), not from capforge's code:

  vision   ViT: Conv2d patch embedding (stride = patch) with bias, class token first, learned
           positions [1, N+1, D]; NO pre-LayerNorm; pre-norm blocks (layer_norm1 -> fused qkv
           [3D, D] = [Wq; Wk; Wv] -> softmax(q k^T / sqrt(hd)) v -> projection, residual;
           layer_norm2 -> fc1 -> GELU -> fc2, residual); post_layernorm on EVERY token.
  decoder  BERT with cross-attention (BlipTextLMHeadModel), post-LN: embeddings =
           LayerNorm(word + position[0..T-1]); per layer: causal self-attention, output.dense,
           LayerNorm(x + a); cross-attention (queries from the text, keys/values from all image
           tokens, no mask), output.dense, LayerNorm(x + c); intermediate.dense -> GELU ->
           output.dense, LayerNorm(x + f). LM head: transform.dense -> GELU -> transform.LayerNorm
           -> decoder.weight (word_embeddings when the file has no decoder.weight) + predictions.bias.
  GELU is exact (erf) for hidden_act "gelu". LayerNorm eps from config.json (vision 1e-5, text 1e-12).
  greedy   argmax each step over the full recomputed sequence; stops at (excludes) text_config's
           sep_token_id, as BlipForConditionalGeneration.generate passes eos_token_id=sep_token_id.

usage: blip_reference.py MODEL_DIR PIXELS.f32 N_IMAGES PROMPT_IDS.json MAX_NEW
  PIXELS.f32:      N_IMAGES preprocessed images, float32, planar (3, S, S) each
  PROMPT_IDS.json: the decoder input ids [bos, prompt tokens...] (no trailing [SEP])
prints {"vision": [[last_hidden_state, tokens x hidden, row-major], ...],
        "logits0": [[next-token logits after the prompt], ...], "greedy": [[new ids], ...]}
"""
import json
import math
import sys
from pathlib import Path

import numpy as np

# --- weights -------------------------------------------------------------------------------------

# the safetensors reader shared with the other families' references (same directory)
from ranker_reference import attention, load_safetensors  # noqa: E402


def load_weights(model_dir, single="model.safetensors"):
    d = Path(model_dir)
    if (d / single).exists():
        return load_safetensors(d / single)
    index = d / (single + ".index.json")
    W = {}
    for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
        W.update(load_safetensors(d / shard))
    return W


def load_config(model_dir):
    """config.json with BlipTextConfig / BlipVisionConfig's defaults (configuration_blip.py)."""
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    if cfg.get("model_type") != "blip":
        raise SystemExit(f"{model_dir}: model_type {cfg.get('model_type')!r} is not blip")
    v = {"hidden_size": 768, "num_attention_heads": 12, "num_hidden_layers": 12, "image_size": 384,
         "patch_size": 16, "layer_norm_eps": 1e-5, "hidden_act": "gelu"}
    v.update(cfg.get("vision_config") or {})
    t = {"num_attention_heads": 8, "num_hidden_layers": 12, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
         "bos_token_id": 30522, "sep_token_id": 102, "pad_token_id": 0}
    t.update(cfg.get("text_config") or {})
    for c in (v, t):
        if c["hidden_act"] != "gelu":
            raise SystemExit(f"{model_dir}: hidden_act {c['hidden_act']!r} is not handled (gelu)")
    return v, t


# --- primitives ----------------------------------------------------------------------------------

_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x):
    """ACT2FN["gelu"] = GELUActivation = torch.nn.functional.gelu (exact, erf)."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def layer_norm(x, W, name, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * W[name + ".weight"] + W[name + ".bias"]


def linear(x, W, name):
    return x @ W[name + ".weight"].T + W[name + ".bias"]


# --- vision (BlipVisionModel) --------------------------------------------------------------------


def vision(pixels, W, cfg):
    e = "vision_model.embeddings."
    w = W[e + "patch_embedding.weight"]  # (D, 3, P, P), stride P
    D, C, P, _ = w.shape
    S = pixels.shape[-1]
    G = S // P
    patches = pixels.reshape(C, G, P, G, P).transpose(1, 3, 0, 2, 4).reshape(G * G, C * P * P)
    x = patches @ w.reshape(D, -1).T + W[e + "patch_embedding.bias"]
    x = np.concatenate([W[e + "class_embedding"].reshape(1, D), x])
    pos = W[e + "position_embedding"].reshape(-1, D)
    if pos.shape[0] != x.shape[0]:
        raise SystemExit(f"position_embedding has {pos.shape[0]} rows, the image gives {x.shape[0]} tokens")
    x = x + pos
    eps, heads = cfg["layer_norm_eps"], cfg["num_attention_heads"]
    for i in range(cfg["num_hidden_layers"]):
        p = f"vision_model.encoder.layers.{i}."
        h = layer_norm(x, W, p + "layer_norm1", eps)
        qkv = linear(h, W, p + "self_attn.qkv")  # (T, 3D): q, k, v blocks
        x = x + linear(attention(qkv[:, :D], qkv[:, D : 2 * D], qkv[:, 2 * D :], heads), W,
                       p + "self_attn.projection")
        h = layer_norm(x, W, p + "layer_norm2", eps)
        x = x + linear(gelu(linear(h, W, p + "mlp.fc1")), W, p + "mlp.fc2")
    return layer_norm(x, W, "vision_model.post_layernorm", eps)


# --- text decoder (BlipTextLMHeadModel) ----------------------------------------------------------


def cross_kv(image, W, cfg):
    """Each layer's cross-attention keys and values: the same for every decoding step."""
    out = []
    for i in range(cfg["num_hidden_layers"]):
        c = f"text_decoder.bert.encoder.layer.{i}.crossattention.self."
        out.append((linear(image, W, c + "key"), linear(image, W, c + "value")))
    return out


def decoder_logits(ids, kv, W, cfg):
    """Logits (T, vocab) for every position of `ids`; kv = cross_kv(image tokens)."""
    eps, heads = cfg["layer_norm_eps"], cfg["num_attention_heads"]
    e = "text_decoder.bert.embeddings."
    T = len(ids)
    x = W[e + "word_embeddings.weight"][ids] + W[e + "position_embeddings.weight"][:T]
    x = layer_norm(x, W, e + "LayerNorm", eps)
    causal = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"text_decoder.bert.encoder.layer.{i}."
        a = p + "attention."
        q, k, v = (linear(x, W, a + "self." + n) for n in ("query", "key", "value"))
        x = layer_norm(x + linear(attention(q, k, v, heads, causal), W, a + "output.dense"), W,
                       a + "output.LayerNorm", eps)
        c = p + "crossattention."
        q = linear(x, W, c + "self.query")
        x = layer_norm(x + linear(attention(q, *kv[i], heads), W, c + "output.dense"), W,
                       c + "output.LayerNorm", eps)
        f = linear(gelu(linear(x, W, p + "intermediate.dense")), W, p + "output.dense")
        x = layer_norm(x + f, W, p + "output.LayerNorm", eps)
    h = "text_decoder.cls.predictions."
    x = layer_norm(gelu(linear(x, W, h + "transform.dense")), W, h + "transform.LayerNorm", eps)
    head = W.get(h + "decoder.weight", W[e + "word_embeddings.weight"])
    return x @ head.T + W[h + "bias"]


def main():
    if len(sys.argv) != 6:
        raise SystemExit(__doc__)
    model, pix_path, n, ids_path, max_new = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    vcfg, tcfg = load_config(model)
    W = load_weights(model)
    prompt = [int(t) for t in json.loads(Path(ids_path).read_text())]
    pix = np.fromfile(pix_path, dtype="<f4").astype(np.float64)
    S = int(round(math.sqrt(pix.size / max(n, 1) / 3)))
    if pix.size != n * 3 * S * S:
        raise SystemExit(f"{pix_path}: {pix.size} floats is not {n} x 3 x S x S")
    out = {"vision": [], "logits0": [], "greedy": []}
    for img in pix.reshape(n, 3, S, S):
        image = vision(img, W, vcfg)
        out["vision"].append(image.reshape(-1).tolist())
        kv = cross_kv(image, W, tcfg)
        ids, new = list(prompt), []
        while len(new) < max_new:
            logits = decoder_logits(np.array(ids), kv, W, tcfg)[-1]
            if not new:
                out["logits0"].append(logits.tolist())
            tok = int(np.argmax(logits))
            if tok == tcfg["sep_token_id"]:
                break
            ids.append(tok)
            new.append(tok)
        if max_new == 0:
            out["logits0"].append(decoder_logits(np.array(ids), kv, W, tcfg)[-1].tolist())
        out["greedy"].append(new)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
