"""Pure-Python stand-in for safetensors (read/write of the format with numpy; torch only)."""
import json
import struct

import numpy as np

__version__ = "0.4.5"
SafetensorError = type("SafetensorError", (Exception,), {})
_DT = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32, "I8": np.int8,
       "U8": np.uint8, "BOOL": np.bool_, "I16": np.int16}


def _read(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", None)
    return raw[8 + n:], header, meta


class safe_open:
    def __init__(self, path, framework="pt", device="cpu"):
        self.data, self.header, self.meta = _read(path)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def keys(self):
        return list(self.header)

    def metadata(self):
        return self.meta

    def get_tensor(self, name):
        import torch
        h = self.header[name]
        a, b = h["data_offsets"]
        if h["dtype"] == "BF16":
            u = np.frombuffer(self.data[a:b], dtype=np.uint16).astype(np.uint32) << 16
            return torch.from_numpy(u.view(np.float32).reshape(h["shape"]).copy()).bfloat16()
        return torch.from_numpy(np.frombuffer(self.data[a:b], dtype=_DT[h["dtype"]]).reshape(h["shape"]).copy())

    def get_slice(self, name):
        return self.get_tensor(name)
