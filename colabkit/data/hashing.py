"""Checksums computed while the bytes stream past (md5 and/or sha256), and the check against the expected ones."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ._io import _CHUNK, _bar


class _Hashes:
    """Feeds the same bytes to several hash objects; quacks like one hashlib object."""

    def __init__(self, algorithms):
        self._h = {a: hashlib.new(a) for a in algorithms}

    def update(self, data: bytes) -> None:
        for h in self._h.values():
            h.update(data)

    def hexdigests(self) -> dict[str, str]:
        return {a: h.hexdigest() for a, h in self._h.items()}


def _expected_digests(sha256, md5) -> dict[str, str]:
    expected = {}
    for name, value in (("sha256", sha256), ("md5", md5)):
        if value is not None:
            value = str(value).strip().lower()
            if not re.fullmatch(r"[0-9a-f]+", value) or len(value) != hashlib.new(name).digest_size * 2:
                raise ValueError(f"{name}={value!r} is not a valid {name} hex digest")
            expected[name] = value
    return expected


def _mismatch(expected: dict[str, str], actual: dict[str, str]):
    for name, value in expected.items():
        if actual.get(name) != value:
            return name, value, actual.get(name)
    return None


def _hash_file(path: Path, algorithms, desc: str, progress: bool) -> dict[str, str]:
    hashes = _Hashes(algorithms)
    with open(path, "rb") as f, _bar(path.stat().st_size, desc, progress) as bar:
        while chunk := f.read(_CHUNK):
            hashes.update(chunk)
            bar.update(len(chunk))
    return hashes.hexdigests()
