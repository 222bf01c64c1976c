"""What the PyTorch peers of bench/clip share: reading safetensors, the inputs capforge-bench-clip
wrote (raw 8-bit RGB images, token ids), the timing loop and the embeddings file.

A peer is run as
  PEER MODEL_DIR VARIANT THREADS IMAGES IMAGE_BATCH IDS.json PIXELS.u8 [--save FILE]
VARIANT: fp32; bf16 (torch.autocast on CPU with bfloat16: fp32 weights cast once per region,
fp32 residual stream); bf16w (every weight and activation in bfloat16, no autocast); with "-cl"
for channels_last (convolutional towers). Prints {"images_per_s", "texts_per_s", "image_s", "text_s"}; --save writes
the L2-normalised embeddings as f32, images then texts, as capforge-bench-clip --save does.
"""
import contextlib
import json
import struct
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64}


def load_safetensors(path):
    """Every tensor of a .safetensors file as an fp32 torch tensor (I64 ones as int64)."""
    path = Path(path)
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        arr = raw[a:b].view(_DTYPES[e["dtype"]]).reshape(e["shape"])
        if e["dtype"] == "BF16":
            t = torch.from_numpy((arr.astype(np.uint32) << 16).view(np.float32))
        else:
            t = torch.from_numpy(np.array(arr))
        out[name] = t.float() if t.is_floating_point() else t
    return out


def parse_args(argv=None):
    a = (argv or sys.argv)[1:]
    if len(a) < 7:
        sys.exit(__doc__)
    save = a[a.index("--save") + 1] if "--save" in a else None
    return dict(model=Path(a[0]), variant=a[1], threads=int(a[2]), n_img=int(a[3]), img_batch=int(a[4]),
                ids=json.loads(Path(a[5]).read_text()), pixels=Path(a[6]), save=save)


def read_pixels(path, n, size, mean, std):
    """The first n images of capforge-bench-clip --pixels (raw RGB8, n x S x S x 3), normalised as
    capforge's preprocessing does: (v / 255 - mean) / std, planar [n, 3, S, S]."""
    raw = np.fromfile(path, dtype=np.uint8, count=n * size * size * 3).reshape(n, size, size, 3)
    x = torch.from_numpy(raw.astype(np.float32)).permute(0, 3, 1, 2).contiguous() / 255.0
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def text_batches(all_ids, pad_id, batch=64):
    """Texts in batches of 64, each padded with pad_id to its longest text (as capforge does; SigLIP
    ids come padded to 64 already). Yields (ids [B, T] int64, lengths [B])."""
    for i in range(0, len(all_ids), batch):
        chunk = all_ids[i : i + batch]
        T = max(len(t) for t in chunk)
        ids = torch.full((len(chunk), T), pad_id, dtype=torch.long)
        for r, t in enumerate(chunk):
            ids[r, : len(t)] = torch.tensor(t)
        yield ids, torch.tensor([len(t) for t in chunk])


def weights_as_params(W, variant="fp32"):
    """Float weights as requires_grad leaves, as an nn.Module's parameters are: under autocast
    PyTorch then casts each weight to bf16 once per autocast region and caches it, instead of on
    every call. bf16w: the weights in bfloat16."""
    dt = torch.bfloat16 if variant.startswith("bf16w") else torch.float32
    return {k: (v.to(dt).requires_grad_(True) if v.is_floating_point() else v) for k, v in W.items()}


def ln(x, w, b, eps):
    """LayerNorm in the weights' dtype (fp32 under autocast, where a Linear's bf16 output may come
    in; bf16 for bf16w)."""
    return F.layer_norm(x.to(w.dtype), (x.shape[-1],), w, b, eps)


def run(args, image_fn, text_fn, pixels, batches):
    """Times image_fn over the images (in batches of img_batch) and text_fn over the text batches,
    after one warm-up call of each, all inside one autocast region for bf16; prints the rates and
    saves the embeddings."""
    torch.set_num_threads(args["threads"])
    v = args["variant"]
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if v.startswith("bf16") and not v.startswith("bf16w") \
        else contextlib.nullcontext()
    if v.startswith("bf16w"):
        pixels = pixels.to(torch.bfloat16)
    n_img, step = args["n_img"], args["img_batch"]
    img_out, txt_out = [], []
    with torch.no_grad(), amp:
        image_fn(pixels[:1])
        text_fn(*[b[:1] for b in batches[0]])
        t0 = time.perf_counter()
        for i in range(0, n_img, step):
            img_out.append(image_fn(pixels[i : i + step]))
        t1 = time.perf_counter()
        for ids, lengths in batches:
            txt_out.append(text_fn(ids, lengths))
        t2 = time.perf_counter()
    n_txt = sum(len(b[0]) for b in batches)
    print(json.dumps({"images_per_s": n_img / (t1 - t0), "texts_per_s": n_txt / (t2 - t1), "image_s": t1 - t0,
                      "text_s": t2 - t1}))
    if args["save"]:
        e = torch.cat([F.normalize(x.float(), dim=-1) for x in img_out + txt_out])
        e.numpy().astype("<f4").tofile(args["save"])
