"""Every data set and model file the course fetches, in one place: where it is, its checksum, its layout.

A notebook fetches a source like this (``fetch`` and ``extract`` are in :mod:`colabkit.data`)::

    src = SOURCES["cifar10"]
    archive = fetch(src.source, src.filename, cache_dir=run.cache, dest_dir=run.data_dir, md5=src.md5)
    extract(archive, run.data_dir, expect=src.layout)

and a source with a ``{name}`` in it (the CycleGAN sets, the released CycleGAN generators) is
made concrete first: ``SOURCES["cyclegan"].named("horse2zebra")``.

``size`` is the approximate download size as documented (``../shared/papers.md``), ``None``
where it was not recorded; ``md5`` / ``sha256`` are ``None`` where no checksum is published or
pinned, and fetch then checks nothing but the layout. The module-level constants
(``CIFAR10_URL``, ``CELEBA_DRIVE_ID``, ...) are the same facts under the names the notebooks use.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """One file the course downloads (``url``, or ``drive_id`` for a Google Drive file)."""

    filename: str                       # the name it is fetched and cached under
    url: str | None = None
    drive_id: str | None = None
    md5: str | None = None
    sha256: str | None = None
    size: str | None = None             # approximate, as documented; None: not recorded
    layout: tuple[str, ...] = ()        # paths under the extraction folder once extracted
    used_by: str = ""                   # which notebook or module fetches it
    note: str = ""

    @property
    def source(self) -> str:
        """What :func:`colabkit.data.fetch` takes: the URL, or ``"gdrive:<id>"``."""
        return self.url if self.url is not None else f"gdrive:{self.drive_id}"

    def named(self, name: str) -> Source:
        """This source with ``{name}`` filled in (in the URL, the file name and the layout)."""
        fill = lambda s: s.replace("{name}", name) if s is not None else None
        return dataclasses.replace(self, filename=fill(self.filename), url=fill(self.url),
                                   layout=tuple(fill(p) for p in self.layout))


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_DIRNAME = "cifar-10-batches-py"

SOURCES: dict[str, Source] = {
    "cifar10": Source(
        filename="cifar-10-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",     # the md5 torchvision checks
        size="about 163 MB", layout=(CIFAR10_DIRNAME,), used_by="01_began"),
    "celeba": Source(
        # Aligned CelebA as torchvision's CelebA loader downloads it (Google Drive, through gdown).
        filename="img_align_celeba.zip",
        drive_id="0B7EVK8r0v71pZjFTYXZWM3FlRnM",
        md5="00d2c5bc6d35e252742224ab0c1e8fcb",
        layout=("img_align_celeba",), used_by="01_began",
        note="Drive's download quota is often used up: the notebook explains what to do then."),
    "cyclegan": Source(
        # NAME in horse2zebra, apple2orange, monet2photo, ... (notebook 02's UNPAIRED_SETS)
        filename="{name}.zip",
        url="http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip",
        size="horse2zebra: about 117 MB",
        layout=("{name}/trainA", "{name}/trainB", "{name}/testA", "{name}/testB"), used_by="02_cyclegan",
        note="No checksums are published; the layout is checked."),
    "cyclegan_pretrained": Source(
        # The authors' released generators (state dicts of the reference ResnetGenerator).
        filename="{name}.pth",
        url="http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/{name}.pth",
        used_by="02_cyclegan (calibrating the FID measurement)",
        note="No checksums are published; notebook 02 checks every tensor's name and shape."),
    "cub": Source(
        filename="CUB_200_2011.tgz",
        url="https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1",
        md5="97eceeb196236b17998738112f37df78",
        layout=("CUB_200_2011/images.txt", "CUB_200_2011/bounding_boxes.txt"), used_by="03_stackgan"),
    "stackgan_birds": Source(
        # The StackGAN authors' preprocessed birds archive (char-CNN-RNN embeddings, text_c10).
        filename="birds.zip",
        drive_id="0B3y_msrWZaXLT1BZdVdycDY5TEE",
        layout=("birds/train/filenames.pickle", "birds/test/char-CNN-RNN-embeddings.pickle"),
        used_by="03_stackgan",
        note="Reported down or access-restricted at times: notebook 03 falls back to reed_captions."),
    "reed_captions": Source(
        # Reed et al.'s caption archive: text_c10/, the 10 raw captions per CUB image.
        filename="cvpr2016_cub.tar.gz",
        drive_id="0B0ywwgffWnLLZW9uVHNjb2JmNlE",
        used_by="03_stackgan (the fallback when birds.zip is unavailable)",
        note="Notebook 03 looks for text_c10/ anywhere under its extraction folder."),
    "inception_weights": Source(
        # torch-fidelity's InceptionV3 weights: the TensorFlow graph of the original IS and FID code,
        # converted to PyTorch. The same URL as torch_fidelity.feature_extractor_inceptionv3.URL_INCEPTION_V3
        # (a test checks that they agree).
        filename="weights-inception-2015-12-05-6726825d.pth",
        url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
            "weights-inception-2015-12-05-6726825d.pth",
        used_by="colabkit.metrics.inception_extractor"),
}

# The same facts under the names the notebooks and tests use.
CIFAR10_URL = SOURCES["cifar10"].url
CIFAR10_FILENAME = SOURCES["cifar10"].filename
CIFAR10_MD5 = SOURCES["cifar10"].md5

CELEBA_DRIVE_ID = SOURCES["celeba"].drive_id
CELEBA_FILENAME = SOURCES["celeba"].filename
CELEBA_MD5 = SOURCES["celeba"].md5

CYCLEGAN_URL = SOURCES["cyclegan"].url                          # .format(name=...)
CYCLEGAN_PRETRAINED_URL = SOURCES["cyclegan_pretrained"].url    # .format(name=...)

CUB_URL = SOURCES["cub"].url
CUB_FILENAME = SOURCES["cub"].filename
CUB_MD5 = SOURCES["cub"].md5
STACKGAN_BIRDS_DRIVE_ID = SOURCES["stackgan_birds"].drive_id
REED_CAPTIONS_DRIVE_ID = SOURCES["reed_captions"].drive_id

INCEPTION_WEIGHTS_URL = SOURCES["inception_weights"].url
INCEPTION_WEIGHTS_FILE = SOURCES["inception_weights"].filename
