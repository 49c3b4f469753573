"""Writing stand-ins in the real on-disk formats: Python 2 pickles, deterministic zip and tar.gz, JPEG.

The archives get fixed timestamps and sorted members, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np

# Python 2 style pickles

class _Py2Str(str):
    """A str that :class:`_Py2Pickler` writes as a Python 2 byte string (BINSTRING opcode).

    Python 2 pickles store ``str`` that way: Python 3 reads it back as ``str`` with
    encoding="latin1" or "ASCII" and as ``bytes`` with encoding="bytes", like the real files.
    """


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler: its dispatch table can be extended
    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2str(self, obj):
        data = obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[_Py2Str] = _save_py2str


def _py2ify(obj):
    """Turn the str objects of plain containers into :class:`_Py2Str`."""
    if isinstance(obj, str):
        return _Py2Str(obj)
    if isinstance(obj, dict):
        return {_py2ify(k): _py2ify(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_py2ify(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_py2ify(v) for v in obj)
    return obj


def _dump_py2(obj, path: Path) -> None:
    """Write ``obj`` as Python 2 would have (protocol 2, str as byte strings)."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(_py2ify(obj))
    path.write_bytes(buf.getvalue())


# Archives

_FIXED_DATE = (2017, 3, 30, 12, 0, 0)  # fixed timestamps: the archives are byte-for-byte deterministic


def _write_zip(out: Path, root: Path, top: str, also: dict | None = None) -> None:
    """Zip ``root/top`` with ``top/`` as the single top-level folder (deterministic bytes). ``also``:
    {name inside the zip: folder elsewhere}, folders stored under that name as well."""
    tmp = out.with_name(out.name + ".tmp")
    folders = [(root / top, top), *((Path(src), name) for name, src in (also or {}).items())]
    with zipfile.ZipFile(tmp, "w") as zf:
        for base, name in folders:
            _zip_folder(zf, base, name)
    os.replace(tmp, out)


def _zip_folder(zf: zipfile.ZipFile, base: Path, name: str) -> None:
    for path in [base, *sorted(base.rglob("*"))]:
        arc = "/".join([name, *path.relative_to(base).parts])
        if path.is_dir():
            info = zipfile.ZipInfo(arc + "/", _FIXED_DATE)
            info.external_attr = (0o40755 << 16) | 0x10
            zf.writestr(info, b"")
        else:
            info = zipfile.ZipInfo(arc, _FIXED_DATE)
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes(), compresslevel=1)


def _write_targz(out: Path, root: Path, names) -> None:
    """tar.gz of ``root/name`` for each name, deterministic bytes."""
    import gzip

    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                               compresslevel=6) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name in names:
            top = root / name
            for path in [top, *sorted(top.rglob("*"))] if top.is_dir() else [top]:
                info = tarfile.TarInfo(path.relative_to(root).as_posix())
                info.mtime = 1490875200
                info.uname = info.gname = "colabkit"
                if path.is_dir():
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tf.addfile(info)
                else:
                    data = path.read_bytes()
                    info.size = len(data)
                    info.mode = 0o644
                    tf.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)


def _save_jpeg(img: np.ndarray, path: Path, quality: int = 90) -> None:
    from PIL import Image

    Image.fromarray(img, "RGB").save(path, format="JPEG", quality=quality)
