"""Downloads, archives, file formats and stand-in data sets for the course notebooks.

The pieces, in the order a notebook uses them, each in its own module:

* :mod:`.sources`: every data set and model file the course fetches (URL or Drive id, checksum,
  size, layout), as :data:`SOURCES` and as the constants the notebooks use (``CIFAR10_URL``, ...).
* :mod:`.download`: :func:`fetch` brings one file to the VM's fast local disk, through the
  persistent cache (:mod:`.cache`, Google Drive in Colab; :func:`place_in_cache` puts a file of
  yours there), verifies checksums (:mod:`.hashing`), and turns every way a download can go wrong
  into a :class:`DataError` whose message says what the learner can do (:mod:`.advice`). Google
  Drive files go through gdown (:mod:`.drive`, which copes with Colab's gdown 5.2.2 and with 6.x).
  Nothing half-written is left behind.
* :mod:`.archive`: :func:`extract` unpacks a zip or tar archive safely, with a completion marker
  so that a half-extracted folder is redone; :func:`check_layout` checks the result.
* :mod:`.readers`: :func:`load_py2_pickle` and :func:`read_cifar10` read the data sets' own formats.
* :mod:`.standins`: ``standin_*`` write small, deterministic stand-ins for CIFAR-10, CelebA, the
  CycleGAN unpaired sets and CUB-200-2011 (with the StackGAN authors' preprocessed files) in the
  real on-disk formats, with structured images that a GAN can visibly learn. Smoke mode and the
  tests run the real loading code on them.
* :mod:`.errors`: the exceptions, all subclasses of :class:`DataError`.
* :mod:`.papers`: the published numbers the notebooks compare with (``PAPER_NUMBERS``).
"""

from __future__ import annotations

from .archive import check_layout, extract
from .cache import place_in_cache
from .download import fetch
from .drive import DRIVE_URL
from .errors import (
    ArchiveError,
    ChecksumError,
    CorruptFileError,
    DataError,
    DownloadError,
    DriveError,
    DrivePermissionError,
    DriveQuotaError,
    HTMLPageError,
    HTTPStatusError,
    LayoutError,
    UnsafeArchiveError,
)
from .readers import load_py2_pickle, read_cifar10
from .sources import (
    CELEBA_DRIVE_ID,
    CELEBA_FILENAME,
    CELEBA_MD5,
    CIFAR10_CLASSES,
    CIFAR10_DIRNAME,
    CIFAR10_FILENAME,
    CIFAR10_MD5,
    CIFAR10_URL,
    CUB_FILENAME,
    CUB_MD5,
    CUB_URL,
    CYCLEGAN_PRETRAINED_URL,
    CYCLEGAN_URL,
    REED_CAPTIONS_DRIVE_ID,
    SOURCES,
    STACKGAN_BIRDS_DRIVE_ID,
    Source,
)
from .standins import standin_celeba, standin_cifar10, standin_cub, standin_unpaired

__all__ = [
    "ArchiveError",
    "CELEBA_DRIVE_ID",
    "CELEBA_FILENAME",
    "CELEBA_MD5",
    "CIFAR10_CLASSES",
    "CIFAR10_DIRNAME",
    "CIFAR10_FILENAME",
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "CUB_FILENAME",
    "CUB_MD5",
    "CUB_URL",
    "CYCLEGAN_PRETRAINED_URL",
    "CYCLEGAN_URL",
    "ChecksumError",
    "CorruptFileError",
    "DRIVE_URL",
    "DataError",
    "DownloadError",
    "DriveError",
    "DrivePermissionError",
    "DriveQuotaError",
    "HTMLPageError",
    "HTTPStatusError",
    "LayoutError",
    "REED_CAPTIONS_DRIVE_ID",
    "SOURCES",
    "STACKGAN_BIRDS_DRIVE_ID",
    "Source",
    "UnsafeArchiveError",
    "check_layout",
    "extract",
    "fetch",
    "load_py2_pickle",
    "place_in_cache",
    "read_cifar10",
    "standin_celeba",
    "standin_cifar10",
    "standin_cub",
    "standin_unpaired",
]
