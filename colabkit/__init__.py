"""colabkit: the plumbing behind the GAN paper course on Google Colab.

Drive checkpoints and exact resume across Colab's 90-minute and 12-hour limits, GPU detection
and precision choice, TensorBoard, data set downloads and stand-ins, and GAN metrics. The papers
themselves live in the notebooks.
"""

import importlib

from . import dist
from .board import image_grid, plot_history, show, show_images, tensorboard
from .checkpoint import Checkpointer, DriveUnavailable
from .config import settings
from .env import (
    DeviceInfo,
    DriveMountError,
    NoGPUError,
    Precision,
    Run,
    SetupError,
    detect_device,
    mount_drive,
    setup,
)
from .flags import in_colab, smoke_mode
from .lease import LeaseHeld, LeaseLost
from .loader import ResumableLoader
from .loop import Interrupted, Loop, State
from .state import CheckpointError, ConfigMismatch, assert_identical, unwrap
from .store import LocalStore, StoreError, open_store

__version__ = "0.1.0"


def __getattr__(name):
    # data and metrics pull in heavier imports (gdown, scipy): load them on first use.
    if name in ("data", "metrics", "loopback"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'colabkit' has no attribute {name!r}")

__all__ = [
    "CheckpointError", "Checkpointer", "ConfigMismatch", "DeviceInfo", "DriveMountError", "DriveUnavailable",
    "Interrupted", "LeaseHeld", "LeaseLost",
    "LocalStore", "Loop", "NoGPUError", "Precision", "ResumableLoader", "Run", "SetupError", "State",
    "StoreError", "assert_identical", "data", "detect_device", "dist", "image_grid", "in_colab", "loopback",
    "metrics", "mount_drive", "open_store", "plot_history", "settings", "setup", "show", "show_images", "smoke_mode",
    "tensorboard", "unwrap",
]
