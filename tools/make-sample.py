#!/usr/bin/python3
"""Writes the bundled sample shards in data/sample/ (run with Debian's python3-pil).

Two webdataset tars of procedurally drawn scenes with noisy, web-like alt-text, in img2dataset's
layout ({key}.jpg, {key}.txt, {key}.json), plus a few broken samples so the demo shows how
failures are reported. Deterministic: the same files on every run.
"""
import io
import json
import random
import tarfile
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (240, 210, 40),
           "purple": (140, 60, 170), "orange": (245, 140, 30), "white": (245, 245, 245), "black": (20, 20, 20)}
SHAPES = ["circle", "square", "triangle"]
ALT = ["{c} {s} on {bg} background", "IMG_{n}.JPG", "{s} clipart {c}", "best {c} {s} images free download",
       "a {c} {s}", "stock photo {s} {bg}", ""]


def draw(rnd, n):
    bg_name, bg = rnd.choice(list(COLOURS.items()))
    im = Image.new("RGB", (256, 256), bg)
    d = ImageDraw.Draw(im)
    names = [k for k in COLOURS if k != bg_name]
    c = rnd.choice(names)
    s = rnd.choice(SHAPES)
    x, y, r = rnd.randrange(60, 196), rnd.randrange(60, 196), rnd.randrange(25, 55)
    if s == "circle":
        d.ellipse([x - r, y - r, x + r, y + r], fill=COLOURS[c])
    elif s == "square":
        d.rectangle([x - r, y - r, x + r, y + r], fill=COLOURS[c])
    else:
        d.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=COLOURS[c])
    alt = rnd.choice(ALT).format(c=c, s=s, bg=bg_name, n=1000 + n)
    return im, alt, {"shape": s, "colour": c, "background": bg_name}


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1700000000
    tar.addfile(info, io.BytesIO(data))


def shard(path, shard_id, count, rnd, broken):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(count):
            key = f"{shard_id:05d}{i:04d}"
            im, alt, truth = draw(rnd, i)
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=85)
            jpg = buf.getvalue()
            if broken.get(i) == "truncated":
                jpg = jpg[: len(jpg) // 3]
            elif broken.get(i) == "not-an-image":
                jpg = b"<html><body>404 Not Found</body></html>"
            add(tar, f"{key}.jpg", jpg)
            add(tar, f"{key}.txt", alt.encode())
            meta = {"url": f"https://example.com/images/{key}.jpg", "key": key, "caption": alt,
                    "status": "success", "width": 256, "height": 256, "truth": truth}
            add(tar, f"{key}.json", json.dumps(meta).encode())


def main():
    out = Path(__file__).resolve().parent.parent / "data" / "sample"
    out.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(2024)
    shard(out / "00000.tar", 0, 12, rnd, {5: "truncated"})
    shard(out / "00001.tar", 1, 12, rnd, {3: "not-an-image"})


if __name__ == "__main__":
    main()
