"""Real small data for the learning benchmarks: scikit-learn's handwritten digits, and a judge.

scikit-learn ships 1,797 real 8×8 digits (values 0–16) that need no network. The benchmarks in
`bench/learn_*.py` (and their short versions in the tests) train a notebook's own definitions on
them and score the samples with `Judge`: an SVC trained on real digits, which says how many samples
it reads as a digit with confidence, and how the samples spread over the ten classes.

This is a test and benchmark dependency only; the Colab install cell never needs scikit-learn.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

CONFIDENT = 0.9      # a sample "reads as a digit" when the judge's top probability exceeds this
MODE_SHARE = 0.03    # a class "is covered" when it gets at least this share of the samples


def load_digits(size: int = 16, seed: int = 0, test_fraction: float = 0.25):
    """(train_x, train_y, test_x, test_y): images (N, 1, size, size) float32 in [-1, 1], bilinear upsampled.

    The split is a fixed shuffle of the 1,797 digits, so every benchmark and test scores against
    the same held-out images.
    """
    from sklearn.datasets import load_digits as sk_load

    d = sk_load()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)          # [0, 1]
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 2 - 1).contiguous()
    y = torch.from_numpy(d.target.astype(np.int64))
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(y)))
    x, y = x[order], y[order]
    n_test = int(round(len(y) * test_fraction))
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]


def to_gray01(images: torch.Tensor, size: int) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] → (N, size*size) grey values in [0, 1] for the judge."""
    x = images.detach().float().cpu()
    if x.shape[1] != 1:
        x = x.mean(1, keepdim=True)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return ((x.clamp(-1, 1) + 1) / 2).flatten(1).numpy()


def diversity(images: torch.Tensor, pairs: int = 2000, seed: int = 0) -> float:
    """Mean per-pixel L1 distance between random pairs of different images, on the [0, 1] scale."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) / 2).flatten(1)
    n = len(x)
    if n < 2:
        raise ValueError("diversity needs at least two images")
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(0, n, (pairs,), generator=g)
    j = (i + torch.randint(1, n, (pairs,), generator=g)) % n      # j != i
    return float((x[i] - x[j]).abs().mean())


class Judge:
    """An SVC trained on real digits; `score(images)` gives the learning benchmarks' figures."""

    def __init__(self, size: int = 16, seed: int = 0):
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC

        self.size = size
        train_x, train_y, test_x, test_y = load_digits(size, seed)
        # Platt-calibrated probabilities, fitted on held-out folds of the training digits.
        self.svc = CalibratedClassifierCV(SVC(gamma="scale", C=10.0), method="sigmoid", cv=5, ensemble=False)
        self.svc.fit(to_gray01(train_x, size), train_y.numpy())
        self.test_x, self.test_y = test_x, test_y
        proba = self.proba(test_x)
        self.accuracy = float((proba.argmax(1) == test_y.numpy()).mean())
        self.real = self.score(test_x)

    def proba(self, images: torch.Tensor) -> np.ndarray:
        return self.svc.predict_proba(to_gray01(images, self.size))

    def score(self, images: torch.Tensor) -> dict:
        """confident: share read with p > 0.9; classes: how many of 10 get ≥ 3 % of the samples;
        counts: samples per predicted class; diversity: mean pairwise L1 on [0, 1]."""
        p = self.proba(images)
        label = p.argmax(1)
        counts = np.bincount(label, minlength=10)
        return {
            "confident": float((p.max(1) > CONFIDENT).mean()),
            "classes": int((counts >= MODE_SHARE * len(label)).sum()),
            "counts": counts.tolist(),
            "diversity": diversity(images),
        }


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A markdown table; floats to 3 significant places."""
    def cell(v):
        if isinstance(v, float):
            return f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def with_defaults(defaults: dict, **kw) -> dict:
    """A benchmark's settings: its defaults, with the given ones (None: keep the default) in their
    place; a name it does not know is an error rather than silently ignored."""
    cfg = dict(defaults)
    unknown = set(kw) - set(cfg)
    if unknown:
        raise TypeError(f"unknown settings {sorted(unknown)}; known: {sorted(cfg)}")
    cfg.update({k: v for k, v in kw.items() if v is not None})
    return cfg
