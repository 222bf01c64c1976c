"""A T5 encoder-decoder in plain PyTorch with Hugging Face transformers 4.47's modeling_t5.py semantics
(written here, not imported), and HF generate()'s greedy and beam search over it.

Contract (what llama.cpp's "t5" architecture also computes):
  - T5LayerNorm: RMS norm without mean or bias, weight * x / sqrt(mean(x^2) + eps);
  - attention without 1/sqrt(d_kv) scaling; a learned relative position bias (32 buckets, max distance
    128) computed in layer 0 and added in every layer: bidirectional in the encoder, causal in the
    decoder's self-attention, none in cross-attention;
  - pre-norm blocks x + f(norm(x)); ReLU FFN (v1.0) or gated-GELU (v1.1, ffn_gate);
  - final RMS norm on each stack; token embeddings shared by encoder and decoder, no position embeddings;
  - tied output (v1.0): logits = embed(dec_out * d_model**-0.5); untied (v1.1): lm_head(dec_out).
State-dict names are HF's (shared.weight, encoder.block.0.layer.0.SelfAttention.q.weight, ...).
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class T5Config:
    vocab_size: int = 32128
    d_model: int = 128
    d_kv: int = 32
    d_ff: int = 512
    num_layers: int = 2
    num_decoder_layers: int = 2
    num_heads: int = 4
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    tie_word_embeddings: bool = True  # v1.0; False with gated-gelu is v1.1
    gated_gelu: bool = False
    pad_token_id: int = 0
    eos_token_id: int = 1
    decoder_start_token_id: int = 0


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        var = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x.float() * torch.rsqrt(var + self.eps)).to(x.dtype)


def relative_position_bucket(rel, bidirectional, num_buckets, max_distance):
    """HF's T5Attention._relative_position_bucket (rel = memory position - query position)."""
    buckets = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets += (rel > 0).long() * num_buckets
        rel = rel.abs()
    else:
        rel = -torch.min(rel, torch.zeros_like(rel))
    max_exact = num_buckets // 2
    is_small = rel < max_exact
    large = max_exact + (torch.log(rel.float() / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).long()
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return buckets + torch.where(is_small, rel, large)


class Attention(nn.Module):
    def __init__(self, cfg, has_bias, bidirectional):
        super().__init__()
        inner = cfg.num_heads * cfg.d_kv
        self.q = nn.Linear(cfg.d_model, inner, bias=False)
        self.k = nn.Linear(cfg.d_model, inner, bias=False)
        self.v = nn.Linear(cfg.d_model, inner, bias=False)
        self.o = nn.Linear(inner, cfg.d_model, bias=False)
        self.cfg, self.bidirectional = cfg, bidirectional
        if has_bias:
            self.relative_attention_bias = nn.Embedding(cfg.relative_attention_num_buckets, cfg.num_heads)

    def position_bias(self, q_pos, k_len):
        """[1, heads, len(q_pos), k_len] from layer 0's table; q_pos: absolute query positions."""
        mem = torch.arange(k_len)[None, :]
        b = relative_position_bucket(mem - q_pos[:, None], self.bidirectional, self.cfg.relative_attention_num_buckets,
                                     self.cfg.relative_attention_max_distance)
        return self.relative_attention_bias(b).permute(2, 0, 1)[None]

    def forward(self, x, kv, bias):
        """x [B, T, d], kv [B, S, d]; bias [B or 1, H, T, S] (position bias + additive mask)."""
        B, T, _ = x.shape
        H, D = self.cfg.num_heads, self.cfg.d_kv
        q = self.q(x).view(B, T, H, D).transpose(1, 2)
        k = self.k(kv).view(B, -1, H, D).transpose(1, 2)
        v = self.v(kv).view(B, -1, H, D).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) + bias  # no 1/sqrt(D): T5 folds it into the init
        w = F.softmax(scores.float(), dim=-1).type_as(scores)
        return self.o((w @ v).transpose(1, 2).reshape(B, T, H * D))


class FFN(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        if cfg.gated_gelu:
            self.wi_0 = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
            self.wi_1 = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        else:
            self.wi = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.wo = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)
        self.gated = cfg.gated_gelu

    def forward(self, x):
        if self.gated:  # gelu_new (tanh approximation)
            return self.wo(F.gelu(self.wi_0(x), approximate="tanh") * self.wi_1(x))
        return self.wo(F.relu(self.wi(x)))


class Sub(nn.Module):
    """One pre-norm residual sub-layer; its attribute names are HF's (SelfAttention, EncDecAttention,
    DenseReluDense)."""

    def __init__(self, cfg, kind, has_bias=False, bidirectional=True):
        super().__init__()
        self.layer_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon)
        self.kind = kind
        if kind == "SelfAttention":
            self.SelfAttention = Attention(cfg, has_bias, bidirectional)
        elif kind == "EncDecAttention":
            self.EncDecAttention = Attention(cfg, False, True)
        else:
            self.DenseReluDense = FFN(cfg)

    def forward(self, x, kv=None, bias=None):
        h = self.layer_norm(x)
        if self.kind == "SelfAttention":
            return x + self.SelfAttention(h, h, bias)
        if self.kind == "EncDecAttention":
            return x + self.EncDecAttention(h, kv, bias)
        return x + self.DenseReluDense(h)


class Block(nn.Module):
    def __init__(self, cfg, decoder, has_bias):
        super().__init__()
        subs = [Sub(cfg, "SelfAttention", has_bias, bidirectional=not decoder)]
        if decoder:
            subs.append(Sub(cfg, "EncDecAttention"))
        subs.append(Sub(cfg, "FFN"))
        self.layer = nn.ModuleList(subs)


class Stack(nn.Module):
    def __init__(self, cfg, decoder):
        super().__init__()
        n = cfg.num_decoder_layers if decoder else cfg.num_layers
        self.block = nn.ModuleList([Block(cfg, decoder, i == 0) for i in range(n)])
        self.final_layer_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon)


NEG = -1e9  # HF adds torch.finfo(dtype).min; any large negative masks the same after softmax


class T5(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.shared = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.encoder = Stack(cfg, False)
        self.decoder = Stack(cfg, True)
        if not cfg.tie_word_embeddings:
            self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def encode(self, ids, mask):
        """ids [B, S] (padded), mask [B, S] 1 = token -> encoder output [B, S, d]."""
        x = self.shared(ids)
        S = ids.shape[1]
        bias = self.encoder.block[0].layer[0].SelfAttention.position_bias(torch.arange(S), S)
        bias = bias + (1.0 - mask[:, None, None, :].float()) * NEG
        for blk in self.encoder.block:
            x = blk.layer[0](x, bias=bias)
            x = blk.layer[1](x)
        return self.encoder.final_layer_norm(x)

    def decode(self, dec_ids, enc, enc_mask, cache=None):
        """dec_ids [B, T] new decoder tokens after the cache's; returns (logits [B, T, V], cache).
        cache: per layer (self k-input list) -- we cache the normed inputs of self-attention, which
        keeps the code short and exact (k/v are linear in them)."""
        cfg = self.cfg
        past = 0 if cache is None else cache["len"]
        T = dec_ids.shape[1]
        x = self.shared(dec_ids)
        q_pos = torch.arange(past, past + T)
        L = past + T
        bias = self.decoder.block[0].layer[0].SelfAttention.position_bias(q_pos, L)
        causal = (torch.arange(L)[None, :] > q_pos[:, None]).float() * NEG
        bias = bias + causal[None, None]
        xbias = (1.0 - enc_mask[:, None, None, :].float()) * NEG
        new = {"len": L, "h": []}
        for i, blk in enumerate(self.decoder.block):
            sa = blk.layer[0]
            h = sa.layer_norm(x)
            hk = h if cache is None else torch.cat([cache["h"][i], h], 1)
            new["h"].append(hk)
            x = x + sa.SelfAttention(h, hk, bias)
            x = blk.layer[1](x, kv=enc, bias=xbias)
            x = blk.layer[2](x)
        x = self.decoder.final_layer_norm(x)
        if cfg.tie_word_embeddings:
            return (x * cfg.d_model ** -0.5) @ self.shared.weight.t(), new
        return self.lm_head(x), new

    def forward(self, ids, mask, labels):
        """Teacher-forced loss: decoder input = [start] + labels[:-1] (HF's shift right)."""
        enc = self.encode(ids, mask)
        dec_in = torch.cat([torch.full_like(labels[:, :1], self.cfg.decoder_start_token_id), labels[:, :-1]], 1)
        dec_in = dec_in.masked_fill(dec_in == -100, self.cfg.pad_token_id)
        logits, _ = self.decode(dec_in, enc, mask)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100)


def reorder(cache, idx):
    return {"len": cache["len"], "h": [h[idx] for h in cache["h"]]}


def rep_penalty(scores, prev, penalty):
    """HF's RepetitionPenaltyLogitsProcessor: scores [N, V], prev [N, T] ids already in the decoder."""
    if penalty == 1.0:
        return scores
    s = torch.gather(scores, 1, prev)
    s = torch.where(s < 0, s * penalty, s / penalty)
    return scores.scatter(1, prev, s)


def pad_batch(seqs, pad=0):
    n = max(len(s) for s in seqs)
    ids = torch.tensor([s + [pad] * (n - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (n - len(s)) for s in seqs])
    return ids, mask


@torch.no_grad()
def greedy(model, inputs, max_new, penalty=1.0):
    """HF generate(do_sample=False, num_beams=1) over a batch: inputs are token lists ending in eos;
    max_new: per input. Returns generated ids without the start token, cut after eos (included)."""
    cfg = model.cfg
    ids, mask = pad_batch(inputs, cfg.pad_token_id)
    enc = model.encode(ids, mask)
    B = len(inputs)
    seq = torch.full((B, 1), cfg.decoder_start_token_id)
    done = [False] * B
    out = [[] for _ in range(B)]
    cache, last = None, seq
    for step in range(max(max_new)):
        logits, cache = model.decode(last, enc, mask, cache)
        scores = rep_penalty(logits[:, -1].float(), seq, penalty)
        nxt = scores.argmax(-1)
        for b in range(B):
            if not done[b]:
                out[b].append(int(nxt[b]))
                done[b] = int(nxt[b]) == cfg.eos_token_id or len(out[b]) >= max_new[b]
        nxt = torch.where(torch.tensor(done) & (nxt != cfg.eos_token_id), torch.full_like(nxt, cfg.pad_token_id), nxt)
        seq = torch.cat([seq, nxt[:, None]], 1)
        last = nxt[:, None]
        if all(done):
            break
    return out


@torch.no_grad()
def beam_search(model, inp, max_new, beams=2, penalty=1.0, length_penalty=1.0, early_stopping=True):
    """HF 4.47 _beam_search + BeamSearchScorer for one input (token list ending in eos), with
    early_stopping True or False. Returns (ids without the start token, eos included if generated,
    beam score)."""
    cfg = model.cfg
    ids, mask = pad_batch([inp], cfg.pad_token_id)
    enc = model.encode(ids, mask).expand(beams, -1, -1)
    mask = mask.expand(beams, -1)
    seq = torch.full((beams, 1), cfg.decoder_start_token_id)
    beam_scores = torch.zeros(beams)
    beam_scores[1:] = -1e9
    hyps, worst = [], 1e9  # BeamHypotheses

    def add(tokens, score_sum, gen_len):
        nonlocal worst
        score = score_sum / (gen_len ** length_penalty)
        if len(hyps) < beams or score > worst:
            hyps.append((score, tokens))
            if len(hyps) > beams:
                order = sorted([(s, i) for i, (s, _) in enumerate(hyps)])
                del hyps[order[0][1]]
                worst = order[1][0]
            else:
                worst = min(score, worst)

    def is_done(best_sum, cur_len):
        if len(hyps) < beams:
            return False
        if early_stopping is True:
            return True
        return worst >= best_sum / (cur_len - 1) ** length_penalty

    cache, last, done = None, seq, False
    max_length = 1 + max_new
    while True:
        logits, cache = model.decode(last, enc, mask, cache)
        scores = F.log_softmax(logits[:, -1].float(), -1)
        scores = rep_penalty(scores, seq, penalty) + beam_scores[:, None]
        V = scores.shape[-1]
        top, tok = torch.topk(scores.view(1, -1), 2 * beams, dim=1, largest=True, sorted=True)
        cur_len = seq.shape[1] + 1
        nb_s, nb_t, nb_i = [], [], []
        for rank, (s, t) in enumerate(zip(top[0].tolist(), tok[0].tolist())):
            bi, ti = t // V, t % V
            if ti == cfg.eos_token_id:
                if rank >= beams:
                    continue
                add(seq[bi].clone(), s, cur_len - 1)
            else:
                nb_s.append(s), nb_t.append(ti), nb_i.append(bi)
            if len(nb_s) == beams:
                break
        done = done or is_done(float(top[0].max()), cur_len)
        idx = torch.tensor(nb_i)
        seq = torch.cat([seq[idx], torch.tensor(nb_t)[:, None]], 1)
        beam_scores = torch.tensor(nb_s)
        cache = reorder(cache, idx)
        last = seq[:, -1:]
        if done or seq.shape[1] >= max_length:
            break
    if not done:  # finalize: every open beam competes
        for b in range(beams):
            add(seq[b], float(beam_scores[b]), seq.shape[1] - 1)
    best = sorted(hyps, key=lambda h: h[0])[-1]
    toks = best[1].tolist()[1:]
    if len(toks) < max_new:
        toks.append(cfg.eos_token_id)
    return toks, best[0]
