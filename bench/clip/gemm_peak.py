#!/usr/bin/python3
"""The machine's GEMM peak as its best BLAS reaches it: torch.matmul (OpenBLAS fp32, oneDNN bf16)
on 4096x4096 matrices with THREADS threads. Prints {"fp32": GFLOP/s, "bf16": GFLOP/s}."""
import json
import sys
import time

import torch

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
out = {}
for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
    n = 4096
    a, b = torch.randn(n, n).to(dt), torch.randn(n, n).to(dt)
    a @ b
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    out[name] = round(best, 1)
print(json.dumps(out))
