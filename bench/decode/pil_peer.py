"""The peer: PIL (Debian's python3-pil) decoding with draft() and resizing BICUBIC to a shortest edge.

Usage: pil_peer.py SHORT_EDGE REPEATS FILE...   prints one JSON line like bench_decode.
"""
import io
import json
import sys
import time

from PIL import Image


def decode(data, edge):
    im = Image.open(io.BytesIO(data))
    w, h = im.size
    if min(w, h) > edge:
        s = edge / min(w, h)
        tw, th = (edge, max(1, round(h * s))) if w <= h else (max(1, round(w * s)), edge)
        im.draft("RGB", (tw, th))  # DCT-domain downscale, as far as it stays >= the target
        im = im.convert("RGB").resize((tw, th), Image.BICUBIC)
    else:
        im = im.convert("RGB")
    return im.tobytes()


def main():
    edge, repeats, files = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    blobs = [open(f, "rb").read() for f in files]
    decode(blobs[0], edge)
    n, total = 0, 0
    t0 = time.perf_counter()
    for _ in range(repeats):
        for b in blobs:
            total += len(decode(b, edge))
            n += 1
    s = time.perf_counter() - t0
    print(json.dumps({"images": n, "seconds": round(s, 4), "images_per_s": round(n / s, 2), "bytes_out": total}))


if __name__ == "__main__":
    main()
