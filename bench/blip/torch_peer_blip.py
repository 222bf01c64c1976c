#!/usr/bin/python3
"""The peer for BLIP captioning: PyTorch eager (Debian's python3-torch) doing what Hugging Face's
BlipForConditionalGeneration.generate(pixel_values, input_ids, num_return_sequences=N) does, on the
same safetensors, written as a plain PyTorch port of transformers' models/blip/modeling_blip.py and
modeling_blip_text.py (transformers itself is not installable on Debian's torch 1.13):

  vision   BlipVisionModel: Conv2d patch embedding with bias, class token first, learned positions,
           pre-LN blocks (layer_norm1 -> fused qkv -> softmax(q k^T / sqrt(hd)) v -> projection;
           layer_norm2 -> fc1 -> GELU (erf) -> fc2), post_layernorm on every token. Once per image.
  decoder  BlipTextLMHeadModel (post-LN BERT with cross-attention): LayerNorm(word + position);
           per layer causal self-attention with a KV cache, cross-attention to all image tokens,
           GELU FFN; LM head transform.dense -> GELU -> LayerNorm -> decoder + bias.
  generate input ids [bos] + the prompt's WordPiece ids (generate replaces [CLS] by bos and drops the
           trailing [SEP]); the image embeds are expanded to the N sequences (as generate's
           _expand_inputs_for_generation does, and LAION-COCO's BLIP code did); one batched forward
           per step for all N sequences; eos = text_config.sep_token_id.

At its best, beyond what transformers 4.47 does (which recomputes the cross-attention keys and
values from the expanded image embeds at every step, BlipTextSelfAttention's is_cross_attention
branch, and concatenates the self-attention cache with torch.cat): the cross-attention K/V are
computed once per image for the expanded batch (at the first step, as past_key_values would hold
them) and reused; the self-attention K/V go into a preallocated cache; the LM head runs on the last
position only; torch.inference_mode. torch 1.13 has no scaled_dot_product_attention, so attention
is matmul + softmax + matmul (as transformers' eager attention).

VARIANT fp32 | bf16 (torch.autocast("cpu", bfloat16): weights cast once per region, fp32 residual
stream, bf16 caches); with "-shared" (not what generate does, for comparison only): the cross K/V
computed once from the one image, not the expanded batch, and every sequence's queries multiplied
with them in one product per head, as capforge does.

usage:
  torch_peer_blip.py MODEL_DIR VARIANT THREADS IMAGE... [--prompt "a picture of"] [--candidates 40]
      [--new 30] [--top-k 50] [--seed 0] [--greedy] [--dump DIR]
  sampled (default): every candidate gets exactly --new tokens (eos masked until then, as
      min_new_tokens does), top-k sampling at temperature 1; one warm-up image first (2 steps),
      then prints {"images_per_s", "seconds", "images", "new_tokens", "stages": {preprocess, vision,
      cross_kv, decode (sampling included) in seconds; steps, tokens_fed, logit_rows}}.
  --greedy: one sequence per image, argmax, stops at eos or --new tokens; prints one JSON line per
      image {"image", "text", "ids", "logprob"} (text decoded as
      BertTokenizer.decode(skip_special_tokens=True) with clean_up_tokenization_spaces; logprob: the
      sum of the new tokens' log-softmax, eos not counted, as capforge reports it). --dump DIR also
      writes the vision states and first-step logits of each image as .npy (for finding where two
      implementations part).
"""
import argparse
import contextlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clip"))
import peer_common  # noqa: E402
from peer_common import ln  # noqa: E402


# --- configuration, tokenizer, preprocessing -----------------------------------------------------


def load_config(model):
    """config.json with BlipVisionConfig / BlipTextConfig defaults (configuration_blip.py)."""
    cfg = json.loads((model / "config.json").read_text())
    v = {"hidden_size": 768, "num_attention_heads": 12, "num_hidden_layers": 12, "image_size": 384,
         "patch_size": 16, "layer_norm_eps": 1e-5}
    v.update(cfg.get("vision_config") or {})
    t = {"num_attention_heads": 8, "num_hidden_layers": 12, "layer_norm_eps": 1e-12, "bos_token_id": 30522,
         "sep_token_id": 102, "pad_token_id": 0}
    t.update(cfg.get("text_config") or {})
    for c in (v, t):
        if c.get("hidden_act", "gelu") != "gelu":
            sys.exit(f"hidden_act {c['hidden_act']!r} is not handled (gelu)")
    return v, t


class Vocab:
    """vocab.txt (id = line) plus tokenizer_config.json's added tokens ([DEC], [ENC], ...)."""

    def __init__(self, model):
        self.pieces = (model / "vocab.txt").read_text(encoding="utf-8").split("\n")
        if self.pieces and self.pieces[-1] == "":
            self.pieces.pop()
        self.special = set()
        tc = model / "tokenizer_config.json"
        added = json.loads(tc.read_text()).get("added_tokens_decoder", {}) if tc.exists() else {}
        for k, e in added.items():
            i = int(k)
            while len(self.pieces) <= i:
                self.pieces.append("")
            self.pieces[i] = e["content"]
            if e.get("special", False):
                self.special.add(i)
        for name in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"):
            if name in self.pieces:
                self.special.add(self.pieces.index(name))
        self.ids = {p: i for i, p in enumerate(self.pieces)}

    def encode_words(self, text):
        """The prompt's ids: lower-cased whitespace-separated words that are whole vocab entries."""
        out = []
        for w in text.lower().split():
            if w not in self.ids:
                sys.exit(f"prompt word {w!r} is not a whole word of vocab.txt (this peer only looks words up)")
            out.append(self.ids[w])
        return out

    def decode(self, ids):
        """BertTokenizer.decode(ids, skip_special_tokens=True), clean_up_tokenization_spaces=True."""
        text = " ".join(self.pieces[i] for i in ids if i not in self.special).replace(" ##", "").strip()
        for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                     (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
            text = text.replace(a, b)
        return text


def preprocess(img, size, mean, std):
    """BlipImageProcessor: RGB, resize to size x size with PIL BICUBIC, /255, normalise; [1, 3, S, S]."""
    from PIL import Image

    img = img.convert("RGB").resize((size, size), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    return x.unsqueeze(0).contiguous()


# --- the model -----------------------------------------------------------------------------------


def heads(x, h):
    """[B, T, D] -> [B, h, T, D/h]"""
    B, T, D = x.shape
    return x.view(B, T, h, D // h).transpose(1, 2)


def merge(x):
    """[B, h, T, hd] -> [B, T, h*hd]"""
    B, h, T, hd = x.shape
    return x.transpose(1, 2).reshape(B, T, h * hd)


def attend(q, k, v, mask=None):
    s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    if mask is not None:
        s = s + mask
    return torch.matmul(s.softmax(-1), v)


def vision(pix, W, c):
    """BlipVisionModel's last_hidden_state (post_layernorm applied), fp32 [B, N+1, D]."""
    e = "vision_model.embeddings."
    x = F.conv2d(pix, W[e + "patch_embedding.weight"], W[e + "patch_embedding.bias"], stride=c["patch_size"])
    x = x.flatten(2).transpose(1, 2).float()
    B, _, D = x.shape
    x = torch.cat([W[e + "class_embedding"].expand(B, 1, D), x], 1) + W[e + "position_embedding"]
    H, eps = c["num_attention_heads"], c["layer_norm_eps"]
    for i in range(c["num_hidden_layers"]):
        p = f"vision_model.encoder.layers.{i}."
        h = ln(x, W[p + "layer_norm1.weight"], W[p + "layer_norm1.bias"], eps)
        qkv = F.linear(h, W[p + "self_attn.qkv.weight"], W[p + "self_attn.qkv.bias"])
        qkv = qkv.view(B, -1, 3, H, D // H).permute(2, 0, 3, 1, 4)
        a = merge(attend(qkv[0], qkv[1], qkv[2]))
        x = x + F.linear(a, W[p + "self_attn.projection.weight"], W[p + "self_attn.projection.bias"])
        h = ln(x, W[p + "layer_norm2.weight"], W[p + "layer_norm2.bias"], eps)
        h = F.linear(F.gelu(F.linear(h, W[p + "mlp.fc1.weight"], W[p + "mlp.fc1.bias"])),
                     W[p + "mlp.fc2.weight"], W[p + "mlp.fc2.bias"])
        x = x + h
    return ln(x, W["vision_model.post_layernorm.weight"], W["vision_model.post_layernorm.bias"], eps)


class Decoder:
    """BlipTextLMHeadModel with its caches for one batch of sequences."""

    def __init__(self, W, c, batch, max_len, dtype):
        self.W, self.c, self.H = W, c, c["num_attention_heads"]
        D, L = c["hidden_size"], c["num_hidden_layers"]
        shape = (batch, self.H, max_len, D // self.H)
        self.k = [torch.empty(shape, dtype=dtype) for _ in range(L)]
        self.v = [torch.empty(shape, dtype=dtype) for _ in range(L)]
        self.cross = []
        self.pos = 0

    def set_image(self, image_embeds):
        """The cross-attention K/V of every layer from the (expanded) image embeds [B, N, Dv], once."""
        self.pos = 0
        self.cross = []
        for i in range(self.c["num_hidden_layers"]):
            p = f"text_decoder.bert.encoder.layer.{i}.crossattention.self."
            k = F.linear(image_embeds, self.W[p + "key.weight"], self.W[p + "key.bias"])
            v = F.linear(image_embeds, self.W[p + "value.weight"], self.W[p + "value.bias"])
            self.cross.append((heads(k, self.H).contiguous(), heads(v, self.H).contiguous()))

    def step(self, ids):
        """Feeds ids [B, T] at the next positions; returns the last position's logits [B, V] (fp32)."""
        W, c, eps = self.W, self.c, self.c["layer_norm_eps"]
        B, T = ids.shape
        p0, p1 = self.pos, self.pos + T
        e = "text_decoder.bert.embeddings."
        x = F.embedding(ids, W[e + "word_embeddings.weight"]) + W[e + "position_embeddings.weight"][p0:p1]
        x = ln(x, W[e + "LayerNorm.weight"], W[e + "LayerNorm.bias"], eps)
        mask = None
        if T > 1:  # causal within the new tokens; every cached position is visible
            mask = torch.triu(torch.full((T, p1), float("-inf")), p0 + 1)
        for i in range(c["num_hidden_layers"]):
            p = f"text_decoder.bert.encoder.layer.{i}."
            a = p + "attention."
            q, k, v = (heads(F.linear(x, W[a + f"self.{n}.weight"], W[a + f"self.{n}.bias"]), self.H)
                       for n in ("query", "key", "value"))
            self.k[i][:, :, p0:p1] = k
            self.v[i][:, :, p0:p1] = v
            h = merge(attend(q, self.k[i][:, :, :p1], self.v[i][:, :, :p1], mask))
            x = ln(x + F.linear(h, W[a + "output.dense.weight"], W[a + "output.dense.bias"]),
                   W[a + "output.LayerNorm.weight"], W[a + "output.LayerNorm.bias"], eps)
            x_ = p + "crossattention."
            q = heads(F.linear(x, W[x_ + "self.query.weight"], W[x_ + "self.query.bias"]), self.H)
            ck, cv = self.cross[i]
            if ck.shape[0] == 1 and B > 1:  # shared image K/V: every sequence's queries as rows of one product
                q = q.transpose(0, 1).reshape(1, self.H, B * T, -1)
                h = merge(attend(q, ck, cv).view(self.H, B, T, -1).transpose(0, 1))
            else:
                h = merge(attend(q, ck, cv))
            x = ln(x + F.linear(h, W[x_ + "output.dense.weight"], W[x_ + "output.dense.bias"]),
                   W[x_ + "output.LayerNorm.weight"], W[x_ + "output.LayerNorm.bias"], eps)
            f = F.linear(F.gelu(F.linear(x, W[p + "intermediate.dense.weight"], W[p + "intermediate.dense.bias"])),
                         W[p + "output.dense.weight"], W[p + "output.dense.bias"])
            x = ln(x + f, W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"], eps)
        self.pos = p1
        h = "text_decoder.cls.predictions."
        x = x[:, -1]
        x = ln(F.gelu(F.linear(x, W[h + "transform.dense.weight"], W[h + "transform.dense.bias"])),
               W[h + "transform.LayerNorm.weight"], W[h + "transform.LayerNorm.bias"], eps)
        head = W.get(h + "decoder.weight", W[e + "word_embeddings.weight"])
        return F.linear(x, head, W[h + "bias"]).float()


def caption(pix, prompt, W, vc, tc, n, new, top_k, greedy, stages, dump=None, shared=False):
    """generate() for one image: n sequences of up to `new` tokens. Returns the new ids per sequence."""
    t0 = time.perf_counter()
    image = vision(pix, W, vc)
    t1 = time.perf_counter()
    dtype = torch.bfloat16 if torch.is_autocast_cpu_enabled() else torch.float32
    dec = Decoder(W, tc, n, len(prompt) + new, dtype)
    # generate's expanded encoder_hidden_states; -shared: one image's K/V for all its sequences
    dec.set_image(image if shared else image.expand(n, *image.shape[1:]))
    t2 = time.perf_counter()
    sep = tc["sep_token_id"]
    ids = torch.tensor([prompt], dtype=torch.long).expand(n, -1).contiguous()
    out = torch.empty((n, 0), dtype=torch.long)
    done = torch.zeros(n, dtype=torch.bool)
    logprob = torch.zeros(n, dtype=torch.float64)
    for step in range(new):
        logits = dec.step(ids)
        if dump is not None and step == 0:
            np.save(f"{dump}-vision.npy", image[0].float().numpy())
            np.save(f"{dump}-logits0.npy", logits[0].numpy())
        if greedy:
            tok = logits.argmax(-1)
            tok = torch.where(done, torch.full_like(tok, tc["pad_token_id"]), tok)
            done |= tok == sep
            lp = logits.double().log_softmax(-1).gather(1, tok[:, None])[:, 0]
            logprob += torch.where(done, torch.zeros_like(lp), lp)  # eos and padding not counted
            out = torch.cat([out, tok[:, None]], 1)
            if bool(done.all()):
                break
        else:  # min_new_tokens = new: eos masked; then top-k at temperature 1, multinomial
            logits[:, sep] = float("-inf")
            v, i = logits.topk(top_k, -1)
            tok = i.gather(1, torch.multinomial(v.softmax(-1), 1))[:, 0]
            out = torch.cat([out, tok[:, None]], 1)
        ids = tok[:, None]
    t3 = time.perf_counter()
    if stages is not None:
        stages["vision"] += t1 - t0
        stages["cross_kv"] += t2 - t1
        stages["decode"] += t3 - t2
        stages["steps"] += out.shape[1]
        stages["tokens_fed"] += n * (len(prompt) + max(out.shape[1] - 1, 0))
        stages["logit_rows"] += n * out.shape[1]
    if greedy:
        return [([t for t in row if t != sep and t != tc["pad_token_id"]], lp)
                for row, lp in zip(out.tolist(), logprob.tolist())]
    return out.tolist()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("variant", choices=["fp32", "bf16", "fp32-shared", "bf16-shared"])
    ap.add_argument("threads", type=int)
    ap.add_argument("images", nargs="+")
    ap.add_argument("--prompt", default="a picture of")
    ap.add_argument("--candidates", type=int, default=40)
    ap.add_argument("--new", type=int, default=30)
    ap.add_argument("--top-k", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--greedy", action="store_true")
    ap.add_argument("--dump")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    vc, tc = load_config(a.model)
    pre = json.loads((a.model / "preprocessor_config.json").read_text())
    mean = pre.get("image_mean", [0.48145466, 0.4578275, 0.40821073])
    std = pre.get("image_std", [0.26862954, 0.26130258, 0.27577711])
    vocab = Vocab(a.model)
    prompt = [tc["bos_token_id"]] + vocab.encode_words(a.prompt)
    W = peer_common.weights_as_params(peer_common.load_safetensors(a.model / "model.safetensors"))
    from PIL import Image

    pil = []
    for path in a.images:
        with Image.open(path) as im:
            im.load()
            pil.append(im.copy())
    size = vc["image_size"]
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if a.variant.startswith("bf16") else contextlib.nullcontext()
    shared = a.variant.endswith("-shared")
    with torch.inference_mode(), amp:
        if a.greedy:
            for k, (path, im) in enumerate(zip(a.images, pil)):
                dump = f"{a.dump}/{k}" if a.dump else None
                new, lp = caption(preprocess(im, size, mean, std), prompt, W, vc, tc, 1, a.new, 0, True, None, dump,
                                  shared)[0]
                print(json.dumps({"image": path, "text": vocab.decode(prompt + new), "ids": new, "logprob": lp}),
                      flush=True)
            return
        n = a.candidates
        # warm-up: the first image, two steps (oneDNN primitives, the autocast weight cache)
        caption(preprocess(pil[0], size, mean, std), prompt, W, vc, tc, n, 2, a.top_k, False, None, None, shared)
        stages = dict(preprocess=0.0, vision=0.0, cross_kv=0.0, decode=0.0, steps=0, tokens_fed=0, logit_rows=0)
        new_tokens = 0
        t0 = time.perf_counter()
        for im in pil:
            t = time.perf_counter()
            pix = preprocess(im, size, mean, std)
            stages["preprocess"] += time.perf_counter() - t
            new_tokens += sum(len(r) for r in caption(pix, prompt, W, vc, tc, n, a.new, a.top_k, False, stages,
                                                      None, shared))
        secs = time.perf_counter() - t0
    print(json.dumps({"images_per_s": len(pil) / secs, "seconds": secs, "images": len(pil), "new_tokens": new_tokens,
                      "stages": stages}))


if __name__ == "__main__":
    main()
