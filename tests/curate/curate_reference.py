#!/usr/bin/env python3
"""Independent numpy references for tests/curate (no capforge code involved).

  nsfw HEAD.safetensors EMB.f32 N   -> JSON list: the head's output for each of N embeddings
  npy FILE                          -> JSON {dtype, shape, fortran_order, data}: np.load's view
                                       (infinities as null: JSON has none)
  half VALUES.f32                   -> JSON list: numpy's float16 bits of each float32

The head is evaluated from the documented layout (docs/curate-embeddings.md): optional Keras
Normalization (x - mean) / max(sqrt(variance), 1e-7), then dense.{k} (weight [out, in]) with
activations[k] (0 none, 1 relu, 2 sigmoid).
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] == "BF16":
            b = np.frombuffer(data[meta["data_offsets"][0] : meta["data_offsets"][1]], dtype="<u2")
            arr = (b.astype(np.uint32) << 16).view(np.float32)
        else:
            begin, end = meta["data_offsets"]
            arr = np.frombuffer(data[begin:end], dtype=np.dtype(DTYPES[meta["dtype"]]).newbyteorder("<"))
        out[name] = arr.reshape(meta["shape"])
    return out


def nsfw(head_path, emb_path, n):
    t = read_safetensors(head_path)
    x = np.fromfile(emb_path, dtype="<f4").astype(np.float64).reshape(int(n), -1)
    if "norm.mean" in t:
        x = (x - t["norm.mean"].astype(np.float64)) / np.maximum(np.sqrt(t["norm.variance"].astype(np.float64)), 1e-7)
    for k, act in enumerate(t["activations"]):
        x = x @ t[f"dense.{k}.weight"].astype(np.float64).T + t[f"dense.{k}.bias"].astype(np.float64)
        if act == 1:
            x = np.maximum(x, 0)
        elif act == 2:
            x = 1 / (1 + np.exp(-x))
    return x[:, 0].tolist()


def main():
    cmd = sys.argv[1]
    if cmd == "nsfw":
        print(json.dumps(nsfw(*sys.argv[2:5])))
    elif cmd == "npy":
        a = np.load(sys.argv[2], allow_pickle=False)
        print(json.dumps({"dtype": str(a.dtype), "shape": list(a.shape), "fortran_order": bool(np.isfortran(a)),
                          "data": [v if np.isfinite(v) else None for v in a.astype(np.float64).ravel().tolist()]}))
    elif cmd == "half":
        v = np.fromfile(sys.argv[2], dtype="<f4")
        print(json.dumps(v.astype(np.float16).view(np.uint16).astype(int).tolist()))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
