#!/usr/bin/python3
"""The peer for OpenAI's ResNet CLIP towers (RN50 ... RN50x64) in an open_clip directory: PyTorch
eager (Debian's python3-torch) running the forward on the same weights and inputs as
capforge-bench-clip, written from the model's definition (Radford et al., "Learning Transferable
Visual Models From Natural Language Supervision", section 2.4 and its released architecture) with
OpenAI's state_dict names from open_clip_model.safetensors.

  vision (ModifiedResNet): stem of three 3x3 convolutions (the first with stride 2), each with
          BatchNorm and ReLU, then a 2x2 average pool; four stages of bottlenecks (1x1, 3x3, 1x1
          convolutions with BatchNorm; stride as a 2x2 average pool before the last convolution and
          before the downsample branch's 1x1 convolution + BatchNorm); an attention pool (the mean
          of the 7x7.. grid prepended, position embeddings, the mean token queries every token
          through multi-head attention with separate q/k/v projections; c_proj out).
          BatchNorm runs in eval with its running statistics, folded into the convolutions once at
          load (W * gamma / sqrt(var + eps), beta - mean * gamma / sqrt(var + eps)): the same
          numbers as F.batch_norm(training=False), computed the way a deployment would.
  text:   OpenAI's Transformer: token + position embeddings, causal pre-LN residual blocks with a
          fused in_proj, QuickGELU (quick_gelu in the config) or GELU MLP, ln_final, the features
          at the EOT token (argmax of the ids), @ text_projection.

usage: see peer_common.py (VARIANT fp32 | bf16 | fp32-cl | bf16-cl; -cl: channels_last)
"""
import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_common  # noqa: E402

BN_EPS = 1e-5


def fold(W, conv, bn, channels_last):
    """A convolution's kernel and bias with its eval BatchNorm folded in (in float64)."""
    with torch.no_grad():
        return _fold(W, conv, bn, channels_last)


def _fold(W, conv, bn, channels_last):
    s = W[bn + ".weight"].double() / torch.sqrt(W[bn + ".running_var"].double() + BN_EPS)
    w = (W[conv].double() * s.view(-1, 1, 1, 1)).float()
    b = (W[bn + ".bias"].double() - W[bn + ".running_mean"].double() * s).float()
    if channels_last:
        w = w.contiguous(memory_format=torch.channels_last)
    return w.requires_grad_(True), b.requires_grad_(True)


class ResNet:
    def __init__(self, W, vcfg, embed_dim, channels_last):
        self.cl = channels_last
        p = "visual."
        self.stem = [fold(W, f"{p}conv{i}.weight", f"{p}bn{i}", channels_last) for i in (1, 2, 3)]
        self.blocks = []
        width = vcfg["width"]
        inplanes = width
        for s, depth in enumerate(vcfg["layers"]):
            planes = width << s
            for i in range(depth):
                q = f"{p}layer{s + 1}.{i}."
                stride = 2 if (i == 0 and s > 0) else 1
                blk = {"stride": stride,
                       "c1": fold(W, q + "conv1.weight", q + "bn1", channels_last),
                       "c2": fold(W, q + "conv2.weight", q + "bn2", channels_last),
                       "c3": fold(W, q + "conv3.weight", q + "bn3", channels_last)}
                if stride > 1 or inplanes != planes * 4:
                    blk["down"] = fold(W, q + "downsample.0.weight", q + "downsample.1", channels_last)
                self.blocks.append(blk)
                inplanes = planes * 4
        a = p + "attnpool."
        self.pos = W[a + "positional_embedding"]
        self.q, self.k, self.v, self.c = ((W[f"{a}{n}.weight"], W[f"{a}{n}.bias"])
                                          for n in ("q_proj", "k_proj", "v_proj", "c_proj"))
        self.heads = width * 32 // vcfg.get("head_width", 64)

    def __call__(self, x):
        if self.cl:
            x = x.contiguous(memory_format=torch.channels_last)
        for i, (w, b) in enumerate(self.stem):
            x = F.relu(F.conv2d(x, w, b, stride=2 if i == 0 else 1, padding=1))
        x = F.avg_pool2d(x, 2)
        for blk in self.blocks:
            out = F.relu(F.conv2d(x, *blk["c1"]))
            out = F.relu(F.conv2d(out, *blk["c2"], padding=1))
            if blk["stride"] > 1:
                out = F.avg_pool2d(out, blk["stride"])
            out = F.conv2d(out, *blk["c3"])
            identity = x
            if "down" in blk:
                if blk["stride"] > 1:
                    identity = F.avg_pool2d(identity, blk["stride"])
                identity = F.conv2d(identity, *blk["down"])
            x = F.relu(out + identity)
        return self.attnpool(x)

    def attnpool(self, x):
        B, C, H, Wd = x.shape
        x = x.flatten(2).transpose(1, 2)  # [B, HW, C]
        x = torch.cat([x.mean(1, keepdim=True), x], 1) + self.pos.to(x.dtype)
        hd = C // self.heads
        q = F.linear(x[:, :1], *self.q).view(B, 1, self.heads, hd).transpose(1, 2)
        k = F.linear(x, *self.k).view(B, -1, self.heads, hd).transpose(1, 2)
        v = F.linear(x, *self.v).view(B, -1, self.heads, hd).transpose(1, 2)
        s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
        a = torch.matmul(s.softmax(-1), v).transpose(1, 2).reshape(B, C)
        return F.normalize(F.linear(a, *self.c).float(), dim=-1)


def text(ids, lengths, W, tcfg, quick_gelu):
    D, H = tcfg["width"], tcfg["heads"]
    T = ids.shape[1]
    x = F.embedding(ids, W["token_embedding.weight"]) + W["positional_embedding"][:T]
    mask = torch.full((T, T), float("-inf")).triu(1)
    hd = D // H
    for i in range(tcfg["layers"]):
        p = f"transformer.resblocks.{i}."
        h = F.layer_norm(x, (D,), W[p + "ln_1.weight"], W[p + "ln_1.bias"], 1e-5)
        qkv = F.linear(h, W[p + "attn.in_proj_weight"], W[p + "attn.in_proj_bias"])
        q, k, v = (t.reshape(x.shape[0], T, H, hd).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
        s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(hd)) + mask.to(q.dtype)
        a = torch.matmul(s.softmax(-1), v).transpose(1, 2).reshape(x.shape[0], T, D)
        x = x + F.linear(a, W[p + "attn.out_proj.weight"], W[p + "attn.out_proj.bias"])
        h = F.layer_norm(x, (D,), W[p + "ln_2.weight"], W[p + "ln_2.bias"], 1e-5)
        h = F.linear(h, W[p + "mlp.c_fc.weight"], W[p + "mlp.c_fc.bias"])
        h = h * torch.sigmoid(1.702 * h) if quick_gelu else F.gelu(h)
        x = x + F.linear(h, W[p + "mlp.c_proj.weight"], W[p + "mlp.c_proj.bias"])
    x = x[torch.arange(x.shape[0]), ids.argmax(-1)]  # EOT has the largest id; LayerNorm is per token
    x = F.layer_norm(x, (D,), W["ln_final.weight"], W["ln_final.bias"], 1e-5)
    return F.normalize(torch.matmul(x, W["text_projection"]).float(), dim=-1)


def main():
    args = peer_common.parse_args()
    root = json.loads((args["model"] / "open_clip_config.json").read_text())
    m = root["model_cfg"]
    vcfg, tcfg = m["vision_cfg"], {"width": 512, "heads": 8, "layers": 12, **m.get("text_cfg", {})}
    pre = root.get("preprocess_cfg", {})
    W = peer_common.weights_as_params(peer_common.load_safetensors(args["model"] / "open_clip_model.safetensors"))
    vision = ResNet(W, vcfg, m["embed_dim"], args["variant"].endswith("-cl"))
    for k in [k for k in W if k.startswith(("visual.conv", "visual.bn", "visual.layer"))]:
        del W[k]  # folded copies live in `vision`
    pix = peer_common.read_pixels(args["pixels"], args["n_img"], vcfg["image_size"],
                                  pre.get("mean", [0.48145466, 0.4578275, 0.40821073]),
                                  pre.get("std", [0.26862954, 0.26130258, 0.27577711]))
    batches = list(peer_common.text_batches(args["ids"], 0))
    quick = m.get("quick_gelu", False)
    peer_common.run(args, vision, lambda i, n: text(i, n, W, tcfg, quick), pix, batches)


if __name__ == "__main__":
    main()
