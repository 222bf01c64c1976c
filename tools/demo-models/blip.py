#!/usr/bin/python3
"""Trains a tiny BLIP captioner (Hugging Face `BlipForConditionalGeneration`: ViT + BERT decoder with
cross-attention) on capforge's synthetic shapes and writes it as a Hugging Face BLIP dir:
  models/demo/blip/  config.json, model.safetensors (f32), preprocessor_config.json, vocab.txt,
                     tokenizer_config.json, special_tokens_map.json, TRAINING.json

The model is plain PyTorch whose state_dict names are exactly transformers' (4.47), so the
safetensors is what `save_pretrained` writes. It learns LAION-COCO's prompt: the decoder input is
[DEC] "a picture of" <caption> [SEP] and the loss is on the caption and [SEP].

usage: tools/demo-models/blip.py [--capforge build/bin/capforge] [--out models/demo/blip] [--seed 0]
       tools/demo-models/blip.py --check models/demo/blip      (reload the export, greedy captions)
       PYTHONPATH=<transformers 4.47 src> tools/demo-models/blip.py --hf-check models/demo/blip
Needs python3-torch, python3-numpy, python3-pil. CPU, one thread, 3500 steps: 20-25 minutes.
It reuses train.py's shards in --work (/tmp/capforge-demo-train) or makes them with `capforge synth`.
"""
import argparse
import json
import math
import random
import re
import string
import struct
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
import data  # noqa: E402
import export  # noqa: E402

SIZE = 64
PROMPT = "a picture of"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# words of src/synth/shapes.cpp's captions (and of its optional "with the word" suffix)
CAPTION_WORDS = (data.COLOURS + data.KINDS + data.BACKGROUNDS + ["gray", "a", "an", "and", "on", "background", "at",
                 "the", "top", "bottom", "left", "right", "in", "center", "with", "word", "sale", "open", "stop",
                 "free", "new", "hello", "cat", "sun", "picture", "of"])


# ----------------------------------------------------------------------------------------- tokenizer
class Tokenizer:
    """BERT uncased WordPiece over a small vocab: the specials, ASCII punctuation, digits and letters,
    the caption words whole, and ##digits/##letters so that any ASCII word still tokenizes.
    [DEC] (BLIP's bos) and [ENC] are added tokens after the vocab, as in BLIP's tokenizer."""

    def __init__(self, tokens=None):
        if tokens is None:
            singles = list(string.punctuation) + list(string.digits) + list(string.ascii_lowercase)
            words = sorted({w for w in CAPTION_WORDS if w not in singles})
            tokens = SPECIALS + singles + words + ["##" + c for c in string.digits + string.ascii_lowercase]
        self.tokens = list(tokens)
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        assert len(self.ids) == len(self.tokens)
        self.pad, self.unk, self.cls, self.sep = (self.ids[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]"))
        self.dec, self.enc = len(self.tokens), len(self.tokens) + 1
        self.vocab_size = len(self.tokens) + 2

    @staticmethod
    def basic(text):
        """BERT's BasicTokenizer for ASCII text: lower-case, split on whitespace and punctuation."""
        out = []
        for w in text.lower().split():
            out += [p for p in re.split(r"([!-/:-@\[-`{-~])", w) if p]
        return out

    def wordpiece(self, word):
        if word in self.ids:
            return [self.ids[word]]
        out, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = ("##" if start else "") + word[start:end]
                if piece in self.ids:
                    break
                end -= 1
            if end == start:
                return [self.unk]
            out.append(self.ids[piece])
            start = end
        return out

    def encode(self, text):
        return [i for w in self.basic(text) for i in self.wordpiece(w)]

    def decode(self, ids):
        """BertTokenizer.decode(ids, skip_special_tokens=True) with its default clean-up."""
        toks = [self.tokens[i] for i in ids if i < len(self.tokens) and self.tokens[i] not in SPECIALS]
        s = " ".join(toks).replace(" ##", "").strip()
        for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                     (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
            s = s.replace(a, b)
        return s

    def save(self, out):
        (out / "vocab.txt").write_text("".join(t + "\n" for t in self.tokens))
        special = {"cls_token": "[CLS]", "mask_token": "[MASK]", "pad_token": "[PAD]", "sep_token": "[SEP]",
                   "unk_token": "[UNK]"}
        (out / "special_tokens_map.json").write_text(json.dumps({"bos_token": "[DEC]", **special}, indent=2))
        added = {}
        for i, t in enumerate(SPECIALS):
            added[str(i)] = {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                             "single_word": False, "special": True}
        for i, t in ((self.dec, "[DEC]"), (self.enc, "[ENC]")):
            added[str(i)] = {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                             "single_word": False, "special": True}
        (out / "tokenizer_config.json").write_text(json.dumps({
            "added_tokens_decoder": added, "bos_token": "[DEC]", "clean_up_tokenization_spaces": True,
            "do_basic_tokenize": True, "do_lower_case": True, "model_max_length": 512, "never_split": None,
            "processor_class": "BlipProcessor", "strip_accents": None, "tokenize_chinese_chars": True,
            "tokenizer_class": "BertTokenizer", **special}, indent=2))

    @classmethod
    def load(cls, d):
        return cls((Path(d) / "vocab.txt").read_text().splitlines())


# ------------------------------------------------------------------------------------- the model
# Module and parameter names follow transformers/models/blip/modeling_blip.py and modeling_blip_text.py.
class NS(nn.Module):
    """A named container (modules given as keyword arguments)."""

    def __init__(self, **mods):
        super().__init__()
        for k, v in mods.items():
            setattr(self, k, v)


def gelu(x):
    return F.gelu(x)  # erf GELU (ACT2FN["gelu"])


class VisionEmbeddings(nn.Module):
    def __init__(self, d, size, patch):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.patch_embedding = nn.Conv2d(3, d, patch, stride=patch)
        self.position_embedding = nn.Parameter(torch.randn(1, (size // patch) ** 2 + 1, d) * 0.02)

    def forward(self, px):
        x = self.patch_embedding(px).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1), x], 1)
        return x + self.position_embedding[:, : x.shape[1]]


class VisionAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.projection = nn.Linear(d, d)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(x).reshape(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-1, -2) * (D // self.heads) ** -0.5).softmax(-1)
        return self.projection((a @ v).transpose(1, 2).reshape(B, T, D))


class VisionLayer(nn.Module):
    def __init__(self, d, heads, ffn, eps):
        super().__init__()
        self.self_attn = VisionAttention(d, heads)
        self.layer_norm1 = nn.LayerNorm(d, eps=eps)
        self.mlp = NS(fc1=nn.Linear(d, ffn), fc2=nn.Linear(ffn, d))
        self.layer_norm2 = nn.LayerNorm(d, eps=eps)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp.fc2(gelu(self.mlp.fc1(self.layer_norm2(x))))


class VisionModel(nn.Module):
    def __init__(self, vc):
        super().__init__()
        d, eps = vc["hidden_size"], vc["layer_norm_eps"]
        self.embeddings = VisionEmbeddings(d, vc["image_size"], vc["patch_size"])
        self.encoder = NS(layers=nn.ModuleList(VisionLayer(d, vc["num_attention_heads"], vc["intermediate_size"], eps)
                                               for _ in range(vc["num_hidden_layers"])))
        self.post_layernorm = nn.LayerNorm(d, eps=eps)

    def forward(self, px):
        x = self.embeddings(px)
        for layer in self.encoder.layers:
            x = layer(x)
        return self.post_layernorm(x)  # image_embeds: every token


class TextAttention(nn.Module):
    """BlipTextAttention: .self (query/key/value) and .output (dense + post-LN residual)."""

    def __init__(self, d, heads, kv_dim, eps):
        super().__init__()
        self.heads = heads
        self.self = NS(query=nn.Linear(d, d), key=nn.Linear(kv_dim, d), value=nn.Linear(kv_dim, d))
        self.output = NS(dense=nn.Linear(d, d), LayerNorm=nn.LayerNorm(d, eps=eps))

    def forward(self, x, kv=None, causal=False):
        kv = x if kv is None else kv
        B, T, D = x.shape
        h = self.heads

        def split(t):
            return t.reshape(B, t.shape[1], h, D // h).transpose(1, 2)

        q, k, v = split(self.self.query(x)), split(self.self.key(kv)), split(self.self.value(kv))
        s = q @ k.transpose(-1, -2) / math.sqrt(D // h)
        if causal:
            s = s.masked_fill(torch.ones(T, k.shape[2], dtype=torch.bool).triu(1), float("-inf"))
        o = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
        return self.output.LayerNorm(self.output.dense(o) + x)


class TextLayer(nn.Module):
    def __init__(self, tc):
        super().__init__()
        d, eps, h = tc["hidden_size"], tc["layer_norm_eps"], tc["num_attention_heads"]
        self.attention = TextAttention(d, h, d, eps)
        self.crossattention = TextAttention(d, h, tc["encoder_hidden_size"], eps)
        self.intermediate = NS(dense=nn.Linear(d, tc["intermediate_size"]))
        self.output = NS(dense=nn.Linear(tc["intermediate_size"], d), LayerNorm=nn.LayerNorm(d, eps=eps))

    def forward(self, x, img):
        x = self.attention(x, causal=True)
        x = self.crossattention(x, kv=img)
        return self.output.LayerNorm(self.output.dense(gelu(self.intermediate.dense(x))) + x)


class TextDecoder(nn.Module):
    """BlipTextLMHeadModel: bert (embeddings + encoder, no pooler) and cls.predictions. The output
    matrix is tied to the word embeddings here (save() writes it as cls.predictions.decoder.weight),
    with cls.predictions.bias."""

    def __init__(self, tc):
        super().__init__()
        d, eps = tc["hidden_size"], tc["layer_norm_eps"]
        self.bert = NS(embeddings=NS(word_embeddings=nn.Embedding(tc["vocab_size"], d),
                                     position_embeddings=nn.Embedding(tc["max_position_embeddings"], d),
                                     LayerNorm=nn.LayerNorm(d, eps=eps)),
                       encoder=NS(layer=nn.ModuleList(TextLayer(tc) for _ in range(tc["num_hidden_layers"]))))
        self.cls = NS(predictions=NS(transform=NS(dense=nn.Linear(d, d), LayerNorm=nn.LayerNorm(d, eps=eps)),
                                     bias=nn.Parameter(torch.zeros(tc["vocab_size"]))))

    def forward(self, ids, img):
        e = self.bert.embeddings
        x = e.LayerNorm(e.word_embeddings(ids) + e.position_embeddings(torch.arange(ids.shape[1])))
        for layer in self.bert.encoder.layer:
            x = layer(x, img)
        p = self.cls.predictions
        x = p.transform.LayerNorm(gelu(p.transform.dense(x)))
        return x @ e.word_embeddings.weight.T + p.bias


class Blip(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.vision_model = VisionModel(cfg["vision_config"])
        self.text_decoder = TextDecoder(cfg["text_config"])
        for n, p in self.named_parameters():  # BERT-style init
            if n.endswith("weight") and p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, px, ids):
        return self.text_decoder(ids, self.vision_model(px))


def make_config(tok, vd, vl, td, tl, heads, patch):
    vision = {"model_type": "blip_vision_model", "hidden_size": vd, "intermediate_size": 4 * vd,
              "num_attention_heads": heads, "num_hidden_layers": vl, "image_size": SIZE, "patch_size": patch,
              "num_channels": 3, "layer_norm_eps": 1e-5, "hidden_act": "gelu", "attention_dropout": 0.0,
              "initializer_range": 0.02, "projection_dim": td}
    text = {"model_type": "blip_text_model", "vocab_size": tok.vocab_size, "hidden_size": td,
            "encoder_hidden_size": vd, "intermediate_size": 4 * td, "num_attention_heads": heads,
            "num_hidden_layers": tl, "max_position_embeddings": 64, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02,
            "is_decoder": True, "use_cache": True, "label_smoothing": 0.0, "projection_dim": td,
            "bos_token_id": tok.dec, "sep_token_id": tok.sep, "pad_token_id": tok.pad, "eos_token_id": tok.sep}
    return {"architectures": ["BlipForConditionalGeneration"], "model_type": "blip", "projection_dim": td,
            "image_text_hidden_size": td, "logit_scale_init_value": 2.6592, "initializer_factor": 1.0,
            "label_smoothing": 0.0, "torch_dtype": "float32", "transformers_version": "4.47.0",
            "text_config": text, "vision_config": vision}


# ------------------------------------------------------------------------------------ safetensors
def read_safetensors(path):
    raw = Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (k, v["dtype"])
        b, e = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(raw, np.float32, (e - b) // 4, 8 + n + b).reshape(v["shape"]).copy())
    return out


def save(model, cfg, tok, out):
    out.mkdir(parents=True, exist_ok=True)
    # as save_pretrained (transformers 4.47): cls.predictions.decoder.weight is a parameter of its own
    # there (BlipForConditionalGeneration does not tie it), so it is written, here a copy of the tied
    # word embeddings; cls.predictions.decoder.bias is cls.predictions.bias and is not written.
    tensors = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    words = tensors["text_decoder.bert.embeddings.word_embeddings.weight"]
    tensors["text_decoder.cls.predictions.decoder.weight"] = words
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        b = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(out / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    (out / "preprocessor_config.json").write_text(json.dumps({
        "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": export.MEAN, "image_processor_type": "BlipImageProcessor", "image_std": export.STD,
        "processor_class": "BlipProcessor", "resample": 3, "rescale_factor": 1 / 255,
        "size": {"height": SIZE, "width": SIZE}}, indent=2))
    tok.save(out)


def load(d):
    d = Path(d)
    cfg = json.loads((d / "config.json").read_text())
    model = Blip(cfg)
    sd = read_safetensors(d / "model.safetensors")
    dec = sd.pop("text_decoder.cls.predictions.decoder.weight", None)
    assert dec is None or torch.equal(dec, sd["text_decoder.bert.embeddings.word_embeddings.weight"]), \
        "this model ties cls.predictions.decoder.weight to the word embeddings"
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    return model.eval(), cfg, Tokenizer.load(d)


# ---------------------------------------------------------------------------------------- training
def pixels(images):
    x = torch.from_numpy(images).float().div(255).permute(0, 3, 1, 2)
    return (x - torch.tensor(export.MEAN)[:, None, None]) / torch.tensor(export.STD)[:, None, None]


def batch_ids(tok, prompt, caps):
    """[DEC] prompt caption [SEP], right-padded with [PAD]; mask: the positions whose next token is learned."""
    seqs = [[tok.dec] + prompt + tok.encode(c) + [tok.sep] for c in caps]
    T = max(map(len, seqs))
    ids = torch.full((len(seqs), T), tok.pad)
    mask = torch.zeros(len(seqs), T - 1, dtype=torch.bool)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(s)
        mask[r, len(prompt): len(s) - 1] = True  # position j predicts token j+1; first target is after the prompt
    return ids, mask


@torch.no_grad()
def greedy(model, tok, px, max_new=30):
    """Greedy captions (token ids after the prompt, without [SEP]) for a batch of pixel tensors."""
    img = model.vision_model(px)
    prompt = [tok.dec] + tok.encode(PROMPT)
    ids = torch.tensor([prompt] * px.shape[0])
    done = torch.zeros(px.shape[0], dtype=torch.bool)
    for _ in range(max_new):
        nxt = model.text_decoder(ids, img)[:, -1].argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, tok.pad), nxt)
        ids = torch.cat([ids, nxt[:, None]], 1)
        done |= nxt == tok.sep
        if done.all():
            break
    out = []
    for row in ids[:, len(prompt):].tolist():
        out.append(row[: row.index(tok.sep)] if tok.sep in row else row)
    return out


def evaluate(model, tok, imgs, truths, bs=250):
    model.eval()
    caps = []
    for i in range(0, len(truths), bs):
        caps += [tok.decode(c) for c in greedy(model, tok, pixels(imgs[i:i + bs]))]
    exact = sum(c == t for c, t in zip(caps, truths)) / len(truths)
    return exact, caps


def hf_check(d, imgs, truths, log):
    """Loads `d` with transformers' BlipProcessor and BlipForConditionalGeneration and checks them
    against this file's tokenizer, preprocessing, logits and greedy captions (needs transformers)."""
    import tempfile
    from PIL import Image
    from transformers import BlipForConditionalGeneration, BlipProcessor
    ours, _, tok = load(d)
    proc = BlipProcessor.from_pretrained(d, use_fast=False)
    hf = BlipForConditionalGeneration.from_pretrained(d).eval()
    prompt = proc(text=PROMPT)["input_ids"]
    assert prompt == [tok.cls] + tok.encode(PROMPT) + [tok.sep], prompt
    for t in truths[:200]:
        assert proc.tokenizer(t, add_special_tokens=False)["input_ids"] == tok.encode(t), t
    ids = torch.tensor([[tok.dec] + tok.encode(PROMPT) + tok.encode(truths[0]) + [tok.sep]])
    inputs = proc(images=[Image.fromarray(x) for x in imgs], text=[PROMPT] * len(imgs), return_tensors="pt")
    px = inputs["pixel_values"]
    pix_err = float((px - pixels(imgs)).abs().max())
    with torch.no_grad():
        a = hf(pixel_values=px[:1], input_ids=ids).logits
        b = ours(px[:1], ids)
    logit_err = float((a - b).abs().max())
    with torch.no_grad():
        gen = hf.generate(pixel_values=px, input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                          max_new_tokens=30, do_sample=False, num_beams=1, synced_gpus=False)
    hf_caps = proc.batch_decode(gen, skip_special_tokens=True)
    our_caps = [f"{PROMPT} {tok.decode(c)}" for c in greedy(ours, tok, px)]
    agree = sum(x == y for x, y in zip(hf_caps, our_caps))
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        hf_keys = sorted(read_safetensors(Path(tmp) / "model.safetensors"))
    our_keys = sorted(read_safetensors(Path(d) / "model.safetensors"))
    log(f"transformers: pixels max |diff| {pix_err:.2e}, logits max |diff| {logit_err:.2e}, greedy generate agrees on "
        f"{agree}/{len(imgs)} (e.g. '{hf_caps[0]}'), save_pretrained keys {'==' if hf_keys == our_keys else '!='} ours")
    if hf_keys != our_keys:
        log(f"  only HF: {sorted(set(hf_keys) - set(our_keys))}; only ours: {sorted(set(our_keys) - set(hf_keys))}")
    return {"pixels_max_abs_diff": pix_err, "logits_max_abs_diff": logit_err, "greedy_agree": agree,
            "images": len(imgs), "save_pretrained_keys_match": hf_keys == our_keys}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capforge", default="build/bin/capforge")
    ap.add_argument("--out", default="models/demo/blip")
    ap.add_argument("--work", default="/tmp/capforge-demo-train")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-count", type=int, default=16000)
    ap.add_argument("--steps", type=int, default=3500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--vision", default="96x3", help="hidden x layers")
    ap.add_argument("--text", default="96x3", help="hidden x layers")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--patch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval-count", type=int, default=1000)
    ap.add_argument("--check", metavar="DIR", help="only reload an exported dir and caption held-out images")
    ap.add_argument("--hf-check", metavar="DIR", help="only compare an exported dir with transformers' BLIP "
                    "(e.g. PYTHONPATH=/path/to/transformers/src) and record the result in its TRAINING.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    random.seed(a.seed)
    torch.manual_seed(a.seed)
    work = Path(a.work)
    t0 = time.time()
    log = lambda m: print(f"[{time.time() - t0:7.1f}s] {m}", flush=True)  # noqa: E731

    def shards(name, count, seed, n):
        d = work / name
        if not sorted(d.glob("*.tar")):  # the same command as train.py: reuse its shards
            data.synth(a.capforge, d, count, seed, SIZE, shards=n)
        return data.load(d)

    vimgs, vtexts, _ = shards("val", 1000, 2000 + a.seed, 1)
    vimgs, vtexts = vimgs[: a.eval_count], vtexts[: a.eval_count]
    if a.hf_check:
        res = hf_check(a.hf_check, vimgs[:64], vtexts[:64], log)
        import transformers
        res["transformers"] = transformers.__version__
        tj = Path(a.hf_check) / "TRAINING.json"
        if tj.exists():
            tj.write_text(json.dumps({**json.loads(tj.read_text()), "transformers_check": res}, indent=1))
        print(json.dumps(res))
        return
    if a.check:
        model, _, tok = load(a.check)
        exact, caps = evaluate(model, tok, vimgs, vtexts)
        log(f"{a.check}: held-out greedy exact-match {exact:.3f} on {len(vtexts)}; e.g. '{caps[0]}' vs '{vtexts[0]}'")
        return
    imgs, texts, _ = shards("train", a.train_count, 1000 + a.seed, 4)
    log(f"data: {len(texts)} training and {len(vtexts)} held-out images")

    tok = Tokenizer()
    for t in texts + vtexts:
        assert tok.unk not in tok.encode(t) and all(tok.tokens[i] in t.lower() for i in tok.encode(t)), t
    vd, vl = map(int, a.vision.split("x"))
    td, tl = map(int, a.text.split("x"))
    cfg = make_config(tok, vd, vl, td, tl, a.heads, a.patch)
    model = Blip(cfg)
    nparams = sum(p.numel() for p in model.parameters())
    log(f"model: {nparams} parameters, vocab {tok.vocab_size}")
    prompt = tok.encode(PROMPT)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embedding" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": other, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=a.steps, pct_start=0.05)
    px_all = pixels(imgs)
    model.train()
    t_train = time.time()
    for step in range(a.steps):
        idx = random.sample(range(len(texts)), a.batch)
        ids, mask = batch_ids(tok, prompt, [texts[i] for i in idx])
        logits = model(px_all[idx], ids)[:, :-1]
        loss = F.cross_entropy(logits[mask], ids[:, 1:][mask])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == a.steps - 1:
            log(f"step {step}/{a.steps} loss {loss.item():.4f} ({(time.time() - t_train) / (step + 1):.2f}s/step)")
        if step % 500 == 499:
            exact, _ = evaluate(model, tok, vimgs[:200], vtexts[:200])
            log(f"step {step + 1}: held-out greedy exact-match {exact:.3f} (200 images)")
            model.train()
    train_seconds = time.time() - t_train
    model.eval()
    exact, caps = evaluate(model, tok, vimgs, vtexts)
    log(f"held-out greedy exact-match {exact:.3f} ({len(vtexts)} images); e.g. '{caps[0]}' vs '{vtexts[0]}'")
    words = lambda s: s.replace(",", " ,").split()  # noqa: E731
    tok_acc = np.mean([sum(x == y for x, y in zip(words(c), words(t))) / max(len(words(t)), len(words(c)))
                       for c, t in zip(caps, vtexts)])

    out = Path(a.out)
    save(model, cfg, tok, out)
    reloaded, _, _ = load(out)
    px = pixels(vimgs[:100])
    same = greedy(model, tok, px) == greedy(reloaded, tok, px)
    assert same, "the export does not reproduce the trained model's greedy captions"
    log(f"wrote {out} ({(out / 'model.safetensors').stat().st_size} bytes of weights); reload reproduces greedy")
    (out / "TRAINING.json").write_text(json.dumps({
        "seed": a.seed, "train_images": len(texts), "steps": a.steps, "batch": a.batch, "lr": a.lr,
        "parameters": nparams, "vision": {"hidden": vd, "layers": vl, "patch": a.patch, "image_size": SIZE},
        "text": {"hidden": td, "layers": tl, "vocab": tok.vocab_size}, "heads": a.heads,
        "prompt": PROMPT, "seconds": round(time.time() - t0, 1), "train_seconds": round(train_seconds, 1),
        "threads": a.threads, "final_loss": round(loss.item(), 4),
        "heldout_images": len(vtexts), "heldout_greedy_exact_match_python": round(exact, 4),
        "heldout_greedy_word_accuracy_python": round(float(tok_acc), 4), "torch": torch.__version__,
        "data": f"capforge synth --count {a.train_count} --seed {1000 + a.seed} --size {SIZE}",
        "heldout_data": f"capforge synth --count 1000 --seed {2000 + a.seed} --size {SIZE}",
        "command": "tools/demo-models/blip.py " + " ".join(sys.argv[1:])}, indent=1))


if __name__ == "__main__":
    main()
