"""Synthetic training data: `capforge synth` shards read back into arrays."""
import io
import json
import subprocess
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def synth(capforge, out, count, seed, size, shards=4):
    subprocess.run([capforge, "synth", "--out", str(out), "--count", str(count), "--seed", str(seed), "--size",
                    str(size), "--shards", str(shards)], check=True, capture_output=True)


def load(dirpath):
    """Returns (images uint8 [N, H, W, 3], truth captions, alt-texts) in key order."""
    images, truths, alts = [], [], []
    for tar in sorted(Path(dirpath).glob("*.tar")):
        members = {}
        with tarfile.open(tar) as t:
            for m in t.getmembers():
                key, ext = m.name.split(".", 1)
                members.setdefault(key, {})[ext] = t.extractfile(m).read()
        for key in sorted(members):
            m = members[key]
            images.append(np.asarray(Image.open(io.BytesIO(m["jpg"])).convert("RGB")))
            truths.append(json.loads(m["json"])["truth"])
            alts.append(m.get("txt", b"").decode())
    return np.stack(images), truths, alts


# The scene vocabulary of src/synth/shapes.cpp (keep in step with it).
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
KINDS = ["circle", "square", "triangle", "star"]
BACKGROUNDS = ["white", "black", "gray"]
POSITIONS = ["at the top left", "at the top", "at the top right", "on the left", "in the center", "on the right",
             "at the bottom left", "at the bottom", "at the bottom right"]


def _articles(words):
    return [("an" if w in ("a", "an") and i + 1 < len(words) and words[i + 1][0] in "aeiou" else
             "a" if w in ("a", "an") else w) for i, w in enumerate(words)]


def hard_negative(caption, rng):
    """A near miss of a true caption: one colour, shape, background or position changed, two
    objects swapped, or the caption cut short. These are the captioner's typical errors, so a CLIP
    trained against them ranks its candidates by what they get right."""
    body, bg = caption.rsplit(" on a ", 1)
    where = next((p for p in sorted(POSITIONS, key=len, reverse=True) if body.endswith(" " + p)), "")
    objs_text = body[: len(body) - len(where)].strip() if where else body
    objs = [o.split()[-2:] for o in objs_text.replace(" and ", ", ").split(", ")]  # [colour, kind]
    bgw = bg.split()[0]
    for _ in range(20):
        o, b, w = [list(x) for x in objs], bgw, where
        kind = rng.randrange(6)
        i = rng.randrange(len(o))
        if kind == 0:
            o[i][0] = rng.choice([c for c in COLOURS if c != o[i][0]])
        elif kind == 1:
            o[i][1] = rng.choice([k for k in KINDS if k != o[i][1]])
        elif kind == 2:
            b = rng.choice([x for x in BACKGROUNDS if x != b])
        elif kind == 3 and w:
            w = rng.choice([p for p in POSITIONS if p != w])
        elif kind == 4 and len(o) > 1:
            j = rng.choice([j for j in range(len(o)) if j != i])
            o[i], o[j] = o[j], o[i]
        elif kind == 5:
            cut = " ".join(_articles(_list_words(o[: max(1, len(o) - 1)])))
            neg = cut if len(o) > 1 else cut + (" " + w if w else "")
            if neg != caption:
                return neg
            continue
        words = _list_words(o)
        neg = " ".join(_articles(words)) + (" " + w if w else "") + " on a " + b + " background"
        if neg != caption:
            return neg
    return caption + " and a red star"


def _list_words(objs):
    out = []
    for k, (c, s) in enumerate(objs):
        if k:
            out.append("and" if k + 1 == len(objs) else ",")
        out += ["a", c, s]
    return " ".join(out).replace(" ,", ",").split()
