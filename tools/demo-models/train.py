#!/usr/bin/python3
"""Trains capforge's demo models on synthetic shapes (Debian's python3-torch, CPU, minutes) and
writes them where `make demo` and the quality tests expect them:
  models/demo/clip/                         a tiny CLIP as a Hugging Face dir (the ranker)
  models/demo/captioner.gguf, -mmproj.gguf  a tiny LLaVA (CLIP tower + MLP + llama) for libmtmd

usage: tools/demo-models/train.py [--capforge build/bin/capforge] [--out models/demo] [--seed 0]
       tools/demo-models/train.py --captioner-only [--clip-dir models/demo/clip] --out DIR
  --captioner-only keeps the CLIP of --clip-dir (its vision tower is the captioner's) and trains only
  the captioner; it writes captioner.gguf, captioner-mmproj.gguf, tokenizer_check.json, TRAINING.json.
  The captioner learns plain prompts (PROMPTS) and, for --conditioned-fraction of its steps (0.5 with
  --captioner-only, else 0), prompts that quote the sample's alt-text (COND_TEMPLATES, capforge's
  {org_caption}, e.g. --preset recap-v2's `condition` prompt); the target is always the true caption.
Needs python3-torch, python3-numpy, python3-pil, python3-regex, python3-yaml and the llama.cpp
source (scripts/bootstrap puts it in ~/.cache/capforge/deps/llama.cpp) for gguf-py.
"""
import argparse
import json
import math
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
import bpe  # noqa: E402
import data  # noqa: E402
import export  # noqa: E402
import models  # noqa: E402

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
PROMPTS = ["Describe this image in one sentence.", "Write a short caption for this image.",
           "Please generate a detailed caption of this image. Please be as descriptive as possible.",
           "Describe the image.", "What is in this picture?"]
PREFIX = "a picture of "
# capforge --preset recap-v2's second prompt, `condition` (src/cli/prompt_options.cpp), word for word
RECAP_V2 = ("Here is the image's original alt-text, which may be noisy or wrong: \"{org_caption}\". Please generate a "
            "detailed caption of this image. Keep the names, places and facts of the alt-text that the image "
            "supports, and be as descriptive as possible.")
COND_TEMPLATES = [RECAP_V2, 'The alt-text is "{org_caption}". Describe this image in one sentence.',
                  'Alt-text: "{org_caption}". Write a short caption for this image.']
ALT_MAX_TOKENS = 48  # the alt-text's first tokens a conditioned prompt quotes (capforge: --org-caption-max-tokens)
SIZE = 64


def clip_vocab(words, out):
    """OpenAI-format CLIP BPE for `words`: bytes, bytes + </w>, merges building each word."""
    bs = sorted(bpe.BYTE)  # GPT-2 order: printable bytes first
    order = [b for b in range(256) if bpe.BYTE[b] == chr(b)] + [b for b in range(256) if bpe.BYTE[b] != chr(b)]
    del bs
    syms = [bpe.BYTE[b] for b in order]
    merges, seen = [], set()
    for w in sorted(words):
        chars = [bpe.BYTE[b] for b in w.encode()]
        chars[-1] += "</w>"
        cur = chars[0]
        for c in chars[1:]:
            if (cur, c) not in seen:
                seen.add((cur, c))
                merges.append((cur, c))
            cur += c
    vocab = syms + [s + "</w>" for s in syms] + [a + b for a, b in merges] + ["<|startoftext|>", "<|endoftext|>"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return len(vocab)


def clip_tokenize(capforge, tokdir, texts):
    ids = {}
    uniq = sorted(set(texts))
    for i in range(0, len(uniq), 1000):
        chunk = uniq[i:i + 1000]
        r = subprocess.run([capforge, "tokenize", "--model", str(tokdir)] + chunk, check=True, capture_output=True,
                           text=True)
        for t, line in zip(chunk, r.stdout.splitlines()):
            ids[t] = json.loads(line)
    return ids


def pixels(images):
    x = torch.from_numpy(images).float().div(255).permute(0, 3, 1, 2)
    return (x - torch.tensor(export.MEAN)[:, None, None]) / torch.tensor(export.STD)[:, None, None]


def pad(seqs, value):
    T = max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (T - len(s)) for s in seqs]), torch.tensor([len(s) for s in seqs])


def train_clip(cfg, imgs, texts, encode, steps, bs, log):
    model = models.Clip(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    for step in range(steps):
        loss = contrastive_loss(model, imgs, texts, random.sample(range(len(texts)), bs), encode)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"clip step {step}/{steps} loss {loss.item():.3f}")
    return model.eval()


def word_tokenizer(capforge, tokdir, tok):
    """CLIP's BPE works on each word (and comma) alone, so a caption's ids are BOS, its words' ids,
    EOS. Tokenizes the words once with capforge and checks the composition on every text in `tok`,
    so hard negatives need no subprocess."""
    words = sorted({w for t in tok for w in re.findall(r"[a-z]+|,", t.lower())})
    wid = {w: ids[1:-1] for w, ids in clip_tokenize(capforge, tokdir, words).items()}
    bos, eos = next(iter(tok.values()))[0], next(iter(tok.values()))[-1]

    def encode(t):
        return [bos] + [i for w in re.findall(r"[a-z]+|,", t.lower()) for i in wid[w]] + [eos]

    for t, ids in tok.items():
        assert encode(t) == ids, (t, ids)
    return encode


def contrastive_loss(model, imgs, texts, idx, encode, negatives=None):
    """CLIP's symmetric InfoNCE; identical captions in a batch are positives too. With
    `negatives`, the image->text side also scores one hard negative per image."""
    pos = [texts[i] for i in idx]
    cols = pos + (negatives or [])
    ids, lens = pad([encode(t) for t in cols], 0)
    ie = model.embed_images(pixels(imgs[idx]))
    te = model.embed_texts(ids, lens)
    logits = model.logit_scale.exp().clamp(max=100) * ie @ te.T
    same = torch.tensor([[a == b for b in cols] for a in pos], dtype=torch.float32)
    i2t = torch.sum(-(same / same.sum(1, keepdim=True)) * logits.log_softmax(1), 1).mean()
    sq = same[:, : len(pos)]
    t2i = torch.sum(-(sq / sq.sum(1, keepdim=True)) * logits[:, : len(pos)].log_softmax(0).T, 1).mean()
    return (i2t + t2i) / 2


def finetune_clip(model, imgs, texts, encode, steps, bs, seed, log):
    """Hard-negative fine-tuning (as NegCLIP): near-miss captions teach the ranker the attributes
    the captioner gets wrong. The vision encoder is frozen, so the captioner built on it is unchanged;
    the vision head (post-layernorm, projection) and the text tower learn."""
    rng = random.Random(seed)
    frozen = [model.vision_model.embeddings, model.vision_model.pre_layrnorm, model.vision_model.encoder]
    for m in frozen:
        for p in m.parameters():
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-4, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-4, total_steps=steps, pct_start=0.1)
    model.train()
    for step in range(steps):
        idx = rng.sample(range(len(texts)), bs)
        negs = [data.hard_negative(texts[i], rng) for i in idx]
        loss = contrastive_loss(model, imgs, texts, idx, encode, negs)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"clip hard-negative step {step}/{steps} loss {loss.item():.3f}")
    for m in frozen:
        for p in m.parameters():
            p.requires_grad_(True)
    return model.eval()


def hard_negative_accuracy(model, imgs, texts, encode, seed):
    """How often the true caption outscores a near miss (chance: 0.5)."""
    rng = random.Random(seed)
    negs = [data.hard_negative(t, rng) for t in texts]
    with torch.no_grad():
        ok = 0
        for i in range(0, len(texts), 256):
            ie = model.embed_images(pixels(imgs[i:i + 256]))
            tp = model.embed_texts(*pad([encode(t) for t in texts[i:i + 256]], 0))
            tn = model.embed_texts(*pad([encode(t) for t in negs[i:i + 256]], 0))
            ok += int(((ie * tp).sum(1) > (ie * tn).sum(1)).sum())
    return ok / len(texts)


def recall_at_1(model, imgs, texts, encode):
    uniq = sorted(set(texts))
    with torch.no_grad():
        ids, lens = pad([encode(t) for t in uniq], 0)
        te = model.embed_texts(ids, lens)
        hits = 0
        for i in range(0, len(texts), 256):
            ie = model.embed_images(pixels(imgs[i:i + 256]))
            best = (ie @ te.T).argmax(1)
            hits += sum(uniq[b] == t for b, t in zip(best.tolist(), texts[i:i + 256]))
    return hits / len(texts)


def chat_parts(vocab, prompt, prefix):
    before = vocab.encode("<|im_start|>user\n")
    after = vocab.encode(prompt + "<|im_end|>\n<|im_start|>assistant\n" + prefix)
    return before, after


def clip_alt(vocab, alt, n=ALT_MAX_TOKENS):
    """The alt-text's first `n` tokens as text (whole when shorter), as capforge's
    --org-caption-max-tokens cuts it; a character cut in two is dropped."""
    ids = vocab.encode(alt, special=False)
    if len(ids) <= n:
        return alt
    inv = {v: k for k, v in bpe.BYTE.items()}
    return bytes(inv[c] for i in ids[:n] for c in vocab.tokens[i]).decode("utf-8", "ignore")


def cond_parts(vocab, template, alt, prefix, cache=None):
    """chat_parts for a prompt template with the (cut) alt-text filled in; the filled prompt is
    plain text (capforge tokenises filled placeholders with parse_special=false), then the chat
    template's tail, with its special tokens, and the response prefix."""
    key = (template, alt, prefix)
    if cache is not None and key in cache:
        return cache[key]
    before = vocab.encode("<|im_start|>user\n")
    prompt = template.replace("{org_caption}", clip_alt(vocab, alt))
    after = vocab.encode(prompt, special=False) + vocab.encode("<|im_end|>\n<|im_start|>assistant\n" + prefix)
    if cache is not None:
        cache[key] = (before, after)
    return before, after


def train_captioner(cap, vocab, imgs, texts, steps, bs, log, alts=None, cond_frac=0.0, lr=1.5e-3):
    """`alts` with cond_frac > 0: that fraction of the steps uses COND_TEMPLATES with each sample's
    own alt-text (empty and junk ones included) instead of PROMPTS; the target is the truth."""
    params = [p for p in cap.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    eos = vocab.special_ids["<|im_end|>"]
    cache = {}
    for step in range(steps):
        idx = random.sample(range(len(texts)), bs)
        if alts is not None and cond_frac > 0 and random.random() < cond_frac:
            template = random.choice(COND_TEMPLATES)
            prefix = PREFIX if random.random() < 0.5 else ""
            parts = [cond_parts(vocab, template, alts[i], prefix, cache) for i in idx]
            before, afters = parts[0][0], [p[1] for p in parts]
        else:
            prompt = random.choice(PROMPTS)
            prefix = PREFIX if random.random() < 0.5 else ""
            before, after = chat_parts(vocab, prompt, prefix)
            afters = [after] * bs
        targets = [vocab.encode(texts[i]) + [eos] for i in idx]
        seq = [a + t for a, t in zip(afters, targets)]
        ids, lens = pad(seq, eos)  # padded after the answer: causal attention never sees it
        logits = cap(pixels(imgs[idx]), torch.tensor([before] * bs), ids)
        # predict token j+1 from position j, only over the answer
        labels = ids.clone()
        mask = torch.zeros_like(labels, dtype=torch.bool)
        for r, (a, t) in enumerate(zip(afters, targets)):
            mask[r, len(a):len(a) + len(t)] = True
        logp = logits[:, :-1].log_softmax(-1)
        tgt = labels[:, 1:]
        m = mask[:, 1:]
        # the first answer token is predicted from the last prompt token
        loss = -(logp.gather(2, tgt[..., None])[..., 0] * m).sum() / m.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"captioner step {step}/{steps} loss {loss.item():.3f}")
    return cap.eval()


def greedy(cap, vocab, img, prompt, max_new=24):
    before, after = chat_parts(vocab, prompt, "")
    eos = vocab.special_ids["<|im_end|>"]
    out = []
    with torch.no_grad():
        for _ in range(max_new):
            logits = cap(pixels(img[None]), torch.tensor([before]), torch.tensor([after + out]))
            t = int(logits[0, -1].argmax())
            if t == eos:
                break
            out.append(t)
    return bpe_decode(vocab, out)


def greedy_batch(cap, vocab, imgs, parts, max_new=24, bs=64):
    """Greedy captions of imgs[i] with parts[i] = (before, after) token ids; rows whose prompts have
    the same length decode together."""
    eos = vocab.special_ids["<|im_end|>"]
    out = [None] * len(parts)
    groups = {}
    for i, (b, a) in enumerate(parts):
        groups.setdefault((len(b), len(a)), []).append(i)
    with torch.no_grad():
        for rows in groups.values():
            for k in range(0, len(rows), bs):
                r = rows[k:k + bs]
                pix = pixels(imgs[r])
                before = torch.tensor([parts[i][0] for i in r])
                after = torch.tensor([parts[i][1] for i in r])
                gen = torch.zeros(len(r), 0, dtype=torch.long)
                done = torch.zeros(len(r), dtype=torch.bool)
                for _ in range(max_new):
                    t = cap(pix, before, torch.cat([after, gen], 1))[:, -1].argmax(-1)
                    t = torch.where(done, torch.full_like(t, eos), t)
                    gen = torch.cat([gen, t[:, None]], 1)
                    done |= t == eos
                    if bool(done.all()):
                        break
                for j, i in enumerate(r):
                    toks = gen[j].tolist()
                    out[i] = bpe_decode(vocab, toks[:toks.index(eos)] if eos in toks else toks)
    return out


def load_clip(d):
    """The CLIP that export.save_clip wrote to `d` (config.json + model.safetensors, f16 weights)."""
    d = Path(d)
    cfg = json.loads((d / "config.json").read_text())
    model = models.Clip(cfg)
    sd = {k: torch.from_numpy(v.astype(np.float32)) for k, v in export.read_safetensors(d / "model.safetensors").items()}
    sd["logit_scale"] = sd["logit_scale"].reshape(())
    model.load_state_dict(sd, strict=True)
    return model.eval(), cfg


def alt_kind(alt):
    """What an alt-text of `capforge synth` says (src/synth/shapes.cpp alt_text)."""
    if not alt:
        return "empty"
    if alt.startswith("IMG_"):
        return "filename"
    if alt.endswith("shapes wallpaper"):
        return "background only"
    return "shape"


def evaluate_captioner(cap, vocab, vimgs, vtexts, valts, n, log):
    """Held-out greedy exact match: plain prompts and the recap-v2 conditioned prompt."""
    vimgs, vtexts, valts = vimgs[:n], vtexts[:n], valts[:n]
    plain = greedy_batch(cap, vocab, vimgs, [chat_parts(vocab, PROMPTS[0], "")] * len(vtexts))
    recap = greedy_batch(cap, vocab, vimgs, [chat_parts(vocab, PROMPTS[2], "")] * len(vtexts))
    cond = greedy_batch(cap, vocab, vimgs, [cond_parts(vocab, RECAP_V2, a, "") for a in valts])
    cond_empty = greedy_batch(cap, vocab, vimgs, [cond_parts(vocab, RECAP_V2, "", "")] * len(vtexts))
    em = lambda c: round(sum(s == t for s, t in zip(c, vtexts)) / len(vtexts), 4)  # noqa: E731
    res = {"captioner_heldout_exact_match_python": em(plain),
           "captioner_heldout_exact_match_recap_plain_python": em(recap),
           "captioner_heldout_exact_match_conditioned_python": em(cond),
           "captioner_heldout_exact_match_conditioned_empty_alt_python": em(cond_empty),
           "captioner_heldout_conditioned_differs_from_recap_plain": round(
               sum(a != b for a, b in zip(cond, recap)) / len(vtexts), 4),
           "captioner_heldout_conditioned_differs_from_plain": round(
               sum(a != b for a, b in zip(cond, plain)) / len(vtexts), 4)}
    by = {}
    for c, r, t, a in zip(cond, recap, vtexts, valts):
        k = by.setdefault(alt_kind(a), [0, 0, 0])
        k[0] += 1
        k[1] += r == t
        k[2] += c == t
    res["captioner_heldout_exact_match_by_alt_kind"] = {
        k: {"n": v[0], "recap_plain": round(v[1] / v[0], 3), "conditioned": round(v[2] / v[0], 3)}
        for k, v in sorted(by.items())}
    log(f"captioner (python, {len(vtexts)} held-out images, greedy exact match): plain {res['captioner_heldout_exact_match_python']:.3f}, "
        f"recap plain {res['captioner_heldout_exact_match_recap_plain_python']:.3f}, recap-v2 conditioned "
        f"{res['captioner_heldout_exact_match_conditioned_python']:.3f} (empty alt-text "
        f"{res['captioner_heldout_exact_match_conditioned_empty_alt_python']:.3f}); conditioned differs from recap plain "
        f"{res['captioner_heldout_conditioned_differs_from_recap_plain']:.3f}")
    log(f"by alt-text kind: {json.dumps(res['captioner_heldout_exact_match_by_alt_kind'])}")
    for i in range(min(5, len(vtexts))):
        log(f"  alt {valts[i]!r}: truth '{vtexts[i]}' | plain '{plain[i]}' | conditioned '{cond[i]}'")
    return res


def captioner_only(a, gguf, log, t0):
    """--captioner-only: the CLIP of --clip-dir kept, the captioner trained on its vision tower."""
    out, work = Path(a.out), Path(a.work)

    def shards(name, count, seed, n):
        d = work / name
        if len(sorted(d.glob("*.tar"))) != n:
            data.synth(a.capforge, d, count, seed, SIZE, shards=n)
        return data.load(d)

    imgs, texts, alts = shards("train", a.train_count, 1000 + a.seed, 4)
    vimgs, vtexts, valts = shards("val", 1000, 2000 + a.seed, 1)
    assert len(texts) == a.train_count and len(vtexts) == 1000, "stale shards in --work: remove them"
    log(f"data: {len(texts)} training and {len(vtexts)} held-out images; alt-texts "
        f"{sum(alt_kind(x) == 'shape' for x in alts) / len(alts):.2f} name a shape, {sum(not x for x in alts) / len(alts):.2f} empty")
    clip, cfg = load_clip(a.clip_dir)
    log(f"clip: loaded {a.clip_dir} (kept; its vision tower is the captioner's)")
    vocab = captioner_vocab(texts, vtexts, alts + valts)
    log(f"captioner vocabulary: {len(vocab.tokens)} tokens")
    cap = models.Captioner(clip.vision_model, len(vocab.tokens), d=128, layers=4, heads=4, ffn=384, proj_hidden=256)
    t1 = time.time()
    cap = train_captioner(cap, vocab, imgs, texts, a.captioner_steps, a.captioner_batch, log, alts,
                          a.conditioned_fraction, a.captioner_lr)
    train_s = time.time() - t1
    res = evaluate_captioner(cap, vocab, vimgs, vtexts, valts, a.eval_count, log)
    out.mkdir(parents=True, exist_ok=True)
    export.save_llava(cap, vocab, out / "captioner.gguf", out / "captioner-mmproj.gguf", gguf, CHATML)
    write_tokenizer_check(vocab, out, conditioned=True)
    old = Path(a.clip_dir).parent / "TRAINING.json"
    info = json.loads(old.read_text()) if old.exists() else {}  # the CLIP's numbers still hold
    info.update({"seed": a.seed, "train_images": len(texts), "captioner_steps": a.captioner_steps,
                 "captioner_batch": a.captioner_batch, "captioner_lr": a.captioner_lr,
                 "captioner_only": True, "clip_from": str(a.clip_dir),
                 "captioner_conditioned_fraction": a.conditioned_fraction,
                 "captioner_conditioned_templates": COND_TEMPLATES, "captioner_alt_max_tokens": ALT_MAX_TOKENS,
                 "captioner_vocab_size": len(vocab.tokens), "captioner_train_seconds": round(train_s, 1),
                 "seconds": round(time.time() - t0, 1), "captioner_eval_images": min(a.eval_count, len(vtexts))})
    info.update(res)
    info.update({"torch": torch.__version__, "threads": torch.get_num_threads(),
                 "data": f"capforge synth --count {a.train_count} --seed {1000 + a.seed} --size {SIZE}"})
    (out / "TRAINING.json").write_text(json.dumps(info, indent=1))
    log(f"wrote {out}")


def captioner_vocab(texts, vtexts, alts=None):
    corpus = texts + vtexts + PROMPTS + ["<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n", PREFIX,
                                         "user", "assistant"]
    if alts is not None:
        # the conditioned prompts as they are filled: every template with each distinct alt-text (and
        # none), so the quotes around it merge as at runtime. Digit runs become one digit: each
        # IMG_1234.JPG would otherwise add its own number token; numbers encode digit by digit, and
        # any other unseen text byte by byte (the vocabulary holds all 256 bytes).
        norm = sorted({re.sub(r"[0-9]+", "0", x) for x in alts} | {""})
        corpus += [t.replace("{org_caption}", x) for t in COND_TEMPLATES for x in norm]
        return bpe.Vocab(corpus, whole_words=True)  # the prompts' words must not split the captions' words
    return bpe.Vocab(corpus)


def write_tokenizer_check(vocab, out, conditioned=False):
    checks = ["<|im_start|>user\n", "Describe this image in one sentence.<|im_end|>\n<|im_start|>assistant\n",
              "a red circle and a blue star on a white background", PREFIX]
    if conditioned:
        checks += [RECAP_V2.replace("{org_caption}", x) + "<|im_end|>\n<|im_start|>assistant\n"
                   for x in ("IMG_4821.JPG", "", "stock photo red star on gray", "Café «Zürich» 東京 🙂 2024")]
    (out / "tokenizer_check.json").write_text(json.dumps([{"text": t, "ids": vocab.encode(t)} for t in checks], indent=1))


def bpe_decode(vocab, ids):
    inv = {v: k for k, v in bpe.BYTE.items()}
    return bytes(inv[c] for i in ids for c in vocab.tokens[i]).decode("utf-8", "replace")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capforge", default="build/bin/capforge")
    ap.add_argument("--llama-dir", default=os.path.expanduser("~/.cache/capforge/deps/llama.cpp"))
    ap.add_argument("--out", default="models/demo")
    ap.add_argument("--work", default="/tmp/capforge-demo-train")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-count", type=int, default=16000)
    ap.add_argument("--clip-steps", type=int, default=800)
    ap.add_argument("--clip-negative-steps", type=int, default=300)
    ap.add_argument("--captioner-steps", type=int, default=1200)
    ap.add_argument("--captioner-only", action="store_true",
                    help="keep the CLIP of --clip-dir and train only the captioner on its vision tower")
    ap.add_argument("--clip-dir", default="models/demo/clip")
    ap.add_argument("--conditioned-fraction", type=float, default=None,
                    help="share of captioner steps with an alt-text-conditioned prompt (default: 0.5 with "
                         "--captioner-only, else 0)")
    ap.add_argument("--captioner-batch", type=int, default=32)
    ap.add_argument("--captioner-lr", type=float, default=1.5e-3)
    ap.add_argument("--eval-count", type=int, default=200, help="held-out images of the captioner's exact match")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: every CPU)")
    a = ap.parse_args()
    if a.conditioned_fraction is None:
        a.conditioned_fraction = 0.5 if a.captioner_only else 0.0
    sys.path.insert(0, os.path.join(a.llama_dir, "gguf-py"))
    import gguf

    random.seed(a.seed)
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads or max(1, os.cpu_count() or 1))
    out, work = Path(a.out), Path(a.work)
    t0 = time.time()
    log = lambda m: print(f"[{time.time() - t0:7.1f}s] {m}", flush=True)  # noqa: E731
    if a.captioner_only:
        return captioner_only(a, gguf, log, t0)
    data.synth(a.capforge, work / "train", a.train_count, 1000 + a.seed, SIZE)
    data.synth(a.capforge, work / "val", 1000, 2000 + a.seed, SIZE, shards=1)
    imgs, texts, alts = data.load(work / "train")
    vimgs, vtexts, valts = data.load(work / "val")
    log(f"data: {len(texts)} training and {len(vtexts)} held-out images")

    words = sorted({w for t in texts + vtexts for w in t.lower().replace(",", " ").split()})
    tokdir = work / "clip-tokenizer"
    clip_vocab_size = clip_vocab(words, tokdir)
    tok = clip_tokenize(a.capforge, tokdir, texts + vtexts)
    cfg = {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": 64, "logit_scale_init_value": 2.6592,
           "text_config": {"hidden_size": 128, "intermediate_size": 512, "num_attention_heads": 4,
                           "num_hidden_layers": 3, "max_position_embeddings": 77, "vocab_size": clip_vocab_size,
                           "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5},
           "vision_config": {"hidden_size": 128, "intermediate_size": 512, "num_attention_heads": 4,
                             "num_hidden_layers": 4, "image_size": SIZE, "patch_size": 8, "hidden_act": "quick_gelu",
                             "layer_norm_eps": 1e-5}}
    encode = word_tokenizer(a.capforge, tokdir, tok)
    clip = train_clip(cfg, imgs, texts, encode, a.clip_steps, 128, log)
    r1_plain, hn_plain = recall_at_1(clip, vimgs, vtexts, encode), hard_negative_accuracy(clip, vimgs, vtexts, encode, 7)
    log(f"clip: held-out image->text R@1 {r1_plain:.3f}, true caption over a near miss {hn_plain:.3f}")
    clip = finetune_clip(clip, imgs, texts, encode, a.clip_negative_steps, 128, a.seed, log)
    r1, hn = recall_at_1(clip, vimgs, vtexts, encode), hard_negative_accuracy(clip, vimgs, vtexts, encode, 7)
    log(f"clip after hard negatives: held-out R@1 {r1:.3f}, true caption over a near miss {hn:.3f}")
    export.save_clip(clip, cfg, tokdir, out / "clip")

    conditioned = a.conditioned_fraction > 0
    vocab = captioner_vocab(texts, vtexts, alts + valts if conditioned else None)
    cap = models.Captioner(clip.vision_model, len(vocab.tokens), d=128, layers=4, heads=4, ffn=384, proj_hidden=256)
    cap = train_captioner(cap, vocab, imgs, texts, a.captioner_steps, a.captioner_batch, log, alts,
                          a.conditioned_fraction, a.captioner_lr)
    if conditioned:
        res = evaluate_captioner(cap, vocab, vimgs, vtexts, valts, a.eval_count, log)
        exact = res["captioner_heldout_exact_match_python"]
    else:
        n = min(a.eval_count, len(vtexts))
        sample = [greedy(cap, vocab, vimgs[i], PROMPTS[0]) for i in range(n)]
        exact = sum(s == t for s, t in zip(sample, vtexts)) / len(sample)
        log(f"captioner: held-out greedy exact-match {exact:.3f} (python, {n} images); e.g. '{sample[0]}' vs '{vtexts[0]}'")
        res = {}
    export.save_llava(cap, vocab, out / "captioner.gguf", out / "captioner-mmproj.gguf", gguf, CHATML)
    write_tokenizer_check(vocab, out, conditioned)
    (out / "TRAINING.json").write_text(json.dumps({
        "seed": a.seed, "train_images": len(texts), "clip_steps": a.clip_steps,
        "clip_negative_steps": a.clip_negative_steps, "captioner_steps": a.captioner_steps,
        "seconds": round(time.time() - t0, 1), "clip_heldout_r1": round(r1, 4),
        "clip_heldout_r1_before_hard_negatives": round(r1_plain, 4), "clip_heldout_true_over_near_miss": round(hn, 4),
        "clip_heldout_true_over_near_miss_before_hard_negatives": round(hn_plain, 4),
        "captioner_heldout_exact_match_python": round(exact, 4), "torch": torch.__version__,
        "data": f"capforge synth --count {a.train_count} --seed {1000 + a.seed} --size {SIZE}",
        **({"captioner_conditioned_fraction": a.conditioned_fraction, "captioner_conditioned_templates": COND_TEMPLATES,
            "captioner_alt_max_tokens": ALT_MAX_TOKENS, **res} if conditioned else {})}, indent=1))
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
