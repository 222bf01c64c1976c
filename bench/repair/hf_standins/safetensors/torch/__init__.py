import json
import struct

import numpy as np

from safetensors import safe_open

_NAME = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.int64): "I64",
         np.dtype(np.int32): "I32", np.dtype(np.float64): "F64", np.dtype(np.uint8): "U8", np.dtype(np.int8): "I8",
         np.dtype(np.bool_): "BOOL"}


def load_file(path, device="cpu"):
    with safe_open(path) as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def load(data):
    raise NotImplementedError("stand-in")


def save_file(tensors, path, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for k, t in tensors.items():
        a = t.detach().cpu().contiguous().numpy()
        b = a.tobytes()
        header[k] = {"dtype": _NAME[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def storage_ptr(tensor):
    """safetensors.torch.storage_ptr (as in safetensors 0.4)."""
    try:
        return tensor.untyped_storage().data_ptr()
    except Exception:
        try:
            return tensor.storage().data_ptr()
        except NotImplementedError:
            return 0


def storage_size(tensor):
    try:
        return tensor.untyped_storage().nbytes()
    except AttributeError:
        try:
            return tensor.storage().size() * tensor.element_size()
        except NotImplementedError:
            return tensor.nelement() * tensor.element_size()
