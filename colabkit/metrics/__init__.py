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

What colabkit keeps, and what it takes from torch-fidelity (a dependency of the `metrics` extra):
torch-fidelity's port of the TensorFlow InceptionV3 is the network (`inception_extractor`), so
features are those the published FIDs and ISs were computed with. The arithmetic stays here:
- the Drive cache: real-set statistics are stored through colabkit's store (a Drive folder or a
  bucket, written whole or not at all) and keyed by the extractor's name; torch-fidelity caches
  in a local folder keyed by its own input names, which a recycled Colab VM wipes;
- the inputs: a tensor, an iterable of batches or a sampling function with n=, so 50,000 images
  never sit in memory together; torch-fidelity takes its own Dataset and model classes;
- the protocols of the papers: IS splits in the given order or shuffled from a chosen seed (the
  StackGAN authors shuffle; torch-fidelity always shuffles, from seed 2020), and FID's matrix
  square root as pytorch-fid takes it (scipy's sqrtm with its eps retry), where torch-fidelity
  sums the square roots of the eigenvalues;
- the offline tiny extractor for smoke runs and tests.
tests/test_metrics.py checks this arithmetic against independent NumPy code and against
torch-fidelity's own IS and FID functions on the same features.

The modules: extractors (Inception, the tiny stand-in), samples (walking over the three forms
of samples, uint8 conversion), scores (IS, FID), cache (real-set statistics kept on Drive),
tables (our numbers next to the papers').
"""

from ..data.papers import PAPER_NUMBERS
from ..data.sources import INCEPTION_WEIGHTS_FILE, INCEPTION_WEIGHTS_URL
from .cache import cached_stats, stats_filename
from .extractors import (
    RESIZES,
    InceptionExtractor,
    TinyExtractor,
    WeightsUnavailable,
    inception_extractor,
    tiny_extractor,
)
from .samples import ROUNDINGS, Extractor, to_uint8
from .scores import feature_stats, fid, frechet_distance, inception_score, inception_score_from_logits
from .tables import compare_table

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
