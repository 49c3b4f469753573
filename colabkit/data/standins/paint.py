"""The pictures of the stand-ins: structured images (shapes, stripes, faces, birds) a GAN can visibly learn.

Each painter draws from a NumPy generator, so a seed fixes every pixel. The bird painter also
returns the bird's bounding box, and captions name its colours, embedded by a fixed bag-of-words
projection (the stand-in for the char-CNN-RNN text encoder).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """HSV in [0, 1] to an RGB float array in [0, 255]."""
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array([r, g, b]) * 255.0


def _gradient(h: int, w: int, c0, c1, angle: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.cos(angle) * xx / max(w - 1, 1) + np.sin(angle) * yy / max(h - 1, 1)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return (1 - t)[..., None] * np.asarray(c0, np.float32) + t[..., None] * np.asarray(c1, np.float32)


def _finish(img: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    if noise:
        img = img + rng.normal(0.0, noise, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _cifar_image(rng: np.random.Generator, label: int) -> np.ndarray:
    """32x32: a class-specific shape in a class-specific hue over a dull gradient."""
    n = 32
    bg = _gradient(n, n, rng.uniform(20, 110, 3), rng.uniform(60, 160, 3), rng.uniform(0, 2 * np.pi))
    fg = _hsv((label / 10.0 + rng.normal(0, 0.015)) % 1.0, rng.uniform(0.7, 1.0), rng.uniform(0.8, 1.0))
    yy, xx = np.mgrid[0:n, 0:n] / (n - 1.0)
    cx, cy = rng.uniform(0.35, 0.65, 2)
    r = rng.uniform(0.2, 0.32)
    dx, dy = xx - cx, yy - cy
    ax, ay = np.abs(dx), np.abs(dy)
    masks = {
        0: ((ax < r) & (ay < r / 4)) | ((ay < r) & (ax < r / 4)),                 # plus sign
        1: (ax < r) & (ay < r / 2),                                               # wide box
        2: (dy > -r) & (dy < r) & (ax < (dy + r) / 2),                            # triangle
        3: dx ** 2 + dy ** 2 < r ** 2,                                            # disc
        4: (dx ** 2 + dy ** 2 < r ** 2) & (dx ** 2 + dy ** 2 > (r / 2) ** 2),     # ring
        5: (ax < 0.8 * r) & (ay < 0.8 * r),                                       # square
        6: (np.sin(yy * 2 * np.pi * 4 + cx * 10) > 0) & (ax < r * 1.3),           # horizontal stripes
        7: (np.sin(xx * 2 * np.pi * 4 + cy * 10) > 0) & (ay < r * 1.3),           # vertical stripes
        8: ax + ay < r * 1.2,                                                     # diamond
        9: ((np.floor(xx * 8) + np.floor(yy * 8)) % 2 == 0) & (ax < r) & (ay < r),  # checkers
    }
    img = np.where(masks[label][..., None], fg, bg)
    return _finish(img, rng, 6.0)


_SKIN = [(255, 224, 196), (241, 194, 160), (224, 172, 130), (198, 134, 92), (141, 85, 54)]
_HAIR = [(30, 24, 20), (90, 56, 30), (160, 110, 60), (220, 190, 120), (120, 30, 20), (200, 200, 200)]


def _face_image(rng: np.random.Generator, w: int = 178, h: int = 218) -> np.ndarray:
    """An aligned 'face': hair, skin ellipse, eyes, brows, nose and mouth at CelebA-like places."""
    from PIL import Image, ImageDraw

    bg = _gradient(h, w, rng.uniform(40, 220, 3), rng.uniform(40, 220, 3), rng.uniform(0, 2 * np.pi))
    im = Image.fromarray(_finish(bg, rng, 0), "RGB")
    d = ImageDraw.Draw(im)
    skin = tuple(int(c + rng.normal(0, 8)) for c in _SKIN[rng.integers(len(_SKIN))])
    hair = tuple(int(c) for c in _HAIR[rng.integers(len(_HAIR))])
    cx = w / 2 + rng.normal(0, 3)
    cy = h * 0.55 + rng.normal(0, 3)
    fw, fh = rng.uniform(0.30, 0.36) * w, rng.uniform(0.30, 0.36) * h
    long_hair = rng.random() < 0.5
    if long_hair:
        d.rectangle([cx - fw * 1.15, cy - fh * 0.3, cx + fw * 1.15, cy + fh * 1.3], fill=hair)
    d.ellipse([cx - fw * 1.12, cy - fh * 1.2, cx + fw * 1.12, cy + fh * 0.6], fill=hair)
    d.ellipse([cx - fw, cy - fh, cx + fw, cy + fh], fill=skin)
    # eyes at the aligned positions, with brows
    ey = cy - fh * 0.18
    for side in (-1, 1):
        ex = cx + side * fw * 0.42
        d.ellipse([ex - fw * 0.16, ey - fh * 0.07, ex + fw * 0.16, ey + fh * 0.07], fill=(250, 250, 250))
        iris = tuple(int(c) for c in rng.choice([(60, 40, 20), (40, 90, 160), (60, 120, 60)]))
        d.ellipse([ex - fw * 0.07, ey - fh * 0.06, ex + fw * 0.07, ey + fh * 0.06], fill=iris)
        d.line([ex - fw * 0.2, ey - fh * 0.2, ex + fw * 0.2, ey - fh * 0.22 - side * 2], fill=hair,
               width=max(2, int(fh * 0.04)))
    nose = tuple(int(c * 0.8) for c in skin)
    d.polygon([(cx, ey + fh * 0.05), (cx - fw * 0.1, cy + fh * 0.25), (cx + fw * 0.1, cy + fh * 0.25)],
              fill=nose)
    smile = rng.uniform(0.05, 0.2)
    my = cy + fh * 0.5
    d.chord([cx - fw * 0.35, my - fh * smile, cx + fw * 0.35, my + fh * smile], 0, 180,
            fill=(170 + int(rng.integers(0, 60)), 50, 60))
    return _finish(np.asarray(im, np.float32), rng, 3.0)


def _unpaired_image(rng: np.random.Generator, domain: str, size: int) -> np.ndarray:
    """Domain A: warm horizontal stripes and a brown blob; B: cool vertical stripes, striped blob."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    period = rng.uniform(0.06, 0.1)
    phase = rng.uniform(0, 1)
    cx, cy = rng.uniform(0.3, 0.7, 2)
    rx, ry = rng.uniform(0.18, 0.3), rng.uniform(0.12, 0.22)
    blob = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1.0
    if domain == "A":
        stripes = np.sin(2 * np.pi * (yy / period + phase)) > 0
        c0, c1 = rng.uniform([200, 120, 40], [240, 170, 80]), rng.uniform([120, 60, 20], [160, 90, 40])
        body = rng.uniform([90, 50, 20], [130, 75, 40])
        img = np.where(stripes[..., None], c0, c1)
        img = np.where(blob[..., None], body, img)
    else:
        stripes = np.sin(2 * np.pi * (xx / period + phase)) > 0
        c0, c1 = rng.uniform([40, 110, 190], [80, 150, 230]), rng.uniform([200, 220, 230], [240, 250, 255])
        img = np.where(stripes[..., None], c0, c1)
        body_stripes = np.sin(2 * np.pi * (xx / (period / 2))) > 0
        img = np.where((blob & body_stripes)[..., None], np.array([20.0, 20, 20]), img)
        img = np.where((blob & ~body_stripes)[..., None], np.array([245.0, 245, 245]), img)
    return _finish(img, rng, 4.0)


_BIRD_COLOURS = {
    "red": (200, 40, 40), "blue": (40, 80, 200), "yellow": (235, 210, 40), "green": (40, 150, 60),
    "black": (25, 25, 25), "white": (240, 240, 240), "orange": (240, 130, 30), "brown": (120, 70, 35),
    "grey": (128, 128, 128), "purple": (120, 50, 150),
}
_BIRD_BACKGROUNDS = (  # (top, bottom) colours of the vertical gradient
    ((130, 180, 235), (210, 230, 250)),   # sky
    ((170, 205, 170), (70, 130, 60)),     # grass
    ((225, 205, 165), (195, 170, 130)),   # sand
    ((55, 75, 60), (30, 45, 35)),         # forest shade
)
_BIRD_SPECIES = ("Albatross", "Warbler", "Sparrow", "Finch", "Tern", "Wren", "Jay", "Gull",
                 "Oriole", "Vireo", "Flycatcher", "Grosbeak")
_CAPTIONS = (
    "this bird has a {body} body, {wing} wings and a {head} head.",
    "a {size} bird with a {head} crown and {wing} wings.",
    "the bird is mostly {body} with {wing} wings and a {beak} beak.",
    "this {size} bird has a {head} head and a {body} belly.",
    "a {body} bird with {wing} wing feathers and a short {beak} beak.",
    "this is a {body} bird with a {head} head and {wing} wings.",
    "the {size} bird has a {body} breast, a {head} crown and a pointed {beak} beak.",
    "a bird with a {head} head, a {body} body and {wing} secondaries.",
    "this bird is {body} and {wing} with a {head} head.",
    "a {size} {body} bird with {wing} wings and a {beak} bill.",
)


def _bird_image(rng, colours: dict, w: int, h: int):
    """A bird blob (body, wing, head, beak, tail) over a smooth sky or grass gradient.

    Returns the image and its tight bounding box (x, y, width, height), CUB-style.
    """
    from PIL import Image, ImageDraw

    # sky, grass, sand or forest: whichever contrasts most with every part of the bird over the
    # whole gradient, so that the bird always stands out from its background
    bird = np.array([colours["body"], colours["wing"], colours["head"]], np.float32)

    def contrast(bg):
        top, bottom = np.array(bg, np.float32)
        shades = np.stack([top + (bottom - top) * t for t in np.linspace(0, 1, 5)])
        return np.abs(bird[:, None, :] - shades[None]).sum(-1).min()

    top, bottom = np.array(max(_BIRD_BACKGROUNDS, key=contrast), np.float32)
    bg = _gradient(h, w, top + rng.uniform(-12, 12, 3), bottom + rng.uniform(-12, 12, 3), np.pi / 2)
    im = Image.fromarray(_finish(bg, rng, 0), "RGB")
    d = ImageDraw.Draw(im)
    scale = rng.uniform(0.45, 0.8)
    bw, bh = scale * w * 0.35, scale * h * 0.32          # body half-axes
    cx = rng.uniform(bw * 1.6, w - bw * 1.6)
    cy = rng.uniform(bh * 1.8, h - bh * 1.3)
    face = 1 if rng.random() < 0.5 else -1                # facing right or left
    hr = bh * 0.6                                         # head radius
    hx, hy = cx + face * bw * 0.85, cy - bh * 0.9
    shapes = []
    tail = [(cx - face * bw * 0.8, cy - bh * 0.2), (cx - face * bw * 1.5, cy + bh * 0.1),
            (cx - face * bw * 0.8, cy + bh * 0.4)]
    d.polygon(tail, fill=colours["wing"])
    shapes += tail
    d.ellipse([cx - bw, cy - bh, cx + bw, cy + bh], fill=colours["body"])
    shapes += [(cx - bw, cy - bh), (cx + bw, cy + bh)]
    d.ellipse([cx - bw * 0.55 - face * bw * 0.15, cy - bh * 0.55, cx + bw * 0.55 - face * bw * 0.15,
               cy + bh * 0.35], fill=colours["wing"])
    d.ellipse([hx - hr, hy - hr, hx + hr, hy + hr], fill=colours["head"])
    shapes += [(hx - hr, hy - hr), (hx + hr, hy + hr)]
    beak = [(hx + face * hr * 0.8, hy - hr * 0.3), (hx + face * hr * 1.8, hy),
            (hx + face * hr * 0.8, hy + hr * 0.3)]
    d.polygon(beak, fill=colours["beak"])
    shapes += beak
    d.ellipse([hx + face * hr * 0.3 - hr * 0.15, hy - hr * 0.35, hx + face * hr * 0.3 + hr * 0.15,
               hy - hr * 0.05], fill=(10, 10, 10))
    xs = [p[0] for p in shapes]
    ys = [p[1] for p in shapes]
    x0, y0 = max(0.0, min(xs)), max(0.0, min(ys))
    x1, y1 = min(w - 1.0, max(xs)), min(h - 1.0, max(ys))
    box = (float(np.floor(x0)), float(np.floor(y0)), float(np.ceil(x1 - np.floor(x0))),
           float(np.ceil(y1 - np.floor(y0))))
    return _finish(np.asarray(im, np.float32), rng, 2.0), box, scale


def _word_vector(word: str, dim: int, cache: dict) -> np.ndarray:
    if word not in cache:
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
        cache[word] = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return cache[word]


def _embed_caption(caption: str, dim: int, cache: dict) -> np.ndarray:
    """A fixed bag-of-words projection: the stand-in for the char-CNN-RNN text encoder."""
    words = re.findall(r"[a-z]+", caption.lower())
    v = np.sum([_word_vector(wd, dim, cache) for wd in words], axis=0)
    return (v / np.sqrt(len(words)) * 0.1).astype(np.float32)
