"""Inception Score and Fréchet Inception Distance: the arithmetic, in float64."""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import numpy as np
import torch
from scipy import linalg

from .samples import Extractor, Samples, Stats, _extract


def inception_score_from_logits(logits: torch.Tensor | np.ndarray, splits: int = 10,
                                shuffle_seed: int | None = None) -> tuple[float, float]:
    """IS from class logits N×C: per split exp(mean_x KL(p(y|x) || p(y))); mean and std over splits.

    Splits are consecutive chunks of the samples in the order given (as in the original code);
    p(y) is the mean prediction of the split. With `shuffle_seed` the samples are first put in a
    random order drawn from that seed (as the StackGAN authors' code does): needed when the order
    means something, e.g. images generated caption by caption in a test set sorted by species,
    where a consecutive split holds only a few species and its p(y) is too narrow, which lowers
    the score. All arithmetic is in float64. The std is NumPy's default (population) std.
    """
    logits = torch.as_tensor(logits)
    if logits.dim() != 2:
        raise ValueError(f"Expected logits N×C, got shape {tuple(logits.shape)}.")
    count = len(logits)
    if splits < 1 or count < splits:
        raise ValueError(f"Need at least one sample per split: {count} samples, {splits} splits.")
    if shuffle_seed is not None:
        order = torch.randperm(count, generator=torch.Generator().manual_seed(int(shuffle_seed)))
        logits = logits[order]
    scores = []
    for i in range(splits):
        part = logits[i * count // splits:(i + 1) * count // splits].to(torch.float64)
        log_p = torch.log_softmax(part, dim=1)  # log p(y|x)
        p = log_p.exp()
        log_py = torch.logsumexp(log_p, dim=0) - math.log(len(part))  # log of the split's mean p(y)
        terms = torch.where(p > 0, p * (log_p - log_py), torch.zeros_like(p))  # 0·log 0 = 0
        scores.append(math.exp(terms.sum(dim=1).mean().item()))
    return float(np.mean(scores)), float(np.std(scores))


def inception_score(
    samples: Samples,
    extractor: Extractor,
    splits: int = 10,
    batch_size: int = 100,
    device: str | torch.device | None = None,
    progress: bool = True,
    *,
    n: int | None = None,
    shuffle_seed: int | None = None,
) -> tuple[float, float]:
    """Inception Score (mean, std over splits) of `samples` under `extractor`'s "logits".

    `n` caps the number of images (required when `samples` is a sampling function). The logits
    are kept on the CPU (50,000 × 1008 float32 is about 200 MB), the images are not.
    `shuffle_seed`: shuffle the samples (seeded) before splitting; see inception_score_from_logits.
    """
    chunks: list[torch.Tensor] = []
    _extract(samples, extractor, "logits", chunks.append, n=n, batch_size=batch_size, device=device,
             progress=progress, desc="Inception Score")
    if not chunks:
        raise ValueError("No samples.")
    return inception_score_from_logits(torch.cat(chunks), splits=splits, shuffle_seed=shuffle_seed)



class _Moments:
    """Running mean and scatter matrix in float64, merged batch by batch (Chan et al.)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.scatter: torch.Tensor | None = None

    def add(self, feat: torch.Tensor) -> None:
        x = feat.to(torch.float64)
        k = len(x)
        if k == 0:
            return
        mean_b = x.mean(dim=0)
        xc = x - mean_b
        scatter_b = xc.T @ xc
        if self.count == 0:
            self.count, self.mean, self.scatter = k, mean_b, scatter_b
            return
        total = self.count + k
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (k / total)
        self.scatter = self.scatter + scatter_b + torch.outer(delta, delta) * (self.count * k / total)
        self.count = total

    def result(self) -> Stats:
        if self.count < 2:
            raise ValueError(f"Need at least 2 samples for a covariance, got {self.count}.")
        return self.mean.numpy().copy(), (self.scatter / (self.count - 1)).numpy()


def _moments(samples: Samples, extractor: Extractor, *, n: int | None, batch_size: int,
             device: str | torch.device | None, progress: bool, desc: str) -> tuple[np.ndarray, np.ndarray, int]:
    acc = _Moments()
    _extract(samples, extractor, "pool", acc.add, n=n, batch_size=batch_size, device=device,
             progress=progress, desc=desc)
    mu, sigma = acc.result()
    return mu, sigma, acc.count


def feature_stats(
    samples: Samples,
    extractor: Extractor,
    batch_size: int = 100,
    device: str | torch.device | None = None,
    progress: bool = True,
    *,
    n: int | None = None,
) -> Stats:
    """(mu, sigma): mean and covariance (ddof 1, like np.cov) of the "pool" features, float64.

    Accumulated batch by batch, so only a D×D matrix is held, never all the features.
    """
    mu, sigma, _ = _moments(samples, extractor, n=n, batch_size=batch_size, device=device,
                            progress=progress, desc="FID features")
    return mu, sigma


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):

        |mu1 - mu2|² + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^½)

    As in the standard implementations: when the matrix square root is not finite (near-singular
    covariances, e.g. fewer samples than feature dimensions) it is retried with eps added to both
    diagonals, with a warning; a small imaginary part from numerical error is dropped. A large
    imaginary part (where pytorch-fid raises at once) also gets the eps retry first; ValueError
    if the retry does not help either.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or mu1.ndim != 1:
        raise ValueError(f"Mean vectors differ in shape: {mu1.shape} vs {mu2.shape}.")
    if sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"Covariances must both be {len(mu1)}×{len(mu1)}: got {sigma1.shape} and {sigma2.shape}.")

    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if not _usable_root(covmean):
        offset = np.eye(len(mu1)) * eps
        warnings.warn(f"FID: the matrix square root is not finite or not real (near-singular covariances); "
                      f"adding {eps} to the diagonals.", RuntimeWarning, stacklevel=2)
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
        if not _usable_root(covmean):
            raise ValueError("FID: no usable matrix square root even with eps on the diagonals "
                             "(too few samples for the feature dimension?).")
    covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def _sqrtm(a: np.ndarray) -> np.ndarray:
    """scipy's sqrtm without its "matrix is singular" warning: with fewer images than feature
    dimensions (horse2zebra's 120 test images, 2,048 features) the covariances are always singular,
    and _usable_root judges the result instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return linalg.sqrtm(a)


def _usable_root(covmean: np.ndarray) -> bool:
    """Finite, and any imaginary part is numerical noise (the diagonal's is below 1e-3)."""
    if not np.isfinite(covmean).all():
        return False
    return not np.iscomplexobj(covmean) or np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3)


def _as_stats(x: Any) -> Stats | None:
    """Precomputed statistics, if x is one: (mu, sigma), {"mu", "sigma"} or an .npz path."""
    if isinstance(x, (str, os.PathLike)):
        with np.load(x) as data:
            return np.asarray(data["mu"], np.float64), np.asarray(data["sigma"], np.float64)
    if isinstance(x, dict) and "mu" in x and "sigma" in x:
        return np.asarray(x["mu"], np.float64), np.asarray(x["sigma"], np.float64)
    if (isinstance(x, (tuple, list)) and len(x) == 2 and all(isinstance(a, np.ndarray) for a in x)
            and x[0].ndim == 1 and x[1].ndim == 2):
        return np.asarray(x[0], np.float64), np.asarray(x[1], np.float64)
    return None


def fid(
    samples_a: Samples | Stats | str | os.PathLike,
    samples_b: Samples | Stats | str | os.PathLike,
    extractor: Extractor | None = None,
    batch_size: int = 100,
    device: str | torch.device | None = None,
    progress: bool = True,
    *,
    n_a: int | None = None,
    n_b: int | None = None,
    eps: float = 1e-6,
) -> float:
    """FID between two sample sets under `extractor`'s "pool" features.

    Either side may be precomputed statistics instead of samples: a (mu, sigma) tuple of NumPy
    arrays (what feature_stats and cached_stats return), a dict with "mu" and "sigma", or the
    path of an .npz file with those keys (the format pytorch-fid uses). `n_a`, `n_b` cap the
    number of images per side (required for sampling functions).
    """
    stats = []
    for samples, count, side in ((samples_a, n_a, "a"), (samples_b, n_b, "b")):
        s = _as_stats(samples)
        if s is None:
            if extractor is None:
                raise ValueError(f"Side {side} is samples, not statistics: an extractor is needed.")
            mu, sigma, _ = _moments(samples, extractor, n=count, batch_size=batch_size, device=device,
                                    progress=progress, desc=f"FID features ({side})")
            s = (mu, sigma)
        stats.append(s)
    (mu1, sigma1), (mu2, sigma2) = stats
    return frechet_distance(mu1, sigma1, mu2, sigma2, eps=eps)

