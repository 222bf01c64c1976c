#!/usr/bin/python3
"""PyTorch peer of bench/repair: caption repair with a T5 GGUF's weights in PyTorch eager.

  torch_peer_t5.py MODEL.gguf fp32|bf16|qint8 THREADS CAPTIONS.jsonl [--beams N] [--rep P] [--batch B]
                   [--out OUT.jsonl] [--max-tokens-ratio R] [--max-tokens-extra E]

impl "hf" (when $TRANSFORMERS_SRC points at Hugging Face transformers 4.47's src/; $HF_STANDINS, default
bench/repair/hf_standins, holds pure-Python stand-ins for huggingface_hub/safetensors/tokenizers and
hf_compat.py, which transformers needs on Debian's torch 1.13):
T5ForConditionalGeneration with the GGUF's weights (dequantized to f32; tied v1.0 models keep HF's
d_model**-0.5 scale) and generate(): greedy (do_sample=False) or num_beams=N, repetition_penalty=P,
early_stopping=True. Otherwise impl "own": tools/demo-models/t5.py (HF semantics, one caption at a
time for beams). The captions are sorted by length and batched B at a time (what a user does to
batch); max_new_tokens = ceil(R * caption tokens) + E per caption (capforge's rule), the batch's
largest in generate(), a per-row stopping criterion in greedy so each caption stops at its own limit.
bf16: torch.autocast("cpu", dtype=torch.bfloat16). qint8: torch.ao.quantization.quantize_dynamic on every
nn.Linear (per-tensor int8 weights, each batch's activations quantised on the fly; fbgemm's kernels), the
peer's own int8 path. Model loading (and quantising) is excluded from the time.
Prints one JSON line: impl, captions, seconds, captions_per_s, stages {encode, decode}, new tokens.
--out writes each caption's generated ids (without the decoder start token) in input order.
"""
import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "tools" / "demo-models"))
import t5  # noqa: E402
import t5_gguf  # noqa: E402


def load_hf(cfg, sd):
    for p in (os.environ.get("HF_STANDINS") or str(HERE / "hf_standins"), os.environ["TRANSFORMERS_SRC"]):
        sys.path.insert(0, p)
    import hf_compat
    hf_compat.patch()
    import transformers
    from transformers import T5Config, T5ForConditionalGeneration
    hcfg = T5Config(vocab_size=cfg.vocab_size, d_model=cfg.d_model, d_kv=cfg.d_kv, d_ff=cfg.d_ff,
                    num_layers=cfg.num_layers, num_decoder_layers=cfg.num_decoder_layers, num_heads=cfg.num_heads,
                    relative_attention_num_buckets=cfg.relative_attention_num_buckets,
                    relative_attention_max_distance=cfg.relative_attention_max_distance,
                    layer_norm_epsilon=cfg.layer_norm_epsilon, tie_word_embeddings=cfg.tie_word_embeddings,
                    feed_forward_proj="gated-gelu" if cfg.gated_gelu else "relu", dropout_rate=0.0,
                    decoder_start_token_id=cfg.decoder_start_token_id, eos_token_id=cfg.eos_token_id,
                    pad_token_id=cfg.pad_token_id)
    model = T5ForConditionalGeneration(hcfg).eval()
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not m.endswith("embed_tokens.weight") and
               not (m == "lm_head.weight" and cfg.tie_word_embeddings)]
    if missing or unexpected:
        raise SystemExit(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    if cfg.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr()
    return model, transformers.__version__


class Timer:
    """Adds the wall time of a module's forward calls to self.seconds (forward hooks: generate()
    inspects the encoder's forward signature, which a wrapper would hide)."""

    def __init__(self, module):
        self.seconds, self.t0 = 0.0, 0.0
        module.register_forward_pre_hook(self.start)
        module.register_forward_hook(self.stop)

    def start(self, *a):
        self.t0 = time.perf_counter()

    def stop(self, *a):
        self.seconds += time.perf_counter() - self.t0


def run_hf(model, batches, limits, a, eos):
    from transformers import StoppingCriteria, StoppingCriteriaList

    class PerRowLimit(StoppingCriteria):  # greedy: each row stops at its own max_new
        def __init__(self, lim):
            self.lim = torch.tensor(lim)

        def __call__(self, input_ids, scores, **kw):
            return (input_ids.shape[1] - 1) >= self.lim

    out = {}
    for idx, ids in batches:
        x, mask = t5.pad_batch(ids, 0)
        lim = [limits[i] for i in idx]
        kw = dict(input_ids=x, attention_mask=mask, max_new_tokens=max(lim))
        if a.beams > 1:
            kw.update(num_beams=a.beams, repetition_penalty=a.rep, early_stopping=True, do_sample=False)
        else:
            kw.update(do_sample=False, num_beams=1, stopping_criteria=StoppingCriteriaList([PerRowLimit(lim)]))
            if a.rep != 1.0:
                kw["repetition_penalty"] = a.rep
        with torch.no_grad():
            seqs = model.generate(**kw)
        for row, i in enumerate(idx):
            toks = seqs[row, 1:].tolist()
            toks = toks[: toks.index(eos) + 1] if eos in toks else toks
            out[i] = toks[: limits[i]]
    return out


def run_own(model, batches, limits, a):
    out = {}
    for idx, ids in batches:
        if a.beams > 1:
            for i, x in zip(idx, ids):
                out[i], _ = t5.beam_search(model, x, limits[i], beams=a.beams, penalty=a.rep)
        else:
            for i, toks in zip(idx, t5.greedy(model, ids, [limits[i] for i in idx], penalty=a.rep)):
                out[i] = toks
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("variant", choices=["fp32", "bf16", "qint8"])
    ap.add_argument("threads", type=int)
    ap.add_argument("captions")
    ap.add_argument("--beams", type=int, default=1)
    ap.add_argument("--rep", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-tokens-ratio", type=float, default=1.5)
    ap.add_argument("--max-tokens-extra", type=int, default=8)
    ap.add_argument("--spm", default=str(HERE.parent.parent / "tests/data/t5-vocab/spiece.model"))
    ap.add_argument("--llama-dir", default=os.path.expanduser("~/.cache/capforge/deps/llama.cpp"))
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=a.spm)
    caps = [json.loads(line)["caption"] for line in open(a.captions)]
    cfg, sd = t5_gguf.read_gguf(a.model, a.llama_dir)
    impl, version = "own", None
    if os.environ.get("TRANSFORMERS_SRC"):
        model, version = load_hf(cfg, sd)
        impl = "hf"
        enc_timer = Timer(model.encoder)
    else:
        model = t5.T5(cfg)
        model.load_state_dict(sd)
        model.eval()
        enc_timer, own_encode = Timer(torch.nn.Identity()), model.encode

        def encode(*x):
            enc_timer.start()
            try:
                return own_encode(*x)
            finally:
                enc_timer.stop()
        model.encode = encode
    if a.variant == "qint8":
        if impl != "hf":
            sys.exit("qint8 needs TRANSFORMERS_SRC (the own implementation's layers are not nn.Linear throughout)")
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        enc_timer = Timer(model.encoder)
    ids = [sp.encode(c) + [cfg.eos_token_id] for c in caps]
    limits = [max(1, math.ceil(a.max_tokens_ratio * (len(x) - 1) - 1e-9) + a.max_tokens_extra) for x in ids]
    order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))
    batches = [(order[k:k + a.batch], [ids[i] for i in order[k:k + a.batch]]) for k in range(0, len(order), a.batch)]
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if a.variant == "bf16" else torch.autocast("cpu", enabled=False)
    t0 = time.perf_counter()
    with ctx:
        out = run_hf(model, batches, limits, a, cfg.eos_token_id) if impl == "hf" else run_own(model, batches, limits, a)
    secs = time.perf_counter() - t0
    if a.out:
        with open(a.out, "w") as f:
            for i in range(len(caps)):
                f.write(json.dumps({"caption": caps[i], "ids": out[i]}) + "\n")
    print(json.dumps({"impl": impl, "transformers": version, "torch": torch.__version__, "captions": len(caps),
                      "seconds": secs, "captions_per_s": len(caps) / secs, "batch": a.batch,
                      "new_tokens": sum(len(o) for o in out.values()),
                      "stages": {"encode": enc_timer.seconds, "decode": secs - enc_timer.seconds}}))


if __name__ == "__main__":
    main()
