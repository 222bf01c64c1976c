"""Writes photo-like JPEGs of 1, 2, 3 and 4 megapixels (smooth gradients, shapes, sensor noise)."""
import random
import sys

from PIL import Image, ImageDraw, ImageFilter

SIZES = [(1280, 800), (1600, 1200), (2048, 1536), (2400, 1600), (1152, 864), (1920, 1080), (2304, 1728), (1500, 1000)]


def photo(w, h, seed):
    rnd = random.Random(seed)
    base = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    d = ImageDraw.Draw(base)
    for _ in range(40):
        x, y = rnd.randrange(w), rnd.randrange(h)
        r = rnd.randrange(20, max(21, w // 6))
        d.ellipse([x - r, y - r, x + r, y + r], fill=tuple(rnd.randrange(256) for _ in range(3)))
    base = base.filter(ImageFilter.GaussianBlur(3))
    noise = Image.effect_noise((w, h), 24).convert("RGB")
    return Image.blend(base, noise, 0.12)


def main():
    out = sys.argv[1]
    for i, (w, h) in enumerate(SIZES):
        photo(w, h, i).save(f"{out}/img{i}_{w}x{h}.jpg", quality=90)


if __name__ == "__main__":
    main()
