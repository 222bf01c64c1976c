#!/usr/bin/python3
"""Trains the demo caption repairer: a tiny original-T5 (v1.0: ReLU FFN, output layer tied to the
embeddings, decoder output scaled by d_model**-0.5 before it, as LAION-COCO's SimpleT5 repairer) that
restores clean synthetic-shapes captions from corrupted ones, and writes it as llama.cpp's
convert_hf_to_gguf.py writes a T5 (arch "t5", no output.weight):
  models/demo/repair/t5-repair.gguf   f16 matrices, f32 norms; tokenizer keys from tests/data/t5-vocab
  models/demo/repair/TRAINING.json    how it was trained and its held-out exact match
  models/demo/repair/heldout.jsonl    200 held-out corrupted captions with their truth (scripts/demo)
  tests/data/demo_repair_cases.json   held-out inputs -> the PyTorch model's greedy output (tests)

Clean captions follow src/synth/shapes.cpp's grammar ("a red circle at the top left on a white
background"), half with the demo LAION-COCO captioner's prefix "a picture of ", written as a sentence
(capital first letter, final period). Corruptions (corrupt(); seeded): missing final period, lower-case
first letter, a doubled word, a dropped article, a space before a comma or period, a stray trailing
connective ("... on a"), double spaces. The target is the clean caption. The model is tools/demo-models/
t5.py (HF transformers 4.47 semantics); the held-out numbers are from its f16-rounded weights, i.e. the
shipped ones.

usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 tools/demo-models/repair.py
         (1 thread, ~16 minutes); --reevaluate: the held-out numbers and files again from the shipped GGUF
       tools/demo-models/repair.py --check models/demo/repair/t5-repair.gguf [--llama build/bin/llama-completion]
       PYTHONPATH=bench/repair/hf_standins:<transformers 4.47 src> tools/demo-models/repair.py --hf-check
Needs python3-torch, python3-numpy, python3-sentencepiece and llama.cpp's gguf-py (--llama-dir).
"""
import argparse
import json
import math
import os
import random
import string
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import data  # noqa: E402
import t5  # noqa: E402
from t5_gguf import export_gguf, load_gguf, round_f16  # noqa: E402

PREFIX = "a picture of "
WORDS = ["SALE", "OPEN", "STOP", "FREE", "NEW", "HELLO", "CAT", "SUN"]
CONNECTIVES = ["on a", "and", "with the", "at the", "and a", "in the", "of"]
ARTICLES = {"a", "an", "the"}
KINDS = ["no_period", "lower_first", "double_word", "drop_article", "space_punct", "trailing", "double_space"]


# --------------------------------------------------------------------------------------------- data
def scene_caption(rng):
    """A caption of src/synth/shapes.cpp's grammar (make_scene + scene_caption + add_word)."""
    bg = rng.choice(data.BACKGROUNDS)
    n = rng.randint(1, 3)
    cols = sorted(rng.sample(range(3), n))
    shapes, where = [], ""
    for c in cols:
        kind = rng.choice(data.KINDS)
        colour = rng.choice([x for x in data.COLOURS if x != bg])
        row = rng.randrange(3)
        if n == 1:
            where = data.POSITIONS[row * 3 + c]
        shapes.append(("an " if colour == "orange" else "a ") + colour + " " + kind)
    objs = shapes[0] if n == 1 else ", ".join(shapes[:-1]) + " and " + shapes[-1]
    cap = objs + (" " + where if where else "") + " on a " + bg + " background"
    if rng.random() < 0.2:
        cap += ' with the word "' + rng.choice(WORDS) + '"'
    return cap


def clean_caption(rng):
    cap = (PREFIX if rng.random() < 0.5 else "") + scene_caption(rng)
    return cap[0].upper() + cap[1:] + "."


def corrupt(clean, rng):
    """Returns (corrupted text, kinds applied). Zero to three corruptions; word edits first, then
    punctuation, case and spacing."""
    k = rng.choices([0, 1, 2, 3], weights=[10, 45, 30, 15])[0]
    kinds, applied = set(rng.sample(KINDS, k)), []
    words = clean[:-1].split(" ")  # without the final period
    period = True
    if "drop_article" in kinds:
        idx = [i for i, w in enumerate(words) if w.lower() in ARTICLES]
        if idx:
            del words[rng.choice(idx)]
            applied.append("drop_article")
    if "double_word" in kinds:
        i = rng.randrange(len(words))
        words.insert(i, words[i].rstrip(","))
        applied.append("double_word")
    if "trailing" in kinds:  # a cut-off caption: a connective and no period
        words += rng.choice(CONNECTIVES).split()
        period = False
        applied.append("trailing")
    if "no_period" in kinds and period:
        period = False
        applied.append("no_period")
    text = " ".join(words) + ("." if period else "")
    if "space_punct" in kinds:
        opts = [i for i, ch in enumerate(text) if ch in ",."]
        if opts:
            i = rng.choice(opts)
            text = text[:i] + " " + text[i:]
            applied.append("space_punct")
    if "lower_first" in kinds:
        text = text[0].lower() + text[1:]
        applied.append("lower_first")
    if "double_space" in kinds:
        spaces = [i for i, ch in enumerate(text) if ch == " "]
        for i in sorted(rng.sample(spaces, min(len(spaces), rng.randint(1, 2))), reverse=True):
            text = text[:i] + " " + text[i:]
        applied.append("double_space")
    return text, sorted(applied)


def pairs(seed, n):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        clean = clean_caption(rng)
        bad, kinds = corrupt(clean, rng)
        out.append((bad, clean, kinds))
    return out


# ---------------------------------------------------------------------------------------- tokenizer
class Tok:
    def __init__(self, path):
        import sentencepiece as spm
        self.sp = spm.SentencePieceProcessor(model_file=str(path))
        self.eos, self.pad = 1, 0
        assert self.sp.id_to_piece(self.eos) == "</s>" and self.sp.id_to_piece(self.pad) == "<pad>"

    def encode(self, text):  # T5Tokenizer: the pieces, then </s>
        return self.sp.encode(text) + [self.eos]

    def decode(self, ids):  # skip_special_tokens=True
        return self.sp.decode([i for i in ids if i > 2])


# ------------------------------------------------------------------------------------------ training
def hf_init(model, cfg):
    """HF T5PreTrainedModel._init_weights with factor 1.0."""
    d, kv, h = cfg.d_model, cfg.d_kv, cfg.num_heads
    for name, p in model.named_parameters():
        if name.endswith("layer_norm.weight"):
            torch.nn.init.ones_(p)
        elif name == "shared.weight":
            torch.nn.init.normal_(p, 0, 1.0)
        elif name.endswith(".q.weight"):
            torch.nn.init.normal_(p, 0, (d * kv) ** -0.5)
        elif name.endswith((".k.weight", ".v.weight")):
            torch.nn.init.normal_(p, 0, d ** -0.5)
        elif name.endswith(".o.weight"):
            torch.nn.init.normal_(p, 0, (h * kv) ** -0.5)
        elif name.endswith("relative_attention_bias.weight"):
            torch.nn.init.normal_(p, 0, d ** -0.5)
        elif name.endswith(".wi.weight"):
            torch.nn.init.normal_(p, 0, d ** -0.5)
        elif name.endswith(".wo.weight"):
            torch.nn.init.normal_(p, 0, cfg.d_ff ** -0.5)


def batch_tensors(tok, batch):
    src = [tok.encode(b) for b, _, _ in batch]
    tgt = [tok.encode(c) for _, c, _ in batch]
    ids, mask = t5.pad_batch(src, tok.pad)
    labels, lmask = t5.pad_batch(tgt, tok.pad)
    return ids, mask, labels.masked_fill(lmask == 0, -100)


def train(model, tok, a, log):
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
    warm = 100
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1, s / a.steps))))
    train_pairs = pairs(a.seed + 1000, a.steps * a.batch)
    t0, losses = time.time(), []
    for step in range(a.steps):
        ids, mask, labels = batch_tensors(tok, train_pairs[step * a.batch:(step + 1) * a.batch])
        loss = model(ids, mask, labels)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == a.steps - 1:
            log(f"step {step} loss {np.mean(losses[-50:]):.4f} {time.time() - t0:.0f}s")
        if a.max_seconds and time.time() - t0 > a.max_seconds:
            log(f"stopping at step {step}: --max-seconds")
            break
    return {bad for bad, _, _ in train_pairs[:(step + 1) * a.batch]}, step + 1, float(np.mean(losses[-50:]))


def max_new(ids):
    """capforge's default for an encoded caption (its tokens and </s>): ceil(1.5 * caption tokens) + 8."""
    return math.ceil(1.5 * (len(ids) - 1)) + 8


def evaluate(model, tok, held, log, beams_n=200):
    """Exact match on held-out pairs: corrupted input, greedy, and 2 beams with or without
    repetition penalty 2.5 (LAION-COCO's settings) on the first beams_n."""
    model.eval()
    res = {"heldout_pairs": len(held)}
    res["exact_match_input"] = round(float(np.mean([b == c for b, c, _ in held])), 4)
    outs = []
    for i in range(0, len(held), 64):
        chunk = [tok.encode(b) for b, _, _ in held[i:i + 64]]
        outs += t5.greedy(model, chunk, [max_new(c) for c in chunk])
    texts = [tok.decode(o) for o in outs]
    res["exact_match_greedy"] = round(float(np.mean([t == c for t, (_, c, _) in zip(texts, held)])), 4)
    by_kind = {}
    for t, (b, c, kinds) in zip(texts, held):
        for k in kinds or ["none"]:
            by_kind.setdefault(k, []).append(t == c)
    res["exact_match_greedy_by_corruption"] = {k: [len(v), round(float(np.mean(v)), 3)] for k, v in sorted(by_kind.items())}
    sub = held[:beams_n]
    for name, pen in (("beams2", 1.0), ("beams2_rep2.5", 2.5)):
        ok, wrong = 0, []
        for b, c, _ in sub:
            ids = tok.encode(b)
            out, _ = t5.beam_search(model, ids, max_new(ids), beams=2, penalty=pen)
            ok += tok.decode(out) == c
            if tok.decode(out) != c and len(wrong) < 3:
                wrong.append({"input": b, "output": tok.decode(out), "clean": c})
        res[f"exact_match_{name}"] = round(ok / len(sub), 4)
        res[f"{name}_misses"] = wrong
    res["beam_pairs"] = len(sub)
    log(json.dumps(res))
    return res, texts


def rules_repair(text):
    """capforge's --repair rules (src/models/repair/rules.cpp) in Python, for the comparison."""
    words = []
    for w in text.split():
        if all(ch in ",.;:!?" for ch in w) and words:
            words[-1] += w
            continue
        sp = lambda x: x.rstrip(string.punctuation).lower()  # noqa: E731
        if words and sp(words[-1]) == sp(w) and sp(w) and words[-1][-1] not in string.punctuation:
            continue
        words.append(w)
    dangling = {"a", "an", "the", "of", "on", "in", "at", "with", "and", "or", "to", "for", "by", "from", "into",
                "onto", "its", "their", "his", "her", "is", "are", "while", "near", "under", "over", "as"}
    while len(words) > 1 and words[-1].rstrip(string.punctuation).lower() in dangling and words[-1][-1] not in ".!?":
        words.pop()
    s = " ".join(words).rstrip(",;:")
    return s[:1].upper() + s[1:] + ("" if s.endswith((".", "!", "?")) else ".") if s else s


# -------------------------------------------------------------------------------------------- export
def llama_greedy(binary, gguf_path, text, n_predict):
    """llama.cpp's own CLI, greedy, one caption: its generated text."""
    import subprocess
    r = subprocess.run([binary, "-m", str(gguf_path), "-p", text, "-n", str(n_predict), "--temp", "0", "-t", "1",
                        "-no-cnv", "--no-warmup", "--no-display-prompt", "-c", "512"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    text = r.stdout.strip()
    return text[: -len("[end of text]")].rstrip() if text.endswith("[end of text]") else text


def record(out, key, value):
    info = json.loads((out / "TRAINING.json").read_text())
    info[key] = value
    (out / "TRAINING.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps({key: value}))


def hf_check(path, tok, a, n=120):
    """Greedy, 2 beams and 2 beams + repetition penalty 2.5 of HF's generate() against t5.py's on
    the first n held-out inputs (PYTHONPATH: transformers 4.47 src and, on torch 1.13,
    bench/repair/hf_standins)."""
    import transformers
    from transformers import T5Config, T5ForConditionalGeneration
    try:
        import hf_compat
        hf_compat.patch()
    except ImportError:
        pass
    model = load_gguf(path, a.llama_dir)
    c = model.cfg
    hf = T5ForConditionalGeneration(T5Config(
        vocab_size=c.vocab_size, d_model=c.d_model, d_kv=c.d_kv, d_ff=c.d_ff, num_layers=c.num_layers,
        num_decoder_layers=c.num_decoder_layers, num_heads=c.num_heads, feed_forward_proj="relu",
        tie_word_embeddings=True, decoder_start_token_id=0, eos_token_id=1, pad_token_id=0)).eval()
    missing, unexpected = hf.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all("embed_tokens" in m or m == "lm_head.weight" for m in missing)
    held = [json.loads(line) for line in open(Path(a.out) / "heldout.jsonl")][:n]
    agree = {"greedy": 0, "beams2": 0, "beams2_rep2.5": 0}
    with torch.no_grad():
        for r in held:
            ids = tok.encode(r["re_caption"])
            x, mn = torch.tensor([ids]), max_new(ids)
            for name, beams, pen in (("greedy", 1, 1.0), ("beams2", 2, 1.0), ("beams2_rep2.5", 2, 2.5)):
                kw = dict(num_beams=2, early_stopping=True) if beams == 2 else dict(do_sample=False)
                h = hf.generate(input_ids=x, max_new_tokens=mn, repetition_penalty=pen, **kw)[0, 1:].tolist()
                ours = t5.greedy(model, [ids], [mn], pen)[0] if beams == 1 else \
                    t5.beam_search(model, ids, mn, beams=2, penalty=pen)[0]
                agree[name] += h == ours
    return {"inputs": len(held), "equal_ids": agree, "transformers": transformers.__version__}


# ---------------------------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/demo/repair")
    ap.add_argument("--vocab", default="tests/data/t5-vocab")
    ap.add_argument("--cases", default="tests/data/demo_repair_cases.json")
    ap.add_argument("--llama-dir", default=os.path.expanduser("~/.cache/capforge/deps/llama.cpp"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--max-seconds", type=float, default=0, help="stop training after this long (0: no limit)")
    ap.add_argument("--heldout", type=int, default=1000)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--check", help="a repairer GGUF: compare PyTorch greedy on it with llama.cpp's CLI")
    ap.add_argument("--llama", default="build/bin/llama-completion")
    ap.add_argument("--hf-check", action="store_true",
                    help="compare HF transformers' generate() with t5.py on OUT/t5-repair.gguf (see hf_check())")
    ap.add_argument("--reevaluate", action="store_true",
                    help="no training: evaluate OUT/t5-repair.gguf again, rewrite the cases, heldout.jsonl, TRAINING.json")
    ap.add_argument("--demo-rows", type=int, default=200, help="held-out rows written to OUT/heldout.jsonl")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    t0 = time.time()
    log = lambda m: print(f"[{time.time() - t0:7.1f}s] {m}", flush=True)  # noqa: E731
    tok = Tok(Path(a.vocab) / "spiece.model")
    if a.check:  # llama.cpp's CLI on the committed cases
        cases = json.loads(Path(a.cases).read_text())["cases"]
        agree = 0
        for c in cases:
            got = llama_greedy(a.llama, a.check, c["input"], c["max_new_tokens"])
            agree += got == c["greedy"]
            print(json.dumps({"input": c["input"], "pytorch": c["greedy"], "llama.cpp": got}))
        print(f"llama.cpp greedy == PyTorch greedy on {agree}/{len(cases)}")
        record(Path(a.out), "llama_cpp_check", {"cases": len(cases), "greedy_equal": agree,
                                                 "command": f"{Path(a.llama).name} --temp 0 (f16 KV cache)"})
        return
    if a.hf_check:  # HF transformers' T5ForConditionalGeneration.generate() on the shipped weights
        record(Path(a.out), "transformers_check", hf_check(Path(a.out) / "t5-repair.gguf", tok, a))
        return
    out = Path(a.out)
    if a.reevaluate:  # the shipped GGUF again: held-out numbers, cases and files (no training)
        info = json.loads((out / "TRAINING.json").read_text())
        info = {k: v for k, v in info.items() if not k.startswith(("exact_match", "heldout", "beam"))}
        model = load_gguf(out / "t5-repair.gguf", a.llama_dir)
        cfg = model.cfg
        seen = {b for b, _, _ in pairs(info["seed"] + 1000, info["steps"] * info["batch"])}
        a.seed = info["seed"]
    else:
        cfg = t5.T5Config(vocab_size=tok.sp.get_piece_size(), d_model=a.d_model, d_kv=a.d_model // 4,
                          d_ff=4 * a.d_model)
        model = t5.T5(cfg)
        hf_init(model, cfg)
        log(f"parameters {sum(p.numel() for p in model.parameters())}, vocab {cfg.vocab_size}")
        seen, steps, final_loss = train(model, tok, a, log)
        train_s = time.time() - t0
        round_f16(model)
        out.mkdir(parents=True, exist_ok=True)
        export_gguf(model, cfg, Path(a.vocab) / "t5-vocab.gguf", out / "t5-repair.gguf", a.llama_dir)
        info = {"seed": a.seed, "architecture": "T5 v1.0 (ReLU FFN, tied output scaled by d_model**-0.5, relative "
                "position bias in layer 0, RMS norm without bias, no attention scaling)", "d_model": cfg.d_model,
                "d_kv": cfg.d_kv, "d_ff": cfg.d_ff, "heads": cfg.num_heads, "encoder_layers": cfg.num_layers,
                "decoder_layers": cfg.num_decoder_layers, "vocab": cfg.vocab_size,
                "tokenizer": "tests/data/t5-vocab/spiece.model (SentencePiece unigram)",
                "parameters": sum(p.numel() for p in model.parameters()), "steps": steps, "batch": a.batch,
                "lr": a.lr, "optimizer": "AdamW wd 0.01, 100 warm-up steps, cosine", "final_loss": round(final_loss, 4),
                "train_seconds": round(train_s, 1), "threads": 1, "torch": torch.__version__,
                "data": "clean captions of src/synth/shapes.cpp's grammar (half with the prefix 'a picture of '), "
                "as sentences; corrupted by 0-3 of " + ", ".join(KINDS) + " (repair.py corrupt(), seed "
                f"{a.seed + 1000}); target: the clean caption",
                "weights": "f16 matrices, f32 norms (as convert_hf_to_gguf.py --outtype f16)",
                "command": "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 tools/demo-models/repair.py "
                + " ".join(sys.argv[1:])}
    # held-out: a disjoint seed, and any pair whose corrupted text was a training input dropped
    held = [p for p in pairs(a.seed + 2000, a.heldout * 2) if p[0] not in seen][: a.heldout]
    res, texts = evaluate(model, tok, held, log)
    res["exact_match_rules_python_port"] = round(float(np.mean([rules_repair(b) == c for b, c, _ in held])), 4)
    # committed cases for the C++ test: held-out inputs and this model's greedy text and ids
    rng = random.Random(a.seed + 3000)
    cases = []
    for b, c, kinds in rng.sample(held, 12):
        ids = tok.encode(b)
        g = t5.greedy(model, [ids], [max_new(ids)])[0]
        bm, _ = t5.beam_search(model, ids, max_new(ids), beams=2, penalty=2.5)
        cases.append({"input": b, "clean": c, "corruptions": kinds, "input_ids": ids,
                      "max_new_tokens": max_new(ids), "greedy": tok.decode(g), "greedy_ids": g,
                      "beams2_rep2.5": tok.decode(bm)})
    head = json.dumps({"model": "models/demo/repair/t5-repair.gguf", "source": "tools/demo-models/repair.py "
                       "(PyTorch, f16-rounded weights, HF generate semantics; max_new_tokens = ceil(1.5 * caption "
                       "tokens, without </s>) + 8)"})
    Path(a.cases).write_text(head[:-1] + ',\n "cases": [\n' + ",\n".join(json.dumps(c) for c in cases) + "\n]}\n")
    # the demo's held-out set (scripts/demo): corrupted caption, clean truth, corruptions
    with open(out / "heldout.jsonl", "w") as f:
        for i, (b, c, kinds) in enumerate(held[: a.demo_rows]):
            f.write(json.dumps({"key": f"{i:06d}", "re_caption": b, "clean": c, "corruptions": ",".join(kinds)}) + "\n")
    info.update({"heldout": f"seed {a.seed + 2000}, inputs seen in training removed; numbers from the f16-rounded "
                 "weights in PyTorch (tools/demo-models/t5.py, HF generate semantics); max new tokens "
                 "ceil(1.5 * caption tokens) + 8; heldout.jsonl: its first rows for the demo", **res,
                 "heldout_examples": [{"input": b, "greedy": t, "clean": c}
                                      for (b, c, _), t in list(zip(held, texts))[:8]]})
    (out / "TRAINING.json").write_text(json.dumps(info, indent=1) + "\n")
    log(f"wrote {out}/t5-repair.gguf, TRAINING.json, heldout.jsonl and {a.cases}")


if __name__ == "__main__":
    main()
