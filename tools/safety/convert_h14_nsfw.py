#!/usr/bin/env python3
"""Converts LAION's ViT-H/14 NSFW head (h14_nsfw.pth, the torch H14_NSFW_Detector of
LAION-AI/CLIP-based-NSFW-Detector) into capforge's head file.

  convert_h14_nsfw.py h14_nsfw.pth OUT.safetensors

The architecture, as h14_nsfw_model.py defines it: Linear 1024->1024, ReLU, Dropout, ->2048, ReLU,
Dropout, ->1024, ReLU, Dropout, ->256, ReLU, Dropout, ->128, ReLU, Dropout, ->16, ->1 (the last two
linear, no sigmoid: it was trained with MSE on 0/1 labels, and clip-retrieval and NeMo Curator use
its raw output as the score). No normalisation layer: it takes the L2-normalised embedding as is.
Checks the converted head against the torch module on random unit-norm embeddings. Needs torch and
numpy; it is not run in CI.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from head_format import forward, random_unit, write_head  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    import torch
    from torch import nn

    state = torch.load(sys.argv[1], map_location="cpu")
    if "state_dict" in state:
        state = state["state_dict"]
    dim = state["layers.0.weight"].shape[1]
    mods = [nn.Linear(dim, 1024), nn.ReLU(), nn.Dropout(0.2), nn.Linear(1024, 2048), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(2048, 1024), nn.ReLU(), nn.Dropout(0.2), nn.Linear(1024, 256), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 16), nn.Linear(16, 1)]
    model = nn.Module()
    model.layers = nn.Sequential(*mods)
    model.load_state_dict(state, strict=True)
    model.eval()
    layers = []
    for m in model.layers:
        if isinstance(m, nn.Linear):
            layers.append([m.weight.detach().numpy(), m.bias.detach().numpy(), "linear"])
        elif isinstance(m, nn.ReLU):
            layers[-1][2] = "relu"
    layers = [tuple(layer) for layer in layers]
    x = random_unit(64, dim)
    with torch.no_grad():
        want = model.layers(torch.from_numpy(x)).numpy().reshape(-1)
    got = forward(x, layers)
    diff = float(np.max(np.abs(want - got)))
    print(f"{len(layers)} dense layers, input {dim}; max |torch - converted| = {diff:.2e}")
    if diff > 1e-4:
        sys.exit("the converted head does not match the torch model")
    write_head(sys.argv[2], layers, metadata={"source": os.path.basename(sys.argv[1])})
    print("wrote", sys.argv[2])


if __name__ == "__main__":
    main()
