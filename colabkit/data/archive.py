"""Unpacking archives: :func:`extract` (zip and tar) and :func:`check_layout`.

:func:`extract` unpacks a zip or tar archive, refuses members that would escape the destination,
and writes a completion marker so that a folder left half-extracted by a dead VM is redone while
a complete one is skipped. Every image it brings is checked once (:mod:`colabkit.imagecheck`).
:func:`check_layout` checks that the expected files are there and says what is there instead.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path

from .. import imagecheck
from ._io import _CHUNK, _bar, _remove_tree_or_file, _unlink
from .errors import ArchiveError, LayoutError, UnsafeArchiveError


def _safe_member_path(name: str, archive: Path) -> str:
    """The member name as a relative path, or UnsafeArchiveError if it would escape."""
    norm = name.replace("\\", "/")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) or ".." in parts:
        raise UnsafeArchiveError(
            f"Refusing to extract {archive}: the member {name!r} would be written outside the "
            "destination folder (absolute path or '..'). This is not a normal data set archive: "
            "delete it and download it from the official source."
        )
    return "/".join(parts)


def _check_tar_link(member: tarfile.TarInfo, rel: str, archive: Path) -> None:
    target = member.linkname.replace("\\", "/")
    if member.issym():
        base = rel.rsplit("/", 1)[0] if "/" in rel else ""
        joined = f"{base}/{target}" if base else target
    else:
        joined = target
    depth = 0
    escapes = target.startswith("/")
    for part in joined.split("/"):
        if part in ("", "."):
            continue
        depth += -1 if part == ".." else 1
        if depth < 0:
            escapes = True
    if escapes:
        raise UnsafeArchiveError(
            f"Refusing to extract {archive}: the link {member.name!r} -> {member.linkname!r} points "
            "outside the destination folder. Delete the archive and download it from the official source."
        )


class _CountingReader:
    """A read-only file wrapper that advances a progress bar by the bytes read."""

    def __init__(self, raw, bar):
        self._raw = raw
        self._bar = bar

    def read(self, n=-1):
        data = self._raw.read(n)
        self._bar.update(len(data))
        return data


def _extract_tar(archive: Path, staging: Path, progress: bool) -> None:
    use_filter = hasattr(tarfile, "data_filter")
    with open(archive, "rb") as raw, _bar(archive.stat().st_size, f"extracting {archive.name}",
                                          progress) as bar:
        # Stream mode: one pass over the compressed bytes, progress counted on them.
        with tarfile.open(fileobj=_CountingReader(raw, bar), mode="r|*") as tf:
            for member in tf:
                rel = _safe_member_path(member.name, archive)
                if not rel:
                    continue
                if member.issym() or member.islnk():
                    _check_tar_link(member, rel, archive)
                elif not (member.isfile() or member.isdir()):
                    continue  # devices, fifos: never part of a data set
                member.name = rel
                if use_filter:
                    try:
                        tf.extract(member, staging, filter="data")
                    except tarfile.FilterError as e:
                        raise UnsafeArchiveError(f"Refusing to extract {archive}: {e}") from e
                else:
                    tf.extract(member, staging)


def _extract_zip(archive: Path, staging: Path, progress: bool) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        plan = []
        for info in infos:
            rel = _safe_member_path(info.filename, archive)  # check all before writing any
            if rel and not rel.startswith("__MACOSX"):
                plan.append((info, rel))
        total = sum(info.file_size for info, _ in plan)
        with _bar(total, f"extracting {archive.name}", progress) as bar:
            for info, rel in plan:
                target = staging / rel
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    while chunk := src.read(_CHUNK):
                        dst.write(chunk)
                        bar.update(len(chunk))


def _marker_path(archive: Path, dest: Path) -> Path:
    return dest / f".{archive.name}.extracted.json"


def check_layout(root, expect) -> Path:
    """Check that every relative path in ``expect`` exists under ``root``; return ``root``.

    Raises :class:`LayoutError` listing what is missing and which top-level entries were found.
    """
    root = Path(root)
    expect = [expect] if isinstance(expect, (str, os.PathLike)) else list(expect)
    missing = [os.fspath(e) for e in expect if not (root / e).exists()]
    if not missing:
        return root
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir()
                   if not p.name.startswith(".")) if root.is_dir() else []
    shown = ", ".join(found[:20]) + (f", ... ({len(found)} entries)" if len(found) > 20 else "")
    lines = [f"The data in {root} does not have the expected layout.",
             f"Missing: {', '.join(missing)}.",
             f"Found at the top level: {shown}." if found else
             ("The folder is empty." if root.is_dir() else "The folder does not exist.")]
    nested = [d for d in found if d.endswith("/") and all((root / d / e).exists() for e in expect)]
    if nested:
        lines.append(f"The expected files are one level down, in {root / nested[0]}: "
                     "point the notebook there.")
    else:
        lines.append("Did you download or point at the right archive/folder? Delete what is there and "
                     "fetch the data set again, or use the notebook's fallback.")
    raise LayoutError("\n".join(lines), missing=missing, found=found)


def extract(archive, dest_dir, *, expect=(), progress: bool = True, bad_images: str = "stop") -> Path:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into ``dest_dir``; return ``dest_dir``.

    Members are unpacked into a temporary folder inside ``dest_dir`` and moved into place
    when all of them are out; then a completion marker ``.<archive>.extracted.json`` is
    written. A complete extraction (marker present, entries there) is skipped; anything else
    (a VM that died mid-way) is redone, replacing the archive's top-level entries. Members
    that would land outside ``dest_dir`` raise :class:`UnsafeArchiveError`; a damaged archive
    raises :class:`ArchiveError`. ``expect`` lists relative paths that must exist afterwards
    (:class:`LayoutError` otherwise).

    Every image it brought is checked once, cheaply (colabkit.imagecheck), and the result kept in
    the marker: with ``bad_images="stop"`` a truncated or damaged image raises
    :class:`CorruptFileError` naming it; with ``"skip"`` it is moved to ``dest_dir/.bad-images/``
    and listed in the marker (a data set that indexes its files in a list, as CUB's images.txt
    does, must then leave them out itself).
    """
    archive = Path(archive)
    dest = Path(dest_dir).expanduser()
    if not archive.is_file():
        raise ArchiveError(f"The archive {archive} does not exist: fetch it first.")
    dest.mkdir(parents=True, exist_ok=True)
    marker = _marker_path(archive, dest)
    size = archive.stat().st_size
    if bad_images not in ("stop", "skip"):
        raise ValueError(f"bad_images must be 'stop' or 'skip', not {bad_images!r}")

    if marker.is_file():
        try:
            info = json.loads(marker.read_text())
            complete = (info.get("size") == size
                        and all((dest / e).exists() for e in info.get("entries", [])))
        except (OSError, ValueError, AttributeError):
            complete = False
        if complete and all((dest / e).exists() for e in expect):
            if "images" not in info:   # extracted before images were checked: check them once now
                info["images"] = dict(zip(("checked", "bad"), imagecheck.scan(dest, info["entries"])), skipped=[])
                marker.write_text(json.dumps(info))
            imagecheck.settle(dest, marker, info, archive.name, bad_images)
            return dest
        print(f"{dest}: the earlier extraction of {archive.name} is incomplete or outdated; redoing it.")
    _unlink(marker)
    for stale in dest.glob(f".{glob.escape(archive.name)}.extracting-*"):
        _remove_tree_or_file(stale)

    if zipfile.is_zipfile(archive):
        kind = "zip"
    elif tarfile.is_tarfile(archive):
        kind = "tar"
    else:
        raise ArchiveError(
            f"{archive} is neither a zip nor a tar archive (or it is damaged): delete it and fetch it "
            "again; if it came from a Drive link, it may be an HTML error page saved under the archive's name."
        )

    staging = Path(tempfile.mkdtemp(prefix=f".{archive.name}.extracting-", dir=dest))
    try:
        try:
            if kind == "zip":
                _extract_zip(archive, staging, progress)
            else:
                _extract_tar(archive, staging, progress)
        except UnsafeArchiveError:
            raise
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as e:
            if isinstance(e, OSError) and e.errno is not None:
                raise  # disk full and the like: not the archive's fault
            raise ArchiveError(
                f"{archive} is damaged or truncated ({type(e).__name__}: {e}). Delete it (and its copy in "
                "the cache folder, if any) and fetch it again."
            ) from e
        entries = sorted(p.name for p in staging.iterdir())
        for name in entries:
            target = dest / name
            if target.exists() or target.is_symlink():
                _remove_tree_or_file(target)
            os.replace(staging / name, target)
        checked, bad = imagecheck.scan(dest, entries)
        info = {"archive": archive.name, "size": size, "entries": entries,
                "images": {"checked": checked, "bad": bad, "skipped": []}}
        tmp_marker = marker.with_name(marker.name + ".tmp")
        with open(tmp_marker, "w") as f:
            json.dump(info, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_marker, marker)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    imagecheck.settle(dest, marker, info, archive.name, bad_images)
    check_layout(dest, expect)
    return dest
