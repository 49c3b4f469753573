"""google.colab.drive as the tests need it: mount() with Colab's signature exposes a MyDrive folder that
outlives the VM (COLABVM_DRIVE, a folder of the test's, not inside the folder that plays /content)."""

from __future__ import annotations

import os
from pathlib import Path

mounts: list[dict] = []


def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
    mounts.append({"mountpoint": str(mountpoint), "force_remount": force_remount, "timeout_ms": timeout_ms,
                   "readonly": readonly})
    persistent = Path(os.environ["COLABVM_DRIVE"])
    persistent.mkdir(parents=True, exist_ok=True)
    point = Path(mountpoint)
    mydrive = point / "MyDrive"
    if mydrive.is_symlink() and not force_remount:
        print(f"Drive already mounted at {point}; to attempt to forcibly remount, call "
              f"drive.mount(\"{point}\", force_remount=True).")
        return
    if point.exists() and any(p.name != "MyDrive" for p in point.iterdir()):
        raise ValueError("Mountpoint must not already contain files")
    point.mkdir(parents=True, exist_ok=True)
    if mydrive.is_symlink():
        mydrive.unlink()
    mydrive.symlink_to(persistent, target_is_directory=True)
    print(f"Mounted at {point}")


def flush_and_unmount(timeout_ms=24 * 3600 * 1000):
    point = Path(mounts[-1]["mountpoint"]) if mounts else None
    if point is None or not (point / "MyDrive").is_symlink():
        raise ValueError("Drive is not mounted")
    (point / "MyDrive").unlink()
    print("All changes made in this colab session should now be visible in Drive.")
