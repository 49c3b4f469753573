"""Inception Score and FID for the course notebooks, with caching that survives a Colab reset.

The feature extractor is a parameter, never a hidden global:

    ext = inception_extractor(cache_dir=run.cache, device=run.device)   # the real one
    ext = tiny_extractor()             # smoke mode and tests: random weights, meaningless numbers

An extractor is any callable that takes a float batch N×3×H×W in [-1, 1] (any H and W; resizing
is the extractor's job) and returns a dict with

    "logits"  N×C, class scores before the softmax (for the Inception Score)
    "pool"    N×D, the features FID compares (2048-d pool features for InceptionV3)

and has a `name` attribute that says which network and weights it is (used to key cached
statistics). It may have a `device` attribute; batches are moved there before the call.

Samples can be given in three forms, everywhere in this module:

    a tensor N×3×H×W (or a NumPy array)      all in memory, cut into batch_size batches
    an iterable of batches                  a DataLoader, a list of tensors, a generator;
                                            (images, labels) pairs are fine: the labels are dropped
    a callable sample(k) -> batch, with n=  draws n images k at a time, so 50,000 generated
                                            images never sit in memory together

Images are floats in [-1, 1] (the generators' tanh range); uint8 batches in 0..255 are converted,
one-channel batches are repeated to three. Call G.eval() yourself where it matters; sampling runs
under torch.no_grad().

Caveats that matter when comparing with the papers:
- IS depends on the number of samples and splits (the convention is 50,000 and 10; StackGAN
  used 30,000, shuffled, and 10), on their order when the order means something (shuffle_seed=),
  and on the exact Inception weights. StackGAN's CUB and Oxford-102 scores come from an
  Inception fine-tuned on those data sets; the ImageNet network here gives different numbers
  for the same images.
- Image files: published numbers were often computed on PNGs, i.e. after a float → uint8 step,
  and the CycleGAN reference truncates there (to_uint8(x, rounding="truncate") does the same),
  while this module rounds. The resize to 299×299 differs between the TensorFlow code and
  pytorch-fid (InceptionExtractor's `resize`).
- FID is biased upwards for small sample sets; horse2zebra's test sets hold 120 and 140 images,
  so the FID there is noisy and only comparable with numbers measured the same way.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import linalg
from tqdm.auto import tqdm

from .data.papers import PAPER_NUMBERS
from .data.sources import INCEPTION_WEIGHTS_FILE, INCEPTION_WEIGHTS_URL
from .store import open_store

__all__ = [
    "Extractor",
    "WeightsUnavailable",
    "INCEPTION_WEIGHTS_URL",
    "INCEPTION_WEIGHTS_FILE",
    "InceptionExtractor",
    "inception_extractor",
    "TinyExtractor",
    "tiny_extractor",
    "ROUNDINGS",
    "to_uint8",
    "RESIZES",
    "inception_score",
    "inception_score_from_logits",
    "feature_stats",
    "frechet_distance",
    "fid",
    "cached_stats",
    "stats_filename",
    "PAPER_NUMBERS",
    "compare_table",
]


class Extractor(Protocol):
    """What the metrics need from a feature extractor (see the module docstring)."""

    name: str

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]: ...


class WeightsUnavailable(RuntimeError):
    """The Inception weights could not be fetched or loaded; the message says what to do."""


Samples = Union[torch.Tensor, np.ndarray, Iterable, Callable[[int], torch.Tensor]]
Stats = tuple[np.ndarray, np.ndarray]


ROUNDINGS = ("nearest", "truncate")


def to_uint8(x: torch.Tensor, rounding: str = "nearest") -> torch.Tensor:
    """Map floats in [-1, 1] to uint8 0..255 (clamped), as an image file would store them.

    rounding="nearest" rounds to the closest level. rounding="truncate" drops the fraction, which
    is what code that writes images as `((x + 1) / 2 * 255).astype(np.uint8)` does (the CycleGAN
    reference's PNGs, on which the published FIDs were computed): most pixels land half a level
    lower on average than with rounding.
    """
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}.")
    if x.dtype == torch.uint8:
        return x
    if rounding == "truncate":   # float32 as in the reference (numpy float32 arrays), then floor
        return ((x.float() + 1.0) / 2.0 * 255.0).clamp_(0.0, 255.0).to(torch.uint8)
    return ((x.float() + 1.0) * 127.5 + 0.5).clamp_(0.0, 255.0).to(torch.uint8)


def _module_device(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


# --------------------------------------------------------------------------------------------
# Extractors
# --------------------------------------------------------------------------------------------


RESIZES = ("tf1", "pytorch-fid")
_INCEPTION_SIZE = 299


class InceptionExtractor(nn.Module):
    """torch-fidelity's InceptionV3 behind the extractor protocol.

    "logits" are torch-fidelity's "logits_unbiased" (the pool features times the final layer's
    weights, no bias: 1008 classes, as in the original Inception Score code); "pool" is the
    2048-d average-pool output FID uses. Floats in [-1, 1] are turned into uint8 first (rounded
    to the nearest level), which is what the network was built for.

    How images reach 299×299 (`resize`):
    - "tf1": torch-fidelity's resize, bilinear as TensorFlow 1 computes it: the original IS and
      FID code's resize.
    - "pytorch-fid": PyTorch's bilinear interpolation (align_corners=False) of the uint8 values,
      as pytorch-fid resizes. The result is rounded to uint8 (the network takes uint8; pytorch-fid
      keeps floats, a difference of at most half a level) and handed on at 299×299, where the
      TF1 resize is the identity. The weights are the same TensorFlow graph pytorch-fid converts.
      One difference stays: the network here scales pixels as (u - 128) / 128 (the TF graph's
      own step), pytorch-fid as 2 u / 255 - 1, about 0.4 % apart.
    The two resizes give slightly different features, so FIDs from one are not exactly those of
    the other; cached statistics are keyed by the extractor's name, which says which resize.
    """

    def __init__(self, net: nn.Module, resize: str = "tf1"):
        super().__init__()
        if resize not in RESIZES:
            raise ValueError(f"resize must be one of {RESIZES}, got {resize!r}.")
        self.net = net
        self.resize = resize
        self.name = "inception-v3-tf-2015-12-05" + ("" if resize == "tf1" else "-resize-pytorch-fid")

    @property
    def device(self) -> torch.device:
        return _module_device(self)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = to_uint8(x).to(self.device)  # convert before the transfer: uint8 is 4× smaller
        if self.resize == "pytorch-fid" and tuple(x.shape[-2:]) != (_INCEPTION_SIZE, _INCEPTION_SIZE):
            x = F.interpolate(x.float(), size=(_INCEPTION_SIZE, _INCEPTION_SIZE), mode="bilinear",
                              align_corners=False)
            x = x.round_().clamp_(0, 255).to(torch.uint8)
        logits, pool = self.net(x)
        return {"logits": logits, "pool": pool}


def _fetch(url: str, filename: str, **kwargs: Any) -> Path:
    # Imported here so that this module loads without colabkit.data's dependencies
    # (and tests can replace this one function).
    from colabkit.data import fetch

    return Path(fetch(url, filename, **kwargs))


def inception_extractor(
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    *,
    dest_dir: str | os.PathLike | None = None,
    sha256: str | None = None,
    progress: bool = True,
    resize: str = "tf1",
) -> InceptionExtractor:
    """The standard InceptionV3 extractor (torch-fidelity's port of the TensorFlow network).

    `resize` says how images are brought to 299×299: "tf1" (the original TensorFlow code's
    bilinear resize, torch-fidelity's default) or "pytorch-fid" (PyTorch's bilinear, as the
    pytorch-fid package does); see InceptionExtractor.

    The weights (about 95 MB) are fetched with colabkit.data.fetch: downloaded once, kept in
    `cache_dir` (give a Drive folder in Colab, e.g. run.cache) and copied from there in later
    sessions. `dest_dir` is the local copy's folder (default: torch hub's checkpoints folder).
    Pass `sha256` to have fetch check the file.

    Raises WeightsUnavailable with instructions when the file cannot be fetched or loaded.
    """
    if resize not in RESIZES:
        raise ValueError(f"resize must be one of {RESIZES}, got {resize!r}.")
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError as exc:
        raise ImportError(
            "inception_extractor needs torch-fidelity: pip install 'torch-fidelity>=0.3' "
            "(it is the 'metrics' extra of colabkit)."
        ) from exc

    if dest_dir is None:
        dest_dir = Path(torch.hub.get_dir()) / "checkpoints"
    try:
        path = _fetch(
            INCEPTION_WEIGHTS_URL,
            INCEPTION_WEIGHTS_FILE,
            cache_dir=cache_dir,
            dest_dir=dest_dir,
            sha256=sha256,
            progress=progress,
        )
    except Exception as exc:
        where = f"cache_dir ({cache_dir})" if cache_dir is not None else f"dest_dir ({dest_dir})"
        raise WeightsUnavailable(
            f"Could not get the InceptionV3 weights {INCEPTION_WEIGHTS_FILE} from {INCEPTION_WEIGHTS_URL}: "
            f"{type(exc).__name__}: {exc}\n"
            "IS and FID need this file once; later sessions copy it from cache_dir. To fix it:\n"
            "  - run again with internet access (in Colab: pass cache_dir=run.cache so it is kept on Drive), or\n"
            f"  - download the file on another machine and put it into {where}, or\n"
            "  - for a plumbing check only, use colabkit.metrics.tiny_extractor() (its numbers mean nothing)."
        ) from exc

    try:
        net = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["logits_unbiased", "2048"], feature_extractor_weights_path=str(path)
        )
    except Exception as exc:
        raise WeightsUnavailable(
            f"The InceptionV3 weights file {path} could not be loaded ({type(exc).__name__}: {exc}). "
            "It is probably truncated (an interrupted download, or a Drive copy that had not finished "
            f"syncing). Delete {INCEPTION_WEIGHTS_FILE} from {path.parent}"
            + (f" and from cache_dir ({cache_dir})" if cache_dir is not None else "")
            + " and run again."
        ) from exc
    return InceptionExtractor(net, resize=resize).to(device)


class TinyExtractor(nn.Module):
    """A small random conv net with the extractor protocol. ITS NUMBERS MEAN NOTHING.

    It exists so that smoke runs and tests exercise the whole metric code path (sampling,
    batching, caching, the IS and FID arithmetic) without the Inception weights. The weights
    are drawn from `seed` with a private generator: the same seed gives the same network on
    any machine, and the global random state is untouched.
    """

    def __init__(self, seed: int = 0, num_classes: int = 10, dim: int = 64, size: int = 32):
        super().__init__()
        self.name = f"tiny-random-s{seed}-c{num_classes}-d{dim}-r{size}"
        self.size = size
        width = 16
        with torch.random.fork_rng(devices=[]):  # the layers' default init must not move the global RNG
            self.features = nn.Sequential(
                nn.Conv2d(3, width, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(2 * width, dim, 3, stride=2, padding=1),
                nn.ReLU(),
            )
            self.fc = nn.Linear(dim, num_classes)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    fan_in = m.weight[0].numel()
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * math.sqrt(2.0 / fan_in))
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            # Sharpen the class scores so predictions differ between images (IS above 1 for
            # varied inputs); the features alone vary too little for that.
            self.fc.weight.mul_(10.0)
        self.requires_grad_(False)
        self.eval()

    @property
    def device(self) -> torch.device:
        return _module_device(self)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = x.to(self.device, torch.float32)
        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                              antialias=True)
        pool = self.features(x).mean(dim=(2, 3))
        return {"logits": self.fc(pool), "pool": pool}


def tiny_extractor(seed: int = 0, num_classes: int = 10, dim: int = 64) -> TinyExtractor:
    """A deterministic random stand-in for Inception (smoke mode, tests). Meaningless numbers."""
    return TinyExtractor(seed=seed, num_classes=num_classes, dim=dim)


# --------------------------------------------------------------------------------------------
# Walking over samples
# --------------------------------------------------------------------------------------------


def _as_batch(b: Any) -> torch.Tensor:
    """One batch as a float tensor N×3×H×W."""
    if isinstance(b, (tuple, list)):  # (images, labels) from a DataLoader
        b = b[0]
    if isinstance(b, np.ndarray):
        b = torch.from_numpy(b)
    if not isinstance(b, torch.Tensor):
        raise TypeError(f"Expected a batch of images as a tensor, got {type(b).__name__}.")
    if b.dim() == 3:
        b = b.unsqueeze(0)
    if b.dim() != 4:
        raise ValueError(f"Expected images N×3×H×W, got shape {tuple(b.shape)}.")
    if b.shape[1] == 1:
        b = b.expand(-1, 3, -1, -1)
    elif b.shape[1] != 3:
        hint = " (channels last? use x.permute(0, 3, 1, 2))" if b.shape[-1] in (1, 3) else ""
        raise ValueError(f"Expected images N×3×H×W, got shape {tuple(b.shape)}{hint}.")
    if b.dtype == torch.uint8:
        b = b.float() / 127.5 - 1.0
    elif not b.is_floating_point():
        raise TypeError(f"Expected float images in [-1, 1] (or uint8), got dtype {b.dtype}.")
    return b


def _rebatch(batches: Iterable[torch.Tensor], batch_size: int) -> Iterator[torch.Tensor]:
    """Regroup batches of any size into batches of batch_size (the last one may be smaller)."""
    buf: list[torch.Tensor] = []
    count = 0
    for b in batches:
        buf.append(b)
        count += len(b)
        while count >= batch_size:
            cat = torch.cat(buf) if len(buf) > 1 else buf[0]
            yield cat[:batch_size]
            rest = cat[batch_size:]
            buf, count = ([rest] if len(rest) else []), len(rest)
    if count:
        yield torch.cat(buf) if len(buf) > 1 else buf[0]


def _batches(samples: Samples, n: int | None, batch_size: int) -> tuple[Iterator[torch.Tensor], int | None]:
    """(batches, total): an iterator of float batches and the number of images if known."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    if n is not None and n < 1:
        raise ValueError(f"n must be at least 1, got {n}.")

    if isinstance(samples, np.ndarray):
        samples = torch.from_numpy(samples)
    if isinstance(samples, torch.Tensor):
        if samples.dim() != 4:
            raise ValueError(f"Expected images N×3×H×W, got shape {tuple(samples.shape)}.")
        total = len(samples) if n is None else n
        if total > len(samples):
            raise ValueError(f"n={n} images asked for, but the tensor holds only {len(samples)}.")
        return (_as_batch(samples[i:min(i + batch_size, total)]) for i in range(0, total, batch_size)), total

    if callable(samples) and not hasattr(samples, "__iter__"):
        if n is None:
            raise ValueError("With a sampling function, say how many images to draw: n=50_000.")
        sample_fn = samples

        def drawn() -> Iterator[torch.Tensor]:
            left = n
            while left > 0:
                b = _as_batch(sample_fn(min(batch_size, left)))
                if len(b) == 0:
                    raise ValueError("The sampling function returned an empty batch.")
                b = b[:left]
                left -= len(b)
                yield b

        return drawn(), n

    if not hasattr(samples, "__iter__"):
        raise TypeError(
            f"samples must be a tensor, an iterable of batches or a function sample(n); got {type(samples).__name__}."
        )

    def taken() -> Iterator[torch.Tensor]:
        left = n
        for b in samples:
            b = _as_batch(b)
            if left is not None:
                b = b[:left]
                left -= len(b)
            if len(b):
                yield b
            if left == 0:
                return
        if left:
            raise ValueError(f"n={n} images asked for, but the iterable ran out {left} short.")

    return _rebatch(taken(), batch_size), n


def _extract(
    samples: Samples,
    extractor: Extractor,
    key: str,
    consume: Callable[[torch.Tensor], None],
    *,
    n: int | None,
    batch_size: int,
    device: str | torch.device | None,
    progress: bool,
    desc: str,
) -> int:
    """Feed every batch through the extractor and hand out[key] (on the CPU) to consume.

    Returns the number of images seen.
    """
    if device is None:
        device = getattr(extractor, "device", None)
    batches, total = _batches(samples, n, batch_size)
    seen = 0
    with torch.no_grad(), tqdm(total=total, desc=desc, unit="img", disable=not progress) as bar:
        for x in batches:
            if device is not None:
                x = x.to(device)
            out = extractor(x)
            if not isinstance(out, dict) or key not in out:
                got = sorted(out) if isinstance(out, dict) else type(out).__name__
                raise KeyError(
                    f"The extractor must return a dict with 'logits' and 'pool'; '{key}' is missing (got {got})."
                )
            feat = out[key]
            if feat.dim() != 2 or len(feat) != len(x):
                raise ValueError(f"Extractor output '{key}' should be {len(x)}×C, got shape {tuple(feat.shape)}.")
            feat = feat.detach().cpu()
            consume(feat if feat.dtype == torch.float64 else feat.float())
            seen += len(x)
            bar.update(len(x))
    return seen


# --------------------------------------------------------------------------------------------
# Inception Score
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# FID
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Cached statistics of a real data set
# --------------------------------------------------------------------------------------------


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "_"


def stats_filename(name: str, extractor: Extractor) -> str:
    """The file cached_stats uses for data set `name` under `extractor`."""
    return f"fid-stats-{_safe(name)}-{_safe(_extractor_name(extractor))}.npz"


def _extractor_name(extractor: Extractor) -> str:
    name = getattr(extractor, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError("The extractor needs a `name` attribute (a non-empty str) to key cached statistics.")
    return name


def cached_stats(
    name: str,
    samples: Samples,
    extractor: Extractor,
    cache_dir: str | os.PathLike | None,
    batch_size: int = 100,
    device: str | torch.device | None = None,
    progress: bool = True,
    *,
    n: int | None = None,
) -> Stats:
    """feature_stats of a fixed data set, stored in cache_dir and reused in later sessions.

    The file is keyed by `name` and the extractor's `name`, so give the data set a name that
    says what it is (e.g. "cifar10-train-50000"); change the name when the data change. In
    Colab use a Drive folder (run.cache). cache_dir may be a local folder or an fsspec URL;
    None computes without caching. An unreadable cached file is recomputed and replaced.
    """
    ext_name = _extractor_name(extractor)
    if cache_dir is None:
        return feature_stats(samples, extractor, batch_size, device, progress, n=n)
    filename = stats_filename(name, extractor)
    cache = open_store(cache_dir)   # a folder or an fsspec URL; writes are temp-file-then-rename
    data = cache.read_bytes(filename) if cache.exists(filename) else None
    if data is not None:
        try:
            with np.load(io.BytesIO(data)) as f:
                if str(f["name"]) != name or str(f["extractor"]) != ext_name:
                    raise ValueError(f"it holds {f['name']!s} / {f['extractor']!s}")
                mu, sigma = np.asarray(f["mu"], np.float64), np.asarray(f["sigma"], np.float64)
            if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)) or not np.isfinite(sigma).all():
                raise ValueError("bad shapes or values")
            return mu, sigma
        except Exception as exc:
            warnings.warn(f"Cached FID statistics {filename} in {cache_dir} are unusable ({exc}); recomputing.",
                          RuntimeWarning, stacklevel=2)
    mu, sigma, count = _moments(samples, extractor, n=n, batch_size=batch_size, device=device,
                                progress=progress, desc=f"FID features ({name})")
    buf = io.BytesIO()
    np.savez(buf, mu=mu, sigma=sigma, name=np.array(name), extractor=np.array(ext_name), count=np.array(count))
    cache.write_bytes(filename, buf.getvalue())
    return mu, sigma


# --------------------------------------------------------------------------------------------
# Ours next to the papers' numbers (the numbers themselves: colabkit/data/papers.py)
# --------------------------------------------------------------------------------------------

def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, (tuple, list)):
        mean, std = value
        return f"{float(mean):.{digits}f} ± {float(std):.{digits}f}"
    return f"{float(value):.{digits}f}"


def compare_table(measured: dict[str, Any], paper_key: str, digits: int = 2, *,
                  comparable: bool = True, why: str | None = None) -> str:
    """A small text table of our numbers next to the paper's, for a notebook to print.

    measured maps row names to a number or a (mean, std) pair, e.g. {"BEGAN": (5.1, 0.07)};
    names are matched to the paper's rows ignoring case, and unmatched names get rows of their
    own. paper_key is one of PAPER_NUMBERS' keys.

    comparable=False: our numbers were measured on another scale than the paper's (another
    network, say); the table then prints no difference ("n/c" in its place) and `why` (required)
    as a line of its own, so that nobody reads ours minus theirs as a gap to close.
    """
    if paper_key not in PAPER_NUMBERS:
        raise KeyError(f"Unknown paper_key {paper_key!r}; choose one of {sorted(PAPER_NUMBERS)}.")
    if not comparable and not why:
        raise ValueError("comparable=False needs why=: say what differs and what that means for the reader.")
    entry = PAPER_NUMBERS[paper_key]
    paper = entry["values"]
    lookup = {k.casefold(): k for k in paper}
    ours: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in measured.items():
        if key.casefold() in lookup:
            ours[lookup[key.casefold()]] = value
        else:
            extra[key] = value

    rows = [("", "ours", "paper", "ours - paper")]
    for key, ref in paper.items():
        mine = ours.get(key)
        if mine is None:
            delta = "-"
        elif not comparable:
            delta = "n/c"
        else:
            mean = mine[0] if isinstance(mine, (tuple, list)) else mine
            delta = f"{float(mean) - ref:+.{digits}f}"
        rows.append((key, _fmt(mine, digits), _fmt(ref, digits), delta))
    for key, value in extra.items():
        rows.append((key, _fmt(value, digits), "-", "-"))

    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    direction = "higher is better" if entry["higher_is_better"] else "lower is better"
    lines = [f"{entry['title']} - {entry['metric']}, {direction}"]
    for i, row in enumerate(rows):
        lines.append("  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append(f"source: {entry['source']}")
    if entry.get("note"):
        lines.append(f"note: {entry['note']}")
    if not comparable:
        lines.append(f"n/c = not comparable: {why}")
    return "\n".join(lines)
