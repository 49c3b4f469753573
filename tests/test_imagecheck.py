"""Broken images in a data set are found once, right after extraction, not hours into training."""

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from colabkit import data, imagecheck


def encoded(fmt: str, seed: int, size=(40, 32)) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def broken_set(tmp_path):
    jpg, png = encoded("JPEG", 1), encoded("PNG", 2)
    bad_crc = bytearray(encoded("PNG", 3))
    bad_crc[len(bad_crc) // 2] ^= 0x55            # a byte inside the IDAT chunk: its CRC no longer matches
    files = {
        "faces/good.jpg": jpg,
        "faces/good.png": png,
        "faces/trailing.jpg": encoded("JPEG", 4) + b"\0" * 300,   # bytes after the end: still a good image
        "faces/cut.jpg": encoded("JPEG", 5)[:-400],               # truncated
        "faces/crc.png": bytes(bad_crc),
        "faces/empty.jpg": b"",
        "faces/notes.txt": b"",                                   # not an image: not checked
    }
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, blob in files.items():
            zf.writestr(name, blob)
    return archive, files


BAD = {"faces/cut.jpg", "faces/crc.png", "faces/empty.jpg"}


def test_each_kind_of_damage_is_one_training_would_die_on(tmp_path):
    """The three faults are real: PIL (as the notebooks' data sets open images) refuses each one and
    reads the others. (torchvision.io.decode_image 0.29 even crashes the process on the bad-CRC PNG.)"""
    _, files = broken_set(tmp_path)
    for name, blob in files.items():
        if name.endswith(".txt"):
            continue
        if name in BAD:
            with pytest.raises(OSError):
                with Image.open(io.BytesIO(blob)) as im:
                    im.convert("RGB")
        else:
            with Image.open(io.BytesIO(blob)) as im:
                assert im.convert("RGB").size == (32, 40)


def test_broken_images_stop_extraction_with_their_names(tmp_path):
    archive, _ = broken_set(tmp_path)
    dest = tmp_path / "data"
    with pytest.raises(data.CorruptFileError) as err:
        data.extract(archive, dest, progress=False)
    msg = str(err.value)
    print(msg)
    assert "3 of the 6 images from faces.zip" in msg
    assert "faces/cut.jpg: cannot be decoded" in msg and "truncated" in msg
    assert "faces/crc.png: bad CRC in its IDAT chunk" in msg and "faces/empty.jpg: empty file (0 bytes)" in msg
    assert "trailing" not in msg and "good" not in msg
    assert "fetch it again" in msg and "bad_images='skip'" in msg
    marker = dest / ".faces.zip.extracted.json"
    info = json.loads(marker.read_text())
    assert info["images"]["checked"] == 6 and {b[0] for b in info["images"]["bad"]} == BAD
    # Run again: the marker says so at once (no second extraction, no second scan).
    stamp = (dest / "faces" / "good.jpg").stat().st_mtime_ns
    calls = []
    real_scan = imagecheck.scan
    imagecheck.scan = lambda *a: calls.append(a) or real_scan(*a)
    try:
        with pytest.raises(data.CorruptFileError):
            data.extract(archive, dest, progress=False)
    finally:
        imagecheck.scan = real_scan
    assert calls == [] and (dest / "faces" / "good.jpg").stat().st_mtime_ns == stamp


def test_skip_moves_them_aside_and_lists_them(tmp_path, capsys):
    archive, _ = broken_set(tmp_path)
    dest = tmp_path / "data"
    data.extract(archive, dest, progress=False, bad_images="skip")
    out = capsys.readouterr().out
    assert "Skipping 3 unreadable image(s)" in out and "faces/cut.jpg" in out
    left = sorted(p.name for p in (dest / "faces").iterdir())
    assert left == ["good.jpg", "good.png", "notes.txt", "trailing.jpg"]
    assert sorted(p.name for p in (dest / ".bad-images" / "faces").iterdir()) == ["crc.png", "cut.jpg", "empty.jpg"]
    info = json.loads((dest / ".faces.zip.extracted.json").read_text())
    assert set(info["images"]["skipped"]) == BAD
    data.extract(archive, dest, progress=False)      # later sessions: nothing left to stop for
    assert "Skipping" not in capsys.readouterr().out


def test_an_extraction_marked_before_the_check_existed_is_checked_once(tmp_path):
    archive, _ = broken_set(tmp_path)
    dest = tmp_path / "data"
    data.extract(archive, dest, progress=False, bad_images="skip")
    marker = dest / ".faces.zip.extracted.json"
    info = json.loads(marker.read_text())
    for name in info["images"]["skipped"]:                      # as an older colabkit left it
        (dest / ".bad-images" / name).rename(dest / name)
    del info["images"]
    marker.write_text(json.dumps(info))
    with pytest.raises(data.CorruptFileError, match="3 of the 6 images"):
        data.extract(archive, dest, progress=False)
    assert "images" in json.loads(marker.read_text())


def test_bad_images_option_is_checked(tmp_path):
    archive, _ = broken_set(tmp_path)
    with pytest.raises(ValueError, match="'stop' or 'skip'"):
        data.extract(archive, tmp_path / "d", progress=False, bad_images="ignore")


def test_a_large_good_jpeg_is_passed_without_decoding(tmp_path, monkeypatch):
    path = tmp_path / "big.jpg"
    path.write_bytes(encoded("JPEG", 7, size=(600, 500)))
    monkeypatch.setattr(imagecheck, "_decodes", lambda p: pytest.fail("decoded a good JPEG"))
    assert imagecheck.problem(path) is None
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    monkeypatch.undo()
    assert "truncated" in imagecheck.problem(path)
