#!/usr/bin/env python3
"""Writes N deterministic random-noise RGB PNGs (img000.png ...) of SIZE x SIZE into DIR, with the
standard library only (the GPU machines' Python has no guarantee of Pillow in the interpreter the
benchmark picks).

usage: make_images.py DIR N [SIZE]
"""
import random
import struct
import sys
import zlib


def png(width, height, rgb):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + rgb[y * width * 3:(y + 1) * width * 3] for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b""))


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 224
    for i in range(n):
        r = random.Random(i)
        data = r.getrandbits(8 * size * size * 3).to_bytes(size * size * 3, "little")
        with open(f"{out}/img{i:03d}.png", "wb") as f:
            f.write(png(size, size, data))


if __name__ == "__main__":
    main()
