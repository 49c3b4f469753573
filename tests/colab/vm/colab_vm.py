"""What Colab's kernel does before a notebook's first cell, for the kernel tests (tests/colab/).

Imported by the kernel's startup (IPKernelApp.exec_lines): the working folder becomes the folder that
plays /content (COLABVM_CONTENT), `google.colab` is imported, and colabkit.env's two /content paths
(DRIVE_MOUNT, COLAB_WORK) are pointed into that folder as soon as the install cell's colabkit is
imported. That is the one difference from Colab: the tests share a machine (and CI has no root), so
they cannot own /content itself.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from pathlib import Path

CONTENT = Path(os.environ["COLABVM_CONTENT"])


class _ContentPaths(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "colabkit.env":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            assert module.DRIVE_MOUNT == "/content/drive" and module.COLAB_WORK == "/content/colabkit"
            module.DRIVE_MOUNT = str(CONTENT / "drive")
            module.COLAB_WORK = str(CONTENT / "colabkit")

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _ContentPaths())
os.chdir(CONTENT)
(CONTENT.parent / "kernel.pid").write_text(str(os.getpid()))

import google.colab  # noqa: E402,F401 - as Colab's kernel does
