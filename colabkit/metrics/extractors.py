"""Feature extractors with the protocol the metrics need: torch-fidelity's InceptionV3 (the real
one) and a tiny random stand-in (smoke runs, tests: its numbers mean nothing)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.sources import INCEPTION_WEIGHTS_FILE, INCEPTION_WEIGHTS_URL
from .samples import to_uint8


class WeightsUnavailable(RuntimeError):
    """The Inception weights could not be fetched or loaded; the message says what to do."""


def _module_device(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


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

