#!/usr/bin/env python3
"""Converts LAION's released Keras NSFW heads into capforge's head file.

  convert_keras_nsfw.py MODEL OUT.safetensors

MODEL: the unzipped SavedModel folder (or the .zip) of LAION-AI/CLIP-based-NSFW-Detector:
clip_autokeras_binary_nsfw (ViT-L/14: Normalization -> Dense 64 relu -> 512 relu -> 256 relu -> 1
sigmoid) or clip_autokeras_nsfw_b32 (ViT-B/32: Normalization -> Dense 32 relu -> 32 relu -> 1
sigmoid). Walks the model's layers (Normalization, Dense, ReLU/Activation; Dropout and input layers
carry nothing at inference), then checks the converted head against model.predict on random
unit-norm embeddings. Needs tensorflow, autokeras (the SavedModel uses its custom objects) and
numpy; it is not run in CI.
"""
import os
import sys
import tempfile
import zipfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from head_format import forward, random_unit, write_head  # noqa: E402


def load(path):
    import autokeras as ak  # noqa: F401  (registers the custom objects)
    from tensorflow.keras.models import load_model

    if path.endswith(".zip"):
        tmp = tempfile.mkdtemp()
        with zipfile.ZipFile(path) as z:
            z.extractall(tmp)
        dirs = [d for d in os.listdir(tmp) if os.path.isdir(os.path.join(tmp, d))]
        path = os.path.join(tmp, dirs[0]) if len(dirs) == 1 else tmp
    return load_model(path, custom_objects=ak.CUSTOM_OBJECTS, compile=False)


def convert(model):
    mean = variance = None
    layers = []  # [weight [out, in], bias, activation]
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Normalization":
            w = layer.get_weights()  # mean, variance, count
            mean, variance = np.reshape(w[0], -1), np.reshape(w[1], -1)
        elif kind == "Dense":
            kernel, bias = layer.get_weights()
            layers.append([kernel.T, bias, layer.activation.__name__])
        elif kind in ("ReLU", "Activation"):
            act = "relu" if kind == "ReLU" else layer.activation.__name__
            if not layers or layers[-1][2] != "linear":
                sys.exit(f"{layer.name}: an activation that does not follow a linear Dense layer")
            layers[-1][2] = act
        elif layer.get_weights() and kind != "Dropout":
            sys.exit(f"{layer.name}: unexpected layer {kind} with weights")
    for _, _, act in layers:
        if act not in ("linear", "relu", "sigmoid"):
            sys.exit(f"activation {act} is not supported")
    return mean, variance, [tuple(layer) for layer in layers]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    model = load(sys.argv[1])
    mean, variance, layers = convert(model)
    dim = layers[0][0].shape[1]
    x = random_unit(64, dim)
    want = np.reshape(model.predict(x, verbose=0), -1)
    got = forward(x, layers, mean, variance)
    diff = float(np.max(np.abs(want - got)))
    print(f"{len(layers)} dense layers, input {dim}; max |keras - converted| = {diff:.2e}")
    if diff > 1e-4:
        sys.exit("the converted head does not match the Keras model")
    write_head(sys.argv[2], layers, mean, variance, {"source": os.path.basename(sys.argv[1].rstrip("/"))})
    print("wrote", sys.argv[2])


if __name__ == "__main__":
    main()
