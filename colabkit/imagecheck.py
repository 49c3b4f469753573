"""A cheap check of every image an archive brought, once, right after extraction.

A truncated JPEG, a PNG with a bad CRC or an empty file would otherwise stop training when the
loader first reaches it, hours in, and again at the same step after every resume. The check reads
what it must (a JPEG's end, a PNG's chunks) without decoding, and decodes only the files that look
wrong, so a good file that merely looks odd (a JPEG with bytes after its end) is not refused.
:func:`colabkit.data.extract` runs it and records the result in its completion marker.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
QUARANTINE = ".bad-images"   # under the extraction folder; data sets never look there
_JPEG_TAIL = 1 << 16
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _decodes(path: Path) -> str | None:
    """None if PIL decodes the whole image, else why not."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
    except Exception as exc:  # noqa: BLE001 - whatever PIL raises, the file cannot be trained on
        return f"cannot be decoded ({type(exc).__name__}: {exc})"
    return None


def _png_problem(f) -> str | None:
    f.seek(len(_PNG_SIGNATURE))
    while True:
        head = f.read(8)
        if len(head) < 8:
            return "truncated (the PNG ends before its IEND chunk)"
        length, kind = struct.unpack(">I4s", head)
        body = f.read(length)
        crc = f.read(4)
        if len(body) < length or len(crc) < 4:
            return f"truncated (inside its {kind.decode('latin1')} chunk)"
        if zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            return f"bad CRC in its {kind.decode('latin1')} chunk"
        if kind == b"IEND":
            return None


def problem(path: Path) -> str | None:
    """Why the image at `path` cannot be trained on, or None if it looks whole."""
    size = path.stat().st_size
    if size == 0:
        return "empty file (0 bytes)"
    with open(path, "rb") as f:
        head = f.read(8)
        if head.startswith(_PNG_SIGNATURE):
            return _png_problem(f)
        if head.startswith(b"\xff\xd8\xff"):
            f.seek(max(0, size - _JPEG_TAIL))
            tail = f.read()
            # A whole JPEG ends with EOI (FF D9) after its last scan (FF DA); inside a scan FF is
            # always followed by 00 or a restart marker, so a file cut mid-scan has no EOI after it.
            if tail.rfind(b"\xff\xd9") > tail.rfind(b"\xff\xda"):
                return None
    return _decodes(path)    # looks cut short, or another format: let the decoder decide


def scan(dest: Path, entries: list[str]) -> tuple[int, list[list[str]]]:
    """(images checked, [[relative path, why], ...]) for the image files under dest/entry."""
    checked, bad = 0, []
    for entry in entries:
        top = dest / entry
        paths = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in paths:
            if path.suffix.lower() in IMAGE_SUFFIXES:
                checked += 1
                why = problem(path)
                if why:
                    bad.append([path.relative_to(dest).as_posix(), why])
    return checked, bad


def settle(dest: Path, marker: Path, info: dict, archive: str, mode: str) -> None:
    """Act on the check recorded in `info` (the marker's content): stop, or move the bad images aside."""
    from .data.errors import CorruptFileError

    images = info["images"]
    bad = [b for b in images["bad"] if b[0] not in images["skipped"]]
    if not bad:
        return
    if mode == "stop":
        shown = "\n".join(f"  {rel}: {why}" for rel, why in bad[:10])
        more = f"\n  ... and {len(bad) - 10} more (all listed in {marker})" if len(bad) > 10 else ""
        raise CorruptFileError(
            f"{len(bad)} of the {images['checked']:,} images from {archive} in {dest} cannot be read:\n"
            f"{shown}{more}\nTraining would stop when it reaches them (hours in, and again after each "
            "resume). If the download may be broken, delete the archive (and its copy in the cache folder) "
            "and fetch it again. To train without these files, extract with bad_images='skip': they are "
            f"moved to {dest / QUARANTINE} and listed in {marker}.")
    for rel, _why in bad:
        src, dst = dest / rel, dest / QUARANTINE / rel
        if src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(src, dst)
        images["skipped"].append(rel)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, marker)
    print(f"Skipping {len(bad)} unreadable image(s) from {archive} (moved to {dest / QUARANTINE}, listed in "
          f"{marker}): " + ", ".join(f"{rel} ({why})" for rel, why in bad))
