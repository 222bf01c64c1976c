"""Tiny CLIP (Hugging Face CLIPModel parameter names) and a tiny LLaVA-style captioner whose
forward pass is what llama.cpp computes for the exported GGUFs (see export.py)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def attention(q, k, v, causal):
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if causal:
        T = q.shape[-2]
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return s.softmax(-1) @ v


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


class Layer(nn.Module):  # HF CLIPEncoderLayer
    def __init__(self, d, heads, ffn):
        super().__init__()
        self.heads = heads
        self.layer_norm1, self.layer_norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn = nn.Module()
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self.self_attn, n, nn.Linear(d, d))
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(d, ffn), nn.Linear(ffn, d)

    def forward(self, x, causal=False):
        B, T, D = x.shape
        h = self.layer_norm1(x)
        a = self.self_attn
        q, k, v = (m(h).view(B, T, self.heads, -1).transpose(1, 2) for m in (a.q_proj, a.k_proj, a.v_proj))
        h = attention(q, k, v, causal).transpose(1, 2).reshape(B, T, D)
        x = x + a.out_proj(h)
        return x + self.mlp.fc2(quick_gelu(self.mlp.fc1(self.layer_norm2(x))))


class Encoder(nn.Module):
    def __init__(self, d, heads, ffn, layers):
        super().__init__()
        self.layers = nn.ModuleList(Layer(d, heads, ffn) for _ in range(layers))


class VisionTower(nn.Module):  # HF CLIPVisionTransformer
    def __init__(self, cfg):
        super().__init__()
        d, p, s = cfg["hidden_size"], cfg["patch_size"], cfg["image_size"]
        self.embeddings = nn.Module()
        self.embeddings.class_embedding = nn.Parameter(torch.randn(d) * 0.02)
        self.embeddings.patch_embedding = nn.Conv2d(3, d, p, p, bias=False)
        self.embeddings.position_embedding = nn.Embedding((s // p) ** 2 + 1, d)
        self.pre_layrnorm, self.post_layernorm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.encoder = Encoder(d, cfg["num_attention_heads"], cfg["intermediate_size"], cfg["num_hidden_layers"])

    def hidden(self, pix):
        """Last encoder layer output, class token first (no post-layernorm)."""
        x = self.embeddings.patch_embedding(pix).flatten(2).transpose(1, 2)
        cls = self.embeddings.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], 1) + self.embeddings.position_embedding.weight
        x = self.pre_layrnorm(x)
        for layer in self.encoder.layers:
            x = layer(x)
        return x

    def forward(self, pix):
        return self.post_layernorm(self.hidden(pix)[:, 0])


class TextTower(nn.Module):  # HF CLIPTextTransformer
    def __init__(self, cfg):
        super().__init__()
        d = cfg["hidden_size"]
        self.embeddings = nn.Module()
        self.embeddings.token_embedding = nn.Embedding(cfg["vocab_size"], d)
        self.embeddings.position_embedding = nn.Embedding(cfg["max_position_embeddings"], d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.encoder = Encoder(d, cfg["num_attention_heads"], cfg["intermediate_size"], cfg["num_hidden_layers"])

    def forward(self, ids, lengths):
        x = self.embeddings.token_embedding(ids) + self.embeddings.position_embedding.weight[: ids.shape[1]]
        for layer in self.encoder.layers:
            x = layer(x, causal=True)
        x = self.final_layer_norm(x)
        return x[torch.arange(ids.shape[0]), lengths - 1]  # EOS ends every text


class Clip(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.vision_model, self.text_model = VisionTower(cfg["vision_config"]), TextTower(cfg["text_config"])
        e = cfg["projection_dim"]
        self.visual_projection = nn.Linear(cfg["vision_config"]["hidden_size"], e, bias=False)
        self.text_projection = nn.Linear(cfg["text_config"]["hidden_size"], e, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def embed_images(self, pix):
        return F.normalize(self.visual_projection(self.vision_model(pix)), dim=-1)

    def embed_texts(self, ids, lengths):
        return F.normalize(self.text_projection(self.text_model(ids, lengths)), dim=-1)


def rms_norm(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, pos, base=10000.0):
    """llama.cpp's NORM rope: rotates adjacent pairs (x0, x1), (x2, x3), ..."""
    d = x.shape[-1]
    inv = base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    ang = pos[:, None].float() * inv[None]  # [T, d/2]
    cos, sin = ang.cos(), ang.sin()
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1).flatten(-2)


class Llama(nn.Module):
    """llama.cpp's LLM_ARCH_LLAMA: RMSNorm, NORM rope, SwiGLU, untied output."""

    def __init__(self, vocab, d, layers, heads, ffn):
        super().__init__()
        self.heads = heads
        self.tok = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList()
        for _ in range(layers):
            b = nn.Module()
            b.attn_norm, b.ffn_norm = nn.Parameter(torch.ones(d)), nn.Parameter(torch.ones(d))
            b.q, b.k, b.v, b.o = (nn.Linear(d, d, bias=False) for _ in range(4))
            b.gate, b.up, b.down = nn.Linear(d, ffn, bias=False), nn.Linear(d, ffn, bias=False), nn.Linear(ffn, d, bias=False)
            self.blocks.append(b)
        self.norm = nn.Parameter(torch.ones(d))
        self.out = nn.Linear(d, vocab, bias=False)

    def forward(self, x):  # x: [B, T, D] input embeddings
        B, T, D = x.shape
        pos = torch.arange(T)
        for b in self.blocks:
            h = rms_norm(x, b.attn_norm)
            q, k, v = (m(h).view(B, T, self.heads, -1).transpose(1, 2) for m in (b.q, b.k, b.v))
            q, k = rope(q, pos), rope(k, pos)
            h = attention(q, k, v, True).transpose(1, 2).reshape(B, T, D)
            x = x + b.o(h)
            h = rms_norm(x, b.ffn_norm)
            x = x + b.down(F.silu(b.gate(h)) * b.up(h))
        return self.out(rms_norm(x, self.norm))


class Captioner(nn.Module):
    """LLaVA: frozen CLIP vision tower -> 2-layer MLP projector -> llama decoder."""

    def __init__(self, vision, vocab, d, layers, heads, ffn, proj_hidden):
        super().__init__()
        self.vision = vision
        for p in self.vision.parameters():
            p.requires_grad_(False)
        vd = vision.embeddings.class_embedding.shape[0]
        self.mm0, self.mm2 = nn.Linear(vd, proj_hidden), nn.Linear(proj_hidden, d)
        self.llm = Llama(vocab, d, layers, heads, ffn)

    def image_tokens(self, pix):
        """What libmtmd's llava graph returns: patches 1..N-1 then the class token (patch 0 is
        dropped), projected with mm.2(gelu_tanh(mm.0(x)))."""
        with torch.no_grad():
            h = self.vision.hidden(pix)
        h = torch.cat([h[:, 2:], h[:, :1]], 1)
        return self.mm2(F.gelu(self.mm0(h), approximate="tanh"))

    def forward(self, pix, before, after):
        """before/after: [B, Tb] / [B, Ta] token ids around the image. Returns logits for `after`."""
        e = self.llm.tok
        x = torch.cat([e(before), self.image_tokens(pix), e(after)], 1)
        return self.llm(x)[:, -after.shape[1]:]
