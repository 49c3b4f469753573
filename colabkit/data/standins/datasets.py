"""The stand-in data sets: CIFAR-10, CelebA, CycleGAN's unpaired sets and CUB-200-2011 (with StackGAN's files).

Small, deterministic, in the real on-disk formats and layouts, so that smoke mode and the tests
run the real fetch, extract and loading code on them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..sources import CELEBA_FILENAME, CIFAR10_CLASSES, CIFAR10_DIRNAME, CIFAR10_FILENAME
from .formats import _dump_py2, _save_jpeg, _write_targz, _write_zip
from .paint import (
    _BIRD_COLOURS,
    _BIRD_SPECIES,
    _CAPTIONS,
    _bird_image,
    _cifar_image,
    _embed_caption,
    _face_image,
    _unpaired_image,
)


def standin_cifar10(root, n_per_batch: int = 100, seed: int = 0, archive: bool = True) -> dict:
    """Write a CIFAR-10 stand-in in the real ``cifar-10-batches-py`` format.

    ``data_batch_1..5`` and ``test_batch`` (dicts with "data" uint8 (n, 3072), "labels",
    "batch_label", "filenames", pickled as Python 2 did) and ``batches.meta``; with ``archive``
    also ``cifar-10-python.tar.gz`` with the official internal layout. Ten classes, each a
    shape in its own hue over a gradient. Deterministic from ``seed`` (byte-identical files).
    Returns ``{"root", "dir", "archive"}`` (archive None when not written).
    """
    root = Path(root)
    folder = root / CIFAR10_DIRNAME
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 10])
    batches = [(f"data_batch_{i}", f"training batch {i} of 5") for i in range(1, 6)]
    batches.append(("test_batch", "testing batch 1 of 1"))
    count = 0
    for name, label in batches:
        labels = [int(v) for v in rng.permutation(np.arange(n_per_batch) % 10)]
        data = np.stack([_cifar_image(rng, y).transpose(2, 0, 1).reshape(-1) for y in labels])
        filenames = [f"standin_{CIFAR10_CLASSES[y]}_s_{count + i:06d}.png" for i, y in enumerate(labels)]
        count += n_per_batch
        _dump_py2({"batch_label": label, "labels": labels, "data": data, "filenames": filenames},
                  folder / name)
    _dump_py2({"num_cases_per_batch": n_per_batch, "label_names": list(CIFAR10_CLASSES),
               "num_vis": 3072}, folder / "batches.meta")
    (folder / "readme.html").write_text(
        "<html><body><p>colabkit stand-in for CIFAR-10 (generated shapes, not the real data).</p>"
        "</body></html>\n")
    out = None
    if archive:
        out = root / CIFAR10_FILENAME
        _write_targz(out, root, [CIFAR10_DIRNAME])
    return {"root": root, "dir": folder, "archive": out}


def standin_celeba(root, n: int = 64, seed: int = 0) -> dict:
    """Write ``img_align_celeba.zip`` holding ``img_align_celeba/000001.jpg``... (178x218 faces).

    Returns ``{"root", "archive"}``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 218])
    with tempfile.TemporaryDirectory(dir=root, prefix=".celeba-") as tmp:
        folder = Path(tmp) / "img_align_celeba"
        folder.mkdir()
        for i in range(1, n + 1):
            _save_jpeg(_face_image(rng), folder / f"{i:06d}.jpg")
        out = root / CELEBA_FILENAME
        _write_zip(out, Path(tmp), "img_align_celeba")
    return {"root": root, "archive": out}


def standin_unpaired(root, name: str = "horse2zebra", n_train_a: int = 8, n_train_b: int = 10,
                     n_test_a: int = 3, n_test_b: int = 4, size: int = 256, seed: int = 0,
                     archive: bool = True) -> dict:
    """Write a CycleGAN-style unpaired set: ``name/trainA, trainB, testA, testB`` of JPEGs.

    Domain A: warm horizontal stripes with a brown ellipse; domain B: cool vertical stripes
    with a black-and-white striped ellipse (the same kind of layout, a different style). With
    ``archive`` also ``name.zip`` with the single top-level folder ``name/`` like the official
    archives. Returns ``{"root", "dir", "archive"}``.
    """
    root = Path(root)
    folder = root / name
    rng = np.random.default_rng([seed, size])
    counts = {"trainA": n_train_a, "trainB": n_train_b, "testA": n_test_a, "testB": n_test_b}
    for sub, n in counts.items():
        d = folder / sub
        d.mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            _save_jpeg(_unpaired_image(rng, sub[-1], size), d / f"n{i:08d}_{sub}.jpg")
    out = None
    if archive:
        out = root / f"{name}.zip"
        _write_zip(out, root, name)
    return {"root": root, "dir": folder, "archive": out}


def standin_cub(root, n_classes: int = 4, per_class: int = 6, seed: int = 0, size=(200, 150),
                archive: bool = False) -> dict:
    """Write a CUB-200-2011 stand-in with the StackGAN authors' preprocessed files.

    Under ``root``:

    * ``CUB_200_2011/images/<NNN.Class_Name>/<file>.jpg`` and ``images.txt``,
      ``bounding_boxes.txt`` (tight boxes around the bird), ``classes.txt``,
      ``image_class_labels.txt``, ``train_test_split.txt``;
    * ``text_c10/<class dir>/<file>.txt``: 10 captions naming the drawn colours;
    * ``birds/train`` and ``birds/test`` (classes split 3:1 like StackGAN's 150/50) with
      ``char-CNN-RNN-embeddings.pickle`` (float32 (N, 10, 1024), a bag-of-words projection of
      the captions), ``filenames.pickle`` ("class_dir/file" without extension) and
      ``class_info.pickle`` (int class ids), pickled as Python 2 did (protocol 2);
    * with ``archive``: ``CUB_200_2011.tgz`` and ``birds.zip`` as well (``birds.zip`` holding
      ``birds/text_c10/`` too, as the authors' archive does).

    ``size`` is (width, height) of the images. Returns a dict of these paths.
    """
    root = Path(root)
    w, h = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng([seed, 200])
    cub = root / "CUB_200_2011"
    images_dir = cub / "images"
    text_dir = root / "text_c10"
    birds = root / "birds"
    names = list(_BIRD_COLOURS)
    dim = 1024
    word_cache: dict = {}
    n_train_classes = max(1, round(n_classes * 0.75)) if n_classes > 1 else 1
    records = {"train": [], "test": []}
    lines = {"images": [], "boxes": [], "classes": [], "labels": [], "split": []}
    image_id = 0
    for k in range(n_classes):
        body = names[k % len(names)]
        wing = names[(k * 3 + 1) % len(names)]
        head = names[(k * 7 + 4) % len(names)]
        if wing == body:
            wing = names[(names.index(wing) + 1) % len(names)]
        beak = "orange" if k % 2 else "black"
        species = _BIRD_SPECIES[k % len(_BIRD_SPECIES)]
        cls_name = f"{body.capitalize()}_{species}" + (f"_{k}" if k >= len(_BIRD_SPECIES) else "")
        cls_dir = f"{k + 1:03d}.{cls_name}"
        lines["classes"].append(f"{k + 1} {cls_dir}")
        (images_dir / cls_dir).mkdir(parents=True, exist_ok=True)
        (text_dir / cls_dir).mkdir(parents=True, exist_ok=True)
        colours = {"body": _BIRD_COLOURS[body], "wing": _BIRD_COLOURS[wing],
                   "head": _BIRD_COLOURS[head], "beak": _BIRD_COLOURS[beak]}
        split = "train" if k < n_train_classes else "test"
        for j in range(per_class):
            image_id += 1
            stem = f"{cls_name}_{j + 1:04d}_{100000 + image_id}"
            img, box, scale = _bird_image(rng, colours, w, h)
            _save_jpeg(img, images_dir / cls_dir / f"{stem}.jpg")
            words = {"body": body, "wing": wing, "head": head, "beak": beak,
                     "size": "small" if scale < 0.62 else "large"}
            captions = [_CAPTIONS[i].format(**words) for i in rng.permutation(len(_CAPTIONS))]
            (text_dir / cls_dir / f"{stem}.txt").write_text("\n".join(captions) + "\n")
            emb = np.stack([_embed_caption(c, dim, word_cache) for c in captions])
            records[split].append((f"{cls_dir}/{stem}", k + 1, emb))
            lines["images"].append(f"{image_id} {cls_dir}/{stem}.jpg")
            lines["boxes"].append(f"{image_id} " + " ".join(f"{v:.1f}" for v in box))
            lines["labels"].append(f"{image_id} {k + 1}")
            lines["split"].append(f"{image_id} {1 if j % 2 == 0 else 0}")
    for key, fname in (("images", "images.txt"), ("boxes", "bounding_boxes.txt"),
                       ("classes", "classes.txt"), ("labels", "image_class_labels.txt"),
                       ("split", "train_test_split.txt")):
        (cub / fname).write_text("\n".join(lines[key]) + "\n")
    for split, recs in records.items():
        d = birds / split
        d.mkdir(parents=True, exist_ok=True)
        emb = np.stack([r[2] for r in recs]) if recs else np.zeros((0, 10, dim), np.float32)
        _dump_py2(emb.astype(np.float32), d / "char-CNN-RNN-embeddings.pickle")
        _dump_py2([r[0] for r in recs], d / "filenames.pickle")
        _dump_py2([int(r[1]) for r in recs], d / "class_info.pickle")
    out = {"root": root, "cub": cub, "images": images_dir, "text": text_dir, "birds": birds,
           "train": birds / "train", "test": birds / "test"}
    if archive:
        out["cub_archive"] = root / "CUB_200_2011.tgz"
        _write_targz(out["cub_archive"], root, ["CUB_200_2011"])
        out["birds_archive"] = root / "birds.zip"       # the authors' birds.zip carries the captions too
        _write_zip(out["birds_archive"], root, "birds", also={"birds/text_c10": text_dir})
    return out
