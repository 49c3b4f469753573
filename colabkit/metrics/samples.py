"""The three forms samples come in (a tensor, an iterable of batches, a sampling function with n=),
walked batch by batch through an extractor; floats in [-1, 1] to uint8 as an image file stores them."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Protocol, Union

import numpy as np
import torch
from tqdm.auto import tqdm


class Extractor(Protocol):
    """What the metrics need from a feature extractor (see colabkit.metrics' docstring)."""

    name: str

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]: ...


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

