"""capforge's NSFW head file (docs/curate-embeddings.md), written and evaluated with numpy only.

Tensors: norm.mean / norm.variance [D] (optional), dense.{k}.weight [out, in], dense.{k}.bias [out],
activations [L] I64 (0 none, 1 relu, 2 sigmoid). Shared by convert_keras_nsfw.py and
convert_h14_nsfw.py.
"""
import json
import struct

import numpy as np

ACTS = {"linear": 0, "none": 0, "relu": 1, "sigmoid": 2}


def write_head(path, layers, mean=None, variance=None, metadata=None):
    """layers: [(weight [out, in], bias [out], activation name)], in order."""
    tensors = {}
    if mean is not None:
        tensors["norm.mean"] = np.asarray(mean, np.float32).reshape(-1)
        tensors["norm.variance"] = np.asarray(variance, np.float32).reshape(-1)
    for k, (w, b, act) in enumerate(layers):
        tensors[f"dense.{k}.weight"] = np.ascontiguousarray(w, np.float32)
        tensors[f"dense.{k}.bias"] = np.asarray(b, np.float32).reshape(-1)
    tensors["activations"] = np.array([ACTS[a] for _, _, a in layers], np.int64)
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        raw = t.astype(t.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": "I64" if t.dtype == np.int64 else "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "capforge-nsfw-head", **(metadata or {})}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def forward(x, layers, mean=None, variance=None):
    """The head as capforge evaluates it (Keras Normalization: max(sqrt(var), 1e-7))."""
    x = np.asarray(x, np.float64)
    if mean is not None:
        x = (x - np.reshape(mean, -1)) / np.maximum(np.sqrt(np.reshape(variance, -1)), 1e-7)
    for w, b, act in layers:
        x = x @ np.asarray(w, np.float64).T + np.reshape(b, -1)
        if act == "relu":
            x = np.maximum(x, 0)
        elif act == "sigmoid":
            x = 1 / (1 + np.exp(-x))
    return x[:, 0]


def random_unit(n, dim, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
