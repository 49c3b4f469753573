"""What the process runs in and under which switches: smoke mode, Colab or not, notebook or script.

The bottom of colabkit's layers: it imports nothing of colabkit, so every module may ask it.
Callers that tests need to fool call these through the module (``flags.in_colab()``), so that
patching ``colabkit.flags.in_colab`` reaches them.
"""

from __future__ import annotations

import os
import sys


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def smoke_mode() -> bool:
    """True when COLABKIT_SMOKE is set: every notebook shrinks to a few steps on stand-in data."""
    return _flag("COLABKIT_SMOKE")


def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules or os.path.exists("/var/colab/hostname")


def in_notebook() -> bool:
    """True in a Jupyter kernel (figures can be shown inline), False in a script or a terminal IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ != "TerminalInteractiveShell"
