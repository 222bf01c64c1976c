#!/usr/bin/python3
"""Independent float64 numpy T5 / Flan-T5 (T5ForConditionalGeneration) and Hugging Face's
generate() decoding, used to check capforge's caption repair. Written from transformers 4.47
(commit a5bb528: models/t5/modeling_t5.py, generation/utils.py, generation/beam_search.py,
generation/logits_process.py), not from llama.cpp's graph nor from capforge's code. Weights are
read from a llama.cpp "t5" GGUF by a small reader here (numpy arrays in reversed ggml order, so a
ggml [in, out] matrix is a torch nn.Linear weight [out, in]; F32, F16 and Q8_0 tensors).

Model (HF T5):
  embeddings  shared [V, D]; NOT scaled on input.
  T5LayerNorm RMS norm WITHOUT mean subtraction and WITHOUT bias: x * rsqrt(mean(x^2) + eps) * w.
  blocks      pre-norm; encoder: self-attention, FFN; decoder: causal self-attention, cross-attention
              (queries from the decoder, keys/values from the final encoder output), FFN; each
              sub-layer adds its output to the residual stream.
  attention   scores = q k^T with NO 1/sqrt(d_kv) scaling; + position bias; softmax; v; o.
  rel. bias   relative_position = key_pos - query_pos; buckets (num_buckets B = 32, max_distance
              128): encoder bidirectional (B/2 buckets per direction, + B/2 when key after query,
              then |rel|), decoder unidirectional (rel = -min(rel, 0)); max_exact = B'/2 exact
              buckets, then max_exact + int(log(rel/max_exact) / log(max_distance/max_exact) *
              (B' - max_exact)) capped at B' - 1. Only block 0 of each stack has the bias table
              [B, heads]; block 0's bias is reused by every block of that stack. Cross-attention
              has no position bias.
  FFN         v1_0 (T5): wo(relu(wi(x))); v1_1 (Flan-T5, gated-gelu): wo(gelu_new(wi_0(x)) * wi_1(x))
              with gelu_new = tanh approximation. GGUF: ffn_gate = wi_0, ffn_up = wi / wi_1.
  final norms encoder final_layer_norm, decoder final_layer_norm.
  LM head     tied (v1_0, no output.weight): logits = (h * d_model**-0.5) @ shared^T. llama.cpp does
              NOT apply the d_model**-0.5 scale: its logits are sqrt(d_model) x HF's for tied models
              (capforge corrects it). Untied (v1_1): logits = h @ lm_head^T.
Decoding (HF generate):
  the decoder starts from decoder_start_token_id (0 = <pad>); eos = 1; max_length counts the
  start token (max_length = max_new + 1).
  greedy      repetition penalty on the RAW logits over the decoder ids (start token included),
              argmax, stop after eos.
  beam        see beam_search() below (BeamSearchScorer + BeamHypotheses, num_beam_groups 1).

usage:
  t5_reference.py logits MODEL.gguf --enc 5,6,1 --dec 0,7        next-token logits (HF scale)
  t5_reference.py greedy MODEL.gguf --enc 5,6,1 --max-new 20 [--repetition-penalty P]
  t5_reference.py beam MODEL.gguf --enc 5,6,1 --num-beams 4 [--length-penalty L]
                  [--early-stopping true|false|never] [--repetition-penalty P] --max-new 20
  t5_reference.py greedy-table TABLE.json ... / beam-table TABLE.json ...   controlled logits
                  (format: logits depend on (step, last token); see TABLE_FORMAT below)
  --requests FILE.jsonl: one request per line, e.g. {"enc": [...], "dec": [...]} or {"enc": [...],
                  "max_new": 20, "num_beams": 3, "length_penalty": 0.6, "early_stopping": "never",
                  "repetition_penalty": 1.3}; in the -table modes a line may carry its own "table"
                  (TABLE.json may then be "-"). Prints one JSON result per line, in order.
prints one JSON object: logits {"logits": [V], "llama_scale": sqrt(D) if tied else 1};
  greedy {"ids", "sum_logprobs", "sum_logprobs_processed", "gaps" (top-1 minus top-2 processed logit
  per step, HF scale: where a tolerance-bound comparison may stop)};
  beam {"ids", "sequence", "score", "sum_logprobs", "generated_len", "hypotheses"}.

TABLE_FORMAT: {"vocab": V, "eos": 1, "start": 0, "steps": [{"*": [V raw logits], "7": [...]}, ...]}:
  at decoding step k (tokens generated so far) use steps[min(k, len-1)], key str(last token) else "*".
"""
import argparse
import json
import math
from pathlib import Path

import numpy as np

# --- weights -------------------------------------------------------------------------------------


_SCALARS = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1", 10: "<u8", 11: "<i8",
            12: "<f8"}


def read_gguf(path):
    """A minimal GGUF reader (spec: ggml/docs/gguf.md): (metadata dict, {name: float64 array in
    numpy order}). Tensor types F32, F16 and Q8_0 (blocks of an f16 scale + 32 int8)."""
    buf = Path(path).read_bytes()
    pos = 0

    def take(fmt):
        nonlocal pos
        a = np.frombuffer(buf, dtype=fmt, count=1, offset=pos)[0]
        pos += np.dtype(fmt).itemsize
        return a

    def string():
        nonlocal pos
        n = int(take("<u8"))
        pos += n
        return buf[pos - n:pos].decode("utf-8", errors="replace")

    def value(t):
        nonlocal pos
        if t == 8:
            return string()
        if t == 9:
            et, n = int(take("<u4")), int(take("<u8"))
            if et in _SCALARS:  # bulk: the tokenizer's arrays are large
                a = np.frombuffer(buf, dtype=_SCALARS[et], count=n, offset=pos)
                pos += a.nbytes
                return a
            return [value(et) for _ in range(n)]
        return take(_SCALARS[t]).item()

    if buf[:4] != b"GGUF":
        raise SystemExit(f"{path}: not a GGUF file")
    pos = 4
    take("<u4")
    n_tensors, n_kv = int(take("<u8")), int(take("<u8"))
    meta = {}
    for _ in range(n_kv):
        k = string()
        meta[k] = value(int(take("<u4")))
    infos = []
    for _ in range(n_tensors):
        name = string()
        ne = [int(take("<u8")) for _ in range(int(take("<u4")))]
        infos.append((name, ne, int(take("<u4")), int(take("<u8"))))
    align = int(meta.get("general.alignment", 32))
    base = (pos + align - 1) // align * align
    W = {}
    for name, ne, t, off in infos:
        n = int(np.prod(ne))
        shape = tuple(reversed(ne))  # numpy order: ggml [in, out] -> [out, in]
        if t == 0:
            a = np.frombuffer(buf, "<f4", n, base + off)
        elif t == 1:
            a = np.frombuffer(buf, "<f2", n, base + off)
        elif t == 8:  # Q8_0
            blocks = np.frombuffer(buf, np.dtype([("d", "<f2"), ("q", "i1", 32)]), n // 32, base + off)
            a = blocks["d"].astype(np.float64)[:, None] * blocks["q"].astype(np.float64)
        else:
            raise SystemExit(f"{path}: tensor {name} has unsupported ggml type {t}")
        W[name] = np.asarray(a, dtype=np.float64).reshape(shape)
    return meta, W


def load_gguf(path):
    meta, W = read_gguf(path)
    if meta.get("general.architecture") != "t5":
        raise SystemExit(f"{path}: architecture {meta.get('general.architecture')!r} is not t5")

    def val(key, default=None):
        return meta.get(key, default)

    cfg = {"d_model": val("t5.embedding_length"), "heads": val("t5.attention.head_count"),
           "d_kv": val("t5.attention.key_length"), "layers": val("t5.block_count"),
           "dec_layers": val("t5.decoder_block_count", val("t5.block_count")),
           "buckets": val("t5.attention.relative_buckets_count"), "max_distance": 128,
           "eps": float(val("t5.attention.layer_norm_rms_epsilon")),
           "start": val("t5.decoder_start_token_id", 0),
           "eos": val("tokenizer.ggml.eos_token_id", 1)}
    cfg["tied"] = "output.weight" not in W
    cfg["gated"] = "enc.blk.0.ffn_gate.weight" in W
    cfg["vocab"] = W["token_embd.weight"].shape[0]
    return W, cfg


# --- model ---------------------------------------------------------------------------------------


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def gelu_new(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def relative_position_bucket(rel, bidirectional, num_buckets, max_distance):
    buckets = np.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets += (rel > 0).astype(rel.dtype) * num_buckets
        rel = np.abs(rel)
    else:
        rel = -np.minimum(rel, 0)
    max_exact = num_buckets // 2
    is_small = rel < max_exact
    safe = np.maximum(rel, 1).astype(np.float64)
    # float32 log as torch computes it, truncated toward zero by .to(torch.long)
    large = max_exact + (np.log(safe.astype(np.float32) / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    return buckets + np.where(is_small, rel, large)


def position_bias(table, q_len, k_len, bidirectional, cfg):
    """[heads, q_len, k_len] from the bias table [buckets, heads]."""
    rel = np.arange(k_len)[None, :] - np.arange(q_len)[:, None]
    b = relative_position_bucket(rel, bidirectional, cfg["buckets"], cfg["max_distance"])
    return table[b].transpose(2, 0, 1)


def attention(x, kv, W, prefix, cfg, bias):
    H, dk = cfg["heads"], cfg["d_kv"]
    q = (x @ W[prefix + "_q.weight"].T).reshape(len(x), H, dk).transpose(1, 0, 2)
    k = (kv @ W[prefix + "_k.weight"].T).reshape(len(kv), H, dk).transpose(1, 0, 2)
    v = (kv @ W[prefix + "_v.weight"].T).reshape(len(kv), H, dk).transpose(1, 0, 2)
    s = q @ k.transpose(0, 2, 1)  # no 1/sqrt(d_kv)
    if bias is not None:
        s = s + bias
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    o = (p @ v).transpose(1, 0, 2).reshape(len(x), H * dk)
    return o @ W[prefix + "_o.weight"].T


def ffn(x, W, b, cfg):
    if cfg["gated"]:
        h = gelu_new(x @ W[b + "ffn_gate.weight"].T) * (x @ W[b + "ffn_up.weight"].T)
    else:
        h = np.maximum(x @ W[b + "ffn_up.weight"].T, 0.0)
    return h @ W[b + "ffn_down.weight"].T


def encode(W, cfg, ids):
    x = W["token_embd.weight"][np.asarray(ids)]
    bias = position_bias(W["enc.blk.0.attn_rel_b.weight"], len(ids), len(ids), True, cfg)
    for i in range(cfg["layers"]):
        b = f"enc.blk.{i}."
        h = rms_norm(x, W[b + "attn_norm.weight"], cfg["eps"])
        x = x + attention(h, h, W, b + "attn", cfg, bias)
        x = x + ffn(rms_norm(x, W[b + "ffn_norm.weight"], cfg["eps"]), W, b, cfg)
    return rms_norm(x, W["enc.output_norm.weight"], cfg["eps"])


def decode_logits(W, cfg, enc_out, dec_ids):
    """HF-scale logits [len(dec_ids), V] (every decoder position)."""
    T = len(dec_ids)
    x = W["token_embd.weight"][np.asarray(dec_ids)]
    bias = position_bias(W["dec.blk.0.attn_rel_b.weight"], T, T, False, cfg)
    bias = bias + np.triu(np.full((T, T), -np.inf), 1)[None]  # causal
    for i in range(cfg["dec_layers"]):
        b = f"dec.blk.{i}."
        h = rms_norm(x, W[b + "attn_norm.weight"], cfg["eps"])
        x = x + attention(h, h, W, b + "attn", cfg, bias)
        h = rms_norm(x, W[b + "cross_attn_norm.weight"], cfg["eps"])
        x = x + attention(h, enc_out, W, b + "cross_attn", cfg, None)
        x = x + ffn(rms_norm(x, W[b + "ffn_norm.weight"], cfg["eps"]), W, b, cfg)
    h = rms_norm(x, W["dec.output_norm.weight"], cfg["eps"])
    if cfg["tied"]:
        return (h * cfg["d_model"] ** -0.5) @ W["token_embd.weight"].T
    return h @ W["output.weight"].T


# --- decoding (HF generate) ----------------------------------------------------------------------


def log_softmax(x):
    m = x.max()
    return x - m - math.log(np.exp(x - m).sum())


def repetition_penalty(scores, ids, p):
    """RepetitionPenaltyLogitsProcessor: gather, where(<0: *p, else /p), scatter."""
    if p == 1.0:
        return scores
    scores = scores.copy()
    idx = np.asarray(ids)
    s = scores[idx]
    scores[idx] = np.where(s < 0, s * p, s / p)
    return scores


def greedy(next_logits, start, eos, max_new, rep_penalty=1.0):
    seq = [start]
    out, lp, lp_proc, gaps = [], 0.0, 0.0, []
    for _ in range(max_new):
        raw = next_logits(seq)
        proc = repetition_penalty(raw, seq, rep_penalty)
        t = int(np.argmax(proc))
        top2 = np.partition(proc, -2)[-2:]
        gaps.append(float(top2[1] - top2[0]))
        lp += float(log_softmax(raw)[t])
        lp_proc += float(log_softmax(proc)[t])
        seq.append(t)
        out.append(t)
        if t == eos:
            break
    return {"ids": out, "sum_logprobs": lp, "sum_logprobs_processed": lp_proc, "gaps": gaps}


class BeamHypotheses:
    def __init__(self, num_beams, length_penalty, early_stopping, max_length):
        self.num_beams, self.length_penalty = num_beams, length_penalty
        self.early_stopping, self.max_length = early_stopping, max_length
        self.beams = []  # (score, tokens, sum_logprobs, generated_len)
        self.worst_score = 1e9

    def add(self, hyp, sum_logprobs, generated_len):
        score = sum_logprobs / (generated_len ** self.length_penalty)
        if len(self.beams) < self.num_beams or score > self.worst_score:
            self.beams.append((score, list(hyp), sum_logprobs, generated_len))
            if len(self.beams) > self.num_beams:
                ranked = sorted([(s, i) for i, (s, _, _, _) in enumerate(self.beams)])
                del self.beams[ranked[0][1]]
                self.worst_score = ranked[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs, cur_len, prompt_len):
        if len(self.beams) < self.num_beams:
            return False
        if self.early_stopping is True:
            return True
        if self.early_stopping is False:
            return self.worst_score >= best_sum_logprobs / (cur_len - prompt_len) ** self.length_penalty
        if self.length_penalty > 0.0:  # "never"
            best = best_sum_logprobs / (self.max_length - prompt_len) ** self.length_penalty
        else:
            best = best_sum_logprobs / (cur_len - prompt_len) ** self.length_penalty
        return self.worst_score >= best


def beam_search(next_logits, start, eos, max_new, num_beams, length_penalty=1.0, early_stopping=True,
                rep_penalty=1.0):
    """HF 4.47 _beam_search with BeamSearchScorer (batch 1, one eos, num_beam_groups 1)."""
    max_length = max_new + 1  # counts the decoder start token
    prompt_len = 1
    beams = [[start] for _ in range(num_beams)]
    beam_scores = np.array([0.0] + [-1e9] * (num_beams - 1))
    hyps = BeamHypotheses(num_beams, length_penalty, early_stopping, max_length)
    done = False
    while True:
        cand = []
        for b in range(num_beams):
            s = repetition_penalty(log_softmax(next_logits(beams[b])), beams[b], rep_penalty)
            cand.append(s + beam_scores[b])
        V = len(cand[0])
        flat = np.concatenate(cand)
        k = max(2, 1 + 1) * num_beams
        order = np.argsort(-flat, kind="stable")[:k]  # descending, ties: lower flat index first
        cur_len = len(beams[0]) + 1
        new_beams, new_scores = [], []
        for rank, fi in enumerate(order):
            b, t, sc = int(fi // V), int(fi % V), float(flat[fi])
            if t == eos:
                if rank >= num_beams:
                    continue
                hyps.add(beams[b], sc, cur_len - prompt_len)
            else:
                new_beams.append(beams[b] + [t])
                new_scores.append(sc)
            if len(new_beams) == num_beams:
                break
        done = done or hyps.is_done(float(flat[order].max()), cur_len, prompt_len)
        beams, beam_scores = new_beams, np.array(new_scores)
        if done or len(beams[0]) >= max_length:
            break
    if not done:
        for b in range(num_beams):
            hyps.add(beams[b], float(beam_scores[b]), len(beams[b]) - prompt_len)
    ranked = sorted(hyps.beams, key=lambda h: h[0])  # stable; pop() takes the last of equals
    score, best, sum_lp, gen_len = ranked[-1]
    seq = list(best)
    if len(seq) < max_length:  # finalize writes the eos back after a shorter hypothesis
        seq.append(eos)
    return {"ids": seq[1:], "sequence": seq, "score": score, "sum_logprobs": sum_lp, "generated_len": gen_len,
            "hypotheses": [{"ids": h[1][1:], "score": h[0]} for h in reversed(ranked)]}


# --- controlled logits ---------------------------------------------------------------------------


def table_logits(table):
    steps = table["steps"]
    V = table["vocab"]

    def next_logits(seq):
        step = steps[min(len(seq) - 1, len(steps) - 1)]
        row = step.get(str(seq[-1]), step.get("*"))
        if row is None or len(row) != V:
            raise SystemExit(f"table: no logits for step {len(seq) - 1}, last token {seq[-1]}")
        return np.asarray(row, dtype=np.float64)

    return next_logits


# --- CLI -----------------------------------------------------------------------------------------


def ids_arg(s):
    return [int(x) for x in s.split(",") if x.strip()] if s else []


def early_arg(s):
    return {"true": True, "false": False, "never": "never"}[s]


def run(mode, req, W=None, cfg=None, table=None):
    if table is not None:
        nl, start, eos = table_logits(table), table.get("start", 0), table.get("eos", 1)
    else:
        enc = encode(W, cfg, req["enc"])
        nl = lambda seq: decode_logits(W, cfg, enc, seq)[-1]  # noqa: E731
        start, eos = cfg["start"], cfg["eos"]
    if mode == "logits":
        return {"logits": nl(req["dec"] or [start]).tolist(),
                "llama_scale": math.sqrt(cfg["d_model"]) if cfg["tied"] else 1.0}
    if mode.startswith("greedy"):
        return greedy(nl, start, eos, req["max_new"], req.get("repetition_penalty", 1.0))
    return beam_search(nl, start, eos, req["max_new"], req["num_beams"], req.get("length_penalty", 1.0),
                       early_arg(str(req.get("early_stopping", "true")).lower()),
                       req.get("repetition_penalty", 1.0))


def main():
    ap = argparse.ArgumentParser(description="independent numpy T5 + HF generate() reference")
    ap.add_argument("mode", choices=["logits", "greedy", "beam", "greedy-table", "beam-table"])
    ap.add_argument("path", help="MODEL.gguf, or TABLE.json for the -table modes")
    ap.add_argument("--enc", type=ids_arg, default=[])
    ap.add_argument("--dec", type=ids_arg, default=[])
    ap.add_argument("--max-new", type=int, default=20)
    ap.add_argument("--num-beams", type=int, default=2)
    ap.add_argument("--length-penalty", type=float, default=1.0)
    ap.add_argument("--early-stopping", default="true", choices=["true", "false", "never"])
    ap.add_argument("--repetition-penalty", type=float, default=1.0)
    ap.add_argument("--requests", help="JSON lines of requests")
    a = ap.parse_args()
    base = {"enc": a.enc, "dec": a.dec, "max_new": a.max_new, "num_beams": a.num_beams,
            "length_penalty": a.length_penalty, "early_stopping": a.early_stopping,
            "repetition_penalty": a.repetition_penalty}
    if a.mode.endswith("-table"):
        table = json.loads(Path(a.path).read_text()) if a.path != "-" else None
        if a.requests:  # each line: options, and optionally its own "table"
            for line in Path(a.requests).read_text().splitlines():
                if line.strip():
                    req = {**base, **json.loads(line)}
                    print(json.dumps(run(a.mode, req, table=req.get("table", table))), flush=True)
        else:
            print(json.dumps(run(a.mode, base, table=table)))
        return
    W, cfg = load_gguf(a.path)
    if a.requests:
        for line in Path(a.requests).read_text().splitlines():
            if line.strip():
                print(json.dumps(run(a.mode, {**base, **json.loads(line)}, W, cfg)), flush=True)
    else:
        print(json.dumps(run(a.mode, base, W, cfg)))


if __name__ == "__main__":
    main()
