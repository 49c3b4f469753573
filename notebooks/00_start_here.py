# ---
# jupyter:
#   accelerator: GPU
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,accelerator,colab
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/open-gan-course/gan-papers/blob/main/notebooks/00_start_here.ipynb)
#
# # 00 · Start here: Colab, Drive, TensorBoard, images, and a training run that survives a disconnect
#
# This course grew out of a learner's blog. They wanted to train GANs, but on their laptop a CycleGAN run
# got through only about 20 epochs in three days before they stopped it. They then tried Google Colab's
# free GPU and gave up on it too. Every file had to go through Google Drive, a notebook left alone for
# about 90 minutes was disconnected, and no machine lived longer than 12 hours, while CycleGAN's
# schedule is 200 epochs. They also wrote about watching training in TensorBoard and about reading and
# writing JPEG and PNG files.
#
# Those complaints were fair, and this notebook answers them one by one. It is the one lesson that
# reproduces no paper; the three paper notebooks (BEGAN, CycleGAN, StackGAN) rely on everything
# shown here.
#
# 1. **What Colab gives and takes away**: a free GPU, on a machine that forgets everything.
# 2. **Drive and the setup table**: where the run lives, which GPU you got, which precision it trains in.
# 3. **TensorBoard in the notebook**, and an inline alternative.
# 4. **Reading and writing images**: value ranges, channel order, and why JPEG is not PNG.
# 5. **A tiny GAN trained with the resumable loop**: we cut it off on purpose (a simulated disconnect,
#    then an Interrupt) and check that it ends with exactly the same weights as a run that never stopped.
#
# The whole notebook takes a minute or two on a GPU. With `ALLOW_CPU = True` it also runs on a CPU, in
# about ten minutes (it trains the tiny GAN three times).

# %%
# Colab only: install the course's helper package from this repository (torch is already on Colab).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "colabkit[metrics] @ git+https://github.com/open-gan-course/gan-papers@main"], check=True)

# %% [markdown]
# The cell above is the first cell of every notebook in the course. It runs only inside Colab.
# It installs `colabkit` from this course's GitHub repository. It never installs from the package
# index, because an unrelated package there is also called `colabkit`. It leaves Colab's own torch
# alone: reinstalling torch would download gigabytes and could break CUDA.
#
# ## Settings
# Every notebook has a single settings cell, near the top. `SMOKE` is on when the environment variable
# `COLABKIT_SMOKE=1` is set; the tests and CI set it. Smoke mode shrinks every size so that the whole
# notebook runs in seconds on a CPU. It still goes through the same loading, checkpoint and resume code
# as a full run.

# %%
import copy
import os
import shutil
import signal
import threading
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision.io import decode_jpeg, decode_png, encode_jpeg, encode_png, read_file, read_image
from torchvision.utils import save_image

import colabkit as ck

SMOKE = ck.smoke_mode()

SEED = 0                  # one seed for the initial weights, the noise and the data order
N_PER_DOMAIN = 60         # stand-in images per domain (a look-alike of CycleGAN's horse2zebra set)
STANDIN_SIZE = 256        # their size on disk: 256×256 JPEGs, like horse2zebra
IMAGE_SIZE = 32           # the tiny GAN works at 32×32 (the paper notebooks use 64 to 256)
BATCH_SIZE = 32           # images per training step
Z_DIM = 64                # length of the noise vector z fed to the generator
WIDTH = 64                # channels of the networks' widest layer
LR = 2e-4                 # Adam's learning rate, and its betas, as in DCGAN
BETAS = (0.5, 0.999)
TOTAL_STEPS = 1500        # training steps of the tiny GAN
SAVE_EVERY_STEPS = 100    # checkpoint every this many steps as well (the real default is every 10 minutes)
LOG_EVERY = 25            # average the losses over this many steps before recording them
SAMPLE_EVERY = 500        # write a sample grid to TensorBoard every this many steps
DISCONNECT_AT = 1050      # the simulated disconnect: session 1's VM dies just before this step
INTERRUPT_AT = 700        # the simulated Interrupt: "pressed" during this step
ALLOW_CPU = False         # True: train on the CPU when no GPU is attached (this notebook's GAN is small enough)

if SMOKE:
    N_PER_DOMAIN = 9
    IMAGE_SIZE = 16
    BATCH_SIZE = 6        # 18 images / 6 = 3 steps per epoch, so the resume lands mid-epoch
    WIDTH = 32
    TOTAL_STEPS = 60
    SAVE_EVERY_STEPS = 10
    LOG_EVERY = 5
    SAMPLE_EVERY = 20
    DISCONNECT_AT = 45
    INTERRUPT_AT = 23

assert 0 < INTERRUPT_AT < TOTAL_STEPS and 0 < DISCONNECT_AT < TOTAL_STEPS

# cfg: every name this cell assigns above, collected from the cell's own code by ck.settings, so a
# setting cannot be left out. Each checkpoint records cfg; a later session whose values differ stops
# with the list. Only the speed-only settings below may change between sessions: they change how fast
# it trains, never what it computes.
cfg = ck.settings(speed_only=[
    "ALLOW_CPU",    # only whether the slow CPU may be used: where it trains, as when a resume lands on another GPU
])

# %% [markdown]
# ## 1. What Colab gives and takes away
#
# **Colab gives you**
# * a GPU for free: usually a **T4** (16 GB); on paid plans an L4, A100, H100 or G4;
# * Python with torch, torchvision, TensorBoard and the rest already installed;
# * a fast local disk under `/content`;
# * **Google Drive**, mounted at `/content/drive`. Drive **survives** everything below.
#
# **Colab takes away**
# * the machine (a VM) after **about 60 to 90 minutes without interaction** with the page: an *idle
#   disconnect* (Google publishes no exact figure);
# * the machine after **at most about 12 hours** in any case (24 on Pro, and nothing is guaranteed);
# * **everything under `/content`** when the VM goes: your files, the packages you installed, running
#   processes;
# * some speed, for Drive: a file reaches Drive some time after you close it, and reading thousands of
#   small files from Drive is very slow.
#
# The consequence: a long training run **must** write its state to Drive regularly. After a disconnect
# you reconnect, press **Run all**, and the notebook must continue from the newest state on Drive on
# its own, without you typing a step number anywhere. Everything in the course is built around that.
#
# How long is long? CycleGAN trains for 200 epochs, each of 1,334 steps at batch size 1 (one per zebra
# image; the set has 1,067 horses and 1,334 zebras). That reportedly takes one to two days on a GTX 1080.
# A free T4 is in the same class, so we assume 9 minutes per epoch: 30 hours, far longer than any VM
# lives. The cell below plays this run out over four realistic sessions. In the first, the tab is left
# alone and disconnects after 1.5 hours; the next two run into the 12-hour limit; the fourth starts the
# next day. Without checkpoints each session starts again at epoch 0. With a checkpoint on Drive every
# 10 minutes, each session continues where the previous one saved.

# %%
EPOCHS = 200              # CycleGAN's schedule
MIN_PER_EPOCH = 9.0       # assumed minutes per horse2zebra epoch on a free T4 (an estimate, not a measurement)
SAVE_EVERY_MIN = 10       # colabkit's default checkpoint interval
STARTUP_MIN = 5           # reconnect, mount Drive, copy the data set, build the networks
SESSIONS = [              # (start hour, end hour, why it ended)
    (0.0, 1.5, "idle timeout"),
    (2.0, 14.0, "12-hour limit"),
    (15.0, 27.0, "12-hour limit"),
    (38.0, 50.0, "12-hour limit"),
]


def play_out(checkpoints: bool):
    """Epochs completed, minute by minute, over the sessions above."""
    hours, epochs, lost_min = [], [], []
    on_drive = 0.0                                   # epochs in the newest checkpoint on Drive
    for start, end, _ in SESSIONS:
        done = on_drive if checkpoints else 0.0      # a fresh VM knows only what Drive holds
        since_save = 0
        for minute in range(int(start * 60), int(end * 60) + 1):
            training = minute - start * 60 >= STARTUP_MIN and done < EPOCHS
            if training:
                done = min(EPOCHS, done + 1 / MIN_PER_EPOCH)
                since_save += 1
                if checkpoints and (since_save >= SAVE_EVERY_MIN or done >= EPOCHS):
                    on_drive, since_save = done, 0
            hours.append(minute / 60)
            epochs.append(done)
        lost_min.append(since_save if done < EPOCHS else 0)
        hours.append(np.nan)                         # a gap in the line between sessions
        epochs.append(np.nan)
    return np.array(hours), np.array(epochs), lost_min


fig, ax = plt.subplots(figsize=(9, 3.4))
for start, end, why in SESSIONS:
    ax.axvspan(start, end, color="tab:blue", alpha=0.08)
    ax.text((start + end) / 2, EPOCHS * 1.02, why, ha="center", va="bottom", fontsize=8)
for checkpoints, style, label in [(False, "tab:red", "no checkpoints: every session starts at epoch 0"),
                                  (True, "tab:green", f"checkpoint on Drive every {SAVE_EVERY_MIN} min")]:
    h, e, lost = play_out(checkpoints)
    ax.plot(h, e, color=style, label=label)
    print(f"{label}: best {np.nanmax(e):.0f} of {EPOCHS} epochs; minutes lost per disconnect {lost}")
ax.axhline(EPOCHS, color="gray", lw=0.8, ls="--")
ax.set_xlabel("hours since the first session started")
ax.set_ylabel("epochs completed")
ax.set_ylim(0, EPOCHS * 1.15)
ax.set_title("A 200-epoch CycleGAN run cut into Colab sessions (shaded)", fontsize=10)
ax.legend(loc="center right", fontsize=8)
fig.tight_layout()
ck.show(fig)

_, e_plain, _ = play_out(False)
_, e_ckpt, lost_ckpt = play_out(True)
assert np.nanmax(e_plain) < EPOCHS            # no single VM lives long enough for the whole run
assert np.nanmax(e_ckpt) == EPOCHS            # four sessions finish it when each continues the last
assert max(lost_ckpt) <= SAVE_EVERY_MIN       # a disconnect costs at most one checkpoint interval

# %% [markdown]
# Two things to take from the figure. Without checkpoints, **no** session can finish: the best one
# reaches about 80 epochs and then loses all of it. With checkpoints, each disconnect costs at most
# one checkpoint interval (10 minutes here), plus the few minutes it takes to start again.
#
# What has to be saved so that a run can *continue* rather than merely restart from its weights? The
# weights of every network, but also the optimizers' moment estimates, the learning-rate schedules, the
# mixed-precision scaler, the position in the data (the epoch and the batch within it), the random
# number generators, and any training variable the paper keeps (BEGAN's $k_t$, CycleGAN's image pool).
# Leave any of these out and the run after a resume drifts away from the one that was cut off.
# `colabkit` saves all of them, and Section 5 checks this bit for bit.
#
# ## 2. Google Drive and the setup table
#
# In Colab, mounting Drive takes two lines. A pop-up asks you to allow access; allow everything it asks
# for:
#
# ```python
# from google.colab import drive
# drive.mount("/content/drive")          # your Drive is now the folder /content/drive/MyDrive
# ```
#
# You never need to write this yourself: `ck.setup` does it, and mounts Drive again after a reconnect.
# The mount needs you at the keyboard, so after a reconnect press **Run all** and accept the pop-up.
# Outside Colab (in Jupyter on your own machine, in CI, or as a script) nothing is mounted. The run then
# lives in `runs/` inside the repository, or wherever the environment variable `COLABKIT_HOME` points.
#
# `ck.setup(name, config)` does five things. It mounts Drive, creates the run's folder, picks the device
# and the precision, seeds the random generators, and prints a table. `config` is a plain dict of the
# settings: `cfg`, which `ck.settings()` collected from every name the settings cell assigns (so none can
# be forgotten). It is saved with every checkpoint, and a later session whose settings differ stops with a
# list of the ones that changed (so a run is never continued with the wrong settings by accident).
#
# This notebook also asks for deterministic algorithms: we are going to compare two runs bit for bit,
# and some fast GPU kernels add numbers in a different order on every call. The paper notebooks leave
# this off, because it costs speed. (cuBLAS needs the environment variable below, set before its first use,
# to be deterministic too.)

# %%
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

run = ck.setup("start-here", cfg, allow_cpu=ALLOW_CPU or None, deterministic=True)

# %% [markdown]
# Row by row:
#
# * **device**: the GPU Colab gave you (for example `Tesla T4`, `NVIDIA L4`, `NVIDIA A100-SXM4-40GB`),
#   or the CPU.
# * **GPU memory**: how much fits on it. A T4 has about 15 GB usable, enough for every model in this
#   course at the papers' batch sizes.
# * **compute capability**: the GPU's generation as NVIDIA numbers it: 7.5 for a T4, 8.0 for an A100,
#   8.9 for an L4, 9.0 for an H100. It decides the precision.
# * **precision**: the number format used for the heavy arithmetic; see below.
# * **environment**, **smoke mode**: Colab or local, and whether everything has been shrunk.
# * **checkpoints + logs**: the run's folder that **persists**, `MyDrive/colabkit/<run name>/` in Colab.
#   Each training loop gets a subfolder there, with `checkpoints/` (the 3 newest, each with a SHA-256
#   checksum) and `tb/` (a copy of the TensorBoard files).
# * **local scratch**: a folder on the VM's fast disk (`/content/colabkit/<run name>`). TensorBoard writes
#   here, and the files are copied to Drive with every checkpoint. It is **lost** on disconnect; nothing
#   in it is needed to resume.
# * **data sets**: where archives are extracted, also on the VM's disk (Drive is slow with thousands of
#   small files).
# * **archive cache**: a folder on Drive that keeps each downloaded archive, so the next session copies
#   it instead of downloading it again.
# * **seed**: the seed of everything random.
# * **resuming**: for each training loop that already has a checkpoint here, the step it will continue
#   from; "no: a new run" the first time.
#
# **Precision.** There are three choices: 32-bit floats (fp32) everywhere, or *mixed precision*, where
# most matrix products run in a 16-bit format, roughly twice as fast and with half the memory traffic.
# The 16-bit formats differ in what they give up:
#
# * **bf16** (bfloat16) keeps fp32's exponent range (up to about $3\times10^{38}$, down to about
#   $10^{-38}$) and gives up precision: about 3 significant digits. Gradients neither overflow nor
#   vanish. GPUs with compute capability **8.0 or newer** (A100, L4, H100) compute it fast, so setup picks
#   it there.
# * **fp16** (half) keeps a little more precision, but its range ends at 65,504, and numbers below about
#   $6\times10^{-8}$ become zero. Small gradients therefore *underflow*: they become 0 and the network
#   stops learning. The fix is a **GradScaler**. It multiplies the loss by a large factor (say $2^{16}$)
#   before `backward()`, so the gradients are large enough to be represented, and divides them by it
#   again before the optimizer step. When a step overflows to `inf`, it skips the step and lowers the
#   factor. The T4 (compute capability 7.5) is fast in fp16 and slow in bf16, so setup picks
#   **fp16 + GradScaler** there.
# * **fp32** on a CPU, where 16-bit arithmetic brings no speed.
#
# A notebook never tests which case it is in. It always writes the same two lines,
# `with run.precision.autocast():` around the forward pass and `scaler = run.precision.make_scaler()`.
# The scaler is simply switched off when it is not needed.

# %%
print("device:", run.device, "| precision:", run.precision.name, "| autocast dtype:", run.precision.dtype)
for dtype in (torch.float32, torch.bfloat16, torch.float16):
    fi = torch.finfo(dtype)
    small, big = torch.tensor([1e-8, 7e4]).to(dtype).tolist()
    print(f"{str(dtype):15} max {fi.max:9.3g}  smallest normal {fi.tiny:9.3g}  eps {fi.eps:8.2g}   "
          f"1e-8 -> {small:.3g}   70000 -> {big:.6g}")
assert torch.tensor(1e-8).half().item() == 0.0          # fp16: a small gradient underflows to zero
assert torch.tensor(1e-8).bfloat16().item() != 0.0      # bf16 keeps fp32's range
assert torch.tensor(7e4).half().isinf()                 # fp16 overflows above 65,504

scaler = run.precision.make_scaler()
print("GradScaler enabled:", scaler.is_enabled())
assert scaler.is_enabled() == (run.precision.name == "fp16")
with run.precision.autocast():
    y = torch.nn.Linear(8, 8).to(run.device)(torch.randn(4, 8, device=run.device))
print("a Linear layer's output under autocast:", y.dtype)
assert y.dtype == (run.precision.dtype or torch.float32)

# %% [markdown]
# **No GPU?** If the runtime has no GPU, which is Colab's default for a new notebook, `ck.setup` stops with a
# `ck.NoGPUError`. Its message says how to get one: *Runtime → Change runtime type → T4 GPU → Save*, then
# *Run all*. The paper notebooks would take weeks on a CPU, so they do not fall back to it silently. To
# train on the CPU anyway, set `ALLOW_CPU = True` in the settings cell, or the environment variable
# `COLABKIT_ALLOW_CPU=1`. (Smoke mode implies it.) This notebook's GAN is tiny, so it is fine on a CPU.
#
# Here is the error as you would see it:

# %%
try:
    info = ck.detect_device(allow_cpu=False)
    print(f"This runtime has a GPU ({info.name}), so setup raises no error.")
except ck.NoGPUError as err:
    print(f"ck.NoGPUError: {err}")
    assert "Change runtime type" in str(err) and "ALLOW_CPU" in str(err)

# %% [markdown]
# ## 3. TensorBoard in the notebook
#
# TensorBoard draws the curves of a running training job in the browser. It reads *event files* that
# training writes. In PyTorch a `SummaryWriter` writes them; `add_scalar(tag, value, step)` adds one
# point. Here are a few points written by hand, and read back the way TensorBoard reads them:

# %%
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

hello_dir = run.work / "tb" / "hello"
shutil.rmtree(hello_dir, ignore_errors=True)         # a fresh demo each time the cell runs
writer = SummaryWriter(str(hello_dir))
for step in range(20):
    writer.add_scalar("hello/sine", float(np.sin(step / 3)), step)
writer.close()

events = EventAccumulator(str(hello_dir))
events.Reload()
points = events.Scalars("hello/sine")
print(f"{len(points)} points in {[p.name for p in hello_dir.iterdir()]}; first: step {points[0].step}, "
      f"value {points[0].value:.3f}")
assert [p.step for p in points] == list(range(20))

# %% [markdown]
# In the course you rarely write a `SummaryWriter` yourself. The training loop of Section 5 does it:
# `loop.log(loss_D=...)` records scalars, `loop.log_images(...)` records image grids. It writes the event
# files on the VM's local disk, because Drive does not reliably sync a file that keeps growing for
# hours, and copies them to the run's folder on Drive with every checkpoint. When a session resumes, it
# copies them back and reopens the writer with `purge_step` set to the step it resumed at.
# TensorBoard then drops whatever the dead session logged after its last checkpoint, so the curves carry
# on without doubling back.
#
# To *show* TensorBoard inside a Colab notebook, you run two IPython "magic" commands in a cell:
#
# ```
# %load_ext tensorboard
# %tensorboard --logdir /content/colabkit/start-here/tb
# ```
#
# `ck.tensorboard(logdir)` runs exactly those. Outside a notebook, and in smoke mode, it only prints
# the command to run in a terminal: `tensorboard --logdir ...`, then open http://localhost:6006/. Start it
# *before* training: the panel refreshes itself every 30 seconds, so it fills in as the loop in Section 5
# logs. If it shows an old panel ("Reusing TensorBoard on port 6006"), delete `/tmp/.tensorboard-info` and
# run the cell again, or pass another `port=`.

# %%
tb_command = ck.tensorboard(run.work / "tb")
assert tb_command.startswith("tensorboard --logdir ")

# %% [markdown]
# The inline alternative, which also works with no TensorBoard at all, is `ck.plot_history(loop.history,
# tags)`. It draws the same curves with matplotlib from the history the loop keeps inside its checkpoint,
# so the curves survive a disconnect even if the event files do not. Section 5 uses both.
#
# ## 4. Reading and writing images
#
# ### Getting the images onto the VM
# A data set lives on Drive as **one archive**. Each session copies it to the VM's local disk and
# extracts it there: reading thousands of small files straight from Drive is painfully slow. The paper
# notebooks download the real data set once; `ck.data.fetch` keeps the archive in the cache folder on
# Drive and, in every later session, copies it from there instead of downloading it again.
#
# This notebook needs no real data set. `ck.data.standin_unpaired` paints a small look-alike of
# CycleGAN's horse2zebra set: 256×256 JPEGs in `trainA/` (warm stripes, a brown blob) and `trainB/` (cool
# stripes, a striped blob). Its archive is "downloaded" from a `file://` URL by the same `fetch` →
# `extract` path a real data set takes.

# %%
name = f"start-here-shapes-{N_PER_DOMAIN}"
archive_name = f"{name}.zip"
if not (run.cache / archive_name).exists() and not (run.data_dir / archive_name).exists():
    ck.data.standin_unpaired(run.work / "standin", name=name, n_train_a=N_PER_DOMAIN, n_train_b=N_PER_DOMAIN,
                             n_test_a=0, n_test_b=0, size=STANDIN_SIZE, seed=SEED)
archive = ck.data.fetch((run.work / "standin" / archive_name).as_uri(), archive_name,
                        cache_dir=run.cache, dest_dir=run.data_dir)
root = ck.data.extract(archive, run.data_dir, expect=[f"{name}/trainA", f"{name}/trainB"]) / name
files = sorted(root.glob("train[AB]/*.jpg"))
print(f"{len(files)} JPEGs under {root}; the archive is cached in {run.cache}")
assert len(files) == 2 * N_PER_DOMAIN

# %% [markdown]
# ### Three ways to read a JPEG
# **PIL** (Pillow) is the classic image library. `np.asarray` turns an image into an array laid out
# **H × W × C** (height, width, channels; "channels last"). That is also what matplotlib's `imshow`
# expects. Note that PIL's `.size` is *(width, height)*, the other way round.
#
# **torchvision** reads straight into a tensor laid out **C × H × W** ("channels first"). That is what
# every PyTorch convolution expects, and a batch adds a fourth axis in front: **N × C × H × W**.
# `read_image` guesses the format from the file's bytes; `decode_jpeg(read_file(path))` does the same in
# two explicit steps (and `decode_jpeg(..., device="cuda")` decodes on the GPU).
#
# All three give **uint8** values from 0 to 255.

# %%
path = files[0]
with Image.open(path) as im:
    print(f"PIL:          format {im.format}, mode {im.mode}, size (W, H) = {im.size}")
    a_hwc = np.array(im.convert("RGB"))          # a copy: PIL's own buffer is read-only
x_chw = read_image(str(path))
x_chw2 = decode_jpeg(read_file(str(path)))
print(f"numpy (PIL):  shape {a_hwc.shape} = (H, W, C), dtype {a_hwc.dtype}, values {a_hwc.min()}..{a_hwc.max()}")
print(f"torchvision:  shape {tuple(x_chw.shape)} = (C, H, W), dtype {x_chw.dtype}")
assert a_hwc.shape == (STANDIN_SIZE, STANDIN_SIZE, 3) and x_chw.shape == (3, STANDIN_SIZE, STANDIN_SIZE)
assert torch.equal(x_chw, x_chw2)

# The same pixels, once the axes are put in the same order (both libraries decode with libjpeg).
from_pil = torch.from_numpy(a_hwc).permute(2, 0, 1)          # HWC -> CHW
d = (from_pil.int() - x_chw.int()).abs()
print(f"PIL vs torchvision decode: max |difference| {d.max().item()}, mean {d.float().mean().item():.3f}")
assert d.float().mean() < 1.0    # decoders may round differently in a few pixels, never by much

# %% [markdown]
# ### Value ranges: uint8, [0, 1] and [−1, 1]
# Three conventions meet in every GAN notebook:
#
# | where | dtype | range |
# | --- | --- | --- |
# | files, PIL, `read_image` | `uint8` | 0 … 255 |
# | `ToTensor()`, `save_image`, `imshow` of floats | `float32` | 0 … 1 |
# | a GAN's generator (it ends in $\tanh$) and therefore its training data | `float32` | −1 … 1 |
#
# So real images are scaled with $x = \frac{u}{127.5} - 1$ before they meet the discriminator, and
# generated ones come back with $u = \mathrm{round}\big(127.5\,(x + 1)\big)$. The most common bug is
# handing a [−1, 1] tensor to a function that expects [0, 1]. `save_image` then clips every negative
# value to 0 and half the picture turns black. Either map it first with `(x + 1) / 2`, or pass
# `normalize=True, value_range=(-1, 1)`. (`ck.show_images` expects [−1, 1].)

# %%
u = x_chw                                       # uint8, 0..255, C×H×W
x01 = u.float() / 255                           # float, 0..1
x_gan = u.float() / 127.5 - 1                   # float, -1..1: what the GAN sees
back = ((x_gan + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
print(f"0..1 range: {x01.min():.2f}..{x01.max():.2f}   GAN range: {x_gan.min():.2f}..{x_gan.max():.2f}")
assert torch.equal(back, u)                     # the round trip through [-1, 1] loses nothing

io_dir = run.work / "io"
io_dir.mkdir(exist_ok=True)
save_image((x_gan + 1) / 2, io_dir / "right.png")        # [-1, 1] mapped to [0, 1] first
save_image(x_gan, io_dir / "wrong.png")                  # [-1, 1] handed over as if it were [0, 1]
right, wrong = read_image(str(io_dir / "right.png")), read_image(str(io_dir / "wrong.png"))
print(f"saved correctly: exact = {torch.equal(right, u)};   saved from [-1, 1] directly: "
      f"{(wrong == 0).float().mean().item():.0%} of the values became 0")
assert torch.equal(right, u) and not torch.equal(wrong, u)

# %% [markdown]
# ### JPEG is lossy, PNG is not
# JPEG throws information away to make files small: it stores the colour at reduced resolution and
# rounds the fine detail of each 8×8 block. The `quality` setting (1 to 100) decides how much. PNG
# compresses without loss: what you read back is exactly what you wrote. For a GAN this matters in
# three places:
#
# * training data that comes as JPEG (horse2zebra, CelebA) already carries those artefacts; nothing to do
#   about it, but do not re-encode it again and again;
# * samples you save for evaluation (FID, Inception Score) should be **PNG**, or the metric also
#   measures the JPEG artefacts;
# * images you save to look at can be JPEG.
#
# Below, the same image is written as JPEG at four quality settings and as PNG, with both libraries,
# and read back:

# %%
def psnr(a, b):
    mse = (a.double() - b.double()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


rows = []
for quality in (95, 75, 50, 10):
    # torchvision: encode to bytes in memory, decode again
    data = encode_jpeg(u, quality=quality)
    rows.append((f"JPEG q={quality} (torchvision)", len(data), decode_jpeg(data)))
    # PIL: write a real file, read it back
    p = io_dir / f"q{quality}.jpg"
    Image.fromarray(a_hwc).save(p, quality=quality)
    rows.append((f"JPEG q={quality} (PIL)", p.stat().st_size, read_image(str(p))))
png_bytes = encode_png(u)
rows.append(("PNG (torchvision)", len(png_bytes), decode_png(png_bytes)))
Image.fromarray(a_hwc).save(io_dir / "pil.png")
rows.append(("PNG (PIL)", (io_dir / "pil.png").stat().st_size, read_image(str(io_dir / "pil.png"))))

print(f"{'format':28} {'bytes':>8} {'max |err|':>10} {'mean |err|':>11} {'PSNR dB':>8}")
print(f"{'raw uint8 pixels':28} {u.numel():8,}")
for label, nbytes, decoded in rows:
    err = (decoded.int() - u.int()).abs()
    print(f"{label:28} {nbytes:8,} {err.max().item():10} {err.float().mean().item():11.3f} {psnr(decoded, u):8.1f}")
    if label.startswith("PNG"):
        assert torch.equal(decoded, u), f"{label} must read back exactly"
    else:
        assert not torch.equal(decoded, u), f"{label} should have lost something"

# %% [markdown]
# Both PNGs come back identical to the original, pixel for pixel. Every JPEG comes back changed, a lot at
# low quality. Here is what quality 10 did, and where (the differences magnified 8 times):

# %%
low = {label: decoded for label, _, decoded in rows}["JPEG q=10 (PIL)"]
crop = (slice(None), slice(64, 192), slice(64, 192))
fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
for ax, img, title in [(axes[0], u[crop], "original (decoded JPEG)"),
                       (axes[1], low[crop], "saved again as JPEG q=10"),
                       (axes[2], ((low[crop].int() - u[crop].int()).abs() * 8).clamp(0, 255).to(torch.uint8),
                        "|difference| × 8")]:
    ax.imshow(img.permute(1, 2, 0).numpy())           # imshow wants H×W×C
    ax.set_title(title, fontsize=9)
    ax.axis("off")
fig.tight_layout()
ck.show(fig)

# %% [markdown]
# ## 5. A tiny GAN, trained with the resumable loop
#
# ### The model
# A GAN pits a generator $G$, which turns noise $z$ into an image, against a discriminator $D$, which
# outputs the logit of "this image is real". They play
#
# $$\min_G \max_D \; \mathbb{E}_{x \sim p_\text{data}}\big[\log D(x)\big]
#   + \mathbb{E}_{z \sim \mathcal{N}(0, I)}\big[\log\big(1 - D(G(z))\big)\big].$$
#
# In practice $D$ minimises the binary cross-entropy of real images labelled 1 and generated ones labelled 0,
#
# $$L_D = -\log D(x) - \log\big(1 - D(G(z))\big),$$
#
# and $G$ minimises the "non-saturating" loss $L_G = -\log D(G(z))$. It gives $G$ strong gradients
# early on, when $D$ easily rejects its samples. The networks are a miniature DCGAN: $G$ upsamples a
# 4×4 map with transposed convolutions to `IMAGE_SIZE` and ends in $\tanh$, so its images lie in [−1, 1];
# $D$ downsamples with strided convolutions. The paper notebooks follow the same pattern at full size.

# %% tags=["lib"]
import math

import torch
import torch.nn.functional as F
from torch import nn


class Generator(nn.Module):
    """G: z (z_dim) -> image (3 × size × size) in [-1, 1]."""

    def __init__(self, z_dim: int, size: int, width: int = 64):
        super().__init__()
        n_up = int(math.log2(size // 4))
        assert 4 * 2**n_up == size, "size must be 4 times a power of two"
        self.width = width
        self.project = nn.Sequential(nn.Linear(z_dim, width * 4 * 4), nn.BatchNorm1d(width * 4 * 4), nn.ReLU())
        layers, ch = [], width
        for _ in range(n_up):                      # each block doubles the resolution, halves the channels
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU()]
            ch //= 2
        layers += [nn.Conv2d(ch, 3, 3, 1, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z):
        return self.body(self.project(z).view(-1, self.width, 4, 4))


class Discriminator(nn.Module):
    """D: image (3 × size × size) -> one logit: "real" when positive."""

    def __init__(self, size: int, width: int = 64):
        super().__init__()
        n_down = int(math.log2(size // 4))
        layers, ch = [], 3
        for i in range(n_down):                    # each block halves the resolution
            out = width // 2 ** (n_down - 1 - i)
            layers += [nn.Conv2d(ch, out, 4, 2, 1), nn.LeakyReLU(0.2)]
            ch = out
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(ch * 4 * 4, 1))

    def forward(self, x):
        return self.body(x).view(-1)


def loss_D_fn(d_real, d_fake):
    """L_D = -log D(x) - log(1 - D(G(z))), from logits."""
    return (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
            + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))


def loss_G_fn(d_fake):
    """L_G = -log D(G(z)) (non-saturating), from logits."""
    return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))


def train_step(G, D, opt_G, opt_D, scaler, precision, x, z):
    """One GAN step: update D on real x and fake G(z), then G through the updated D."""
    with precision.autocast():
        fake = G(z)
        loss_D = loss_D_fn(D(x), D(fake.detach()))
    opt_D.zero_grad(set_to_none=True)
    scaler.scale(loss_D).backward()
    scaler.step(opt_D)
    with precision.autocast():
        loss_G = loss_G_fn(D(fake))
    opt_G.zero_grad(set_to_none=True)
    scaler.scale(loss_G).backward()
    scaler.step(opt_G)
    scaler.update()                                # once per step, after both optimizers
    return loss_D.detach(), loss_G.detach()


@torch.no_grad()
def sample(G, z):
    """G(z) with batch-norm in inference mode, leaving G in training mode afterwards."""
    G.eval()
    try:
        return G(z).float()
    finally:
        G.train()


class ImageFolderGAN(torch.utils.data.Dataset):
    """uint8 images (N, 3, S, S) held in memory -> float in [-1, 1], flipped left-right half the time."""

    draws_from = ("torch",)   # the random generators it uses: the loader seeds (and replays) only these

    def __init__(self, images_uint8):
        self.images = images_uint8

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        x = self.images[i].float() / 127.5 - 1
        if torch.rand(()) < 0.5:                   # random augmentation: replayed exactly after a resume
            x = x.flip(-1)
        return x


# %% [markdown]
# ### The data
# The stand-in JPEGs, decoded once, resized to `IMAGE_SIZE` with antialiasing and kept in memory as
# uint8. `ck.ResumableLoader` draws each epoch's order, and each batch's random flips, from
# (seed, epoch, batch index). So a run resumed in the middle of an epoch sees exactly the batches the
# uninterrupted run saw, without having to save the loader itself.

# %%
if run.device.type == "cpu":
    torch.set_num_threads(1)   # a network this small runs faster on one CPU thread than split across several

images = torch.stack([torchvision.transforms.functional.resize(read_image(str(f)), [IMAGE_SIZE, IMAGE_SIZE],
                                                                antialias=True) for f in files])
dataset = ImageFolderGAN(images)
print(f"data: {tuple(images.shape)} {images.dtype}; {len(dataset) // BATCH_SIZE} steps per epoch")
assert images.shape == (2 * N_PER_DOMAIN, 3, IMAGE_SIZE, IMAGE_SIZE) and images.dtype == torch.uint8
_ = ck.show_images(torch.stack([dataset[i] for i in range(min(16, len(dataset)))]), nrow=8,
                   title="training images (stand-ins), as the GAN sees them", size=5)


# %% [markdown]
# ### Everything a session builds
# When you reconnect after a disconnect, the new VM has nothing. **Run all** builds every object again
# from scratch: fresh networks, fresh optimizers, a fresh loader. `build_session()` below is exactly
# that. Then `run.loop(...)` looks in the run's folder on Drive. If a checkpoint is there, it loads
# everything into those fresh objects (weights, Adam's moments, the scaler, the fixed noise, the random
# generators, the step and the position in the data), and the first step it yields is the first step
# the dead session had not saved.
#
# Every object whose state changes during training is registered in `state={...}`. A checkpoint is
# only as complete as this dict. Plain values and tensors that belong to the training itself go into a
# `ck.State`; here that is the fixed noise $z_\text{fixed}$ used to draw comparable sample grids
# across the whole run.

# %%
def build_session(seed=SEED):
    """All that Run all builds on a fresh VM: networks, optimizers, scaler, extra state, loader."""
    torch.manual_seed(seed)                       # setup() seeds like this at the start of a session
    G = Generator(Z_DIM, IMAGE_SIZE, WIDTH).to(run.device)
    D = Discriminator(IMAGE_SIZE, WIDTH).to(run.device)
    opt_G = torch.optim.Adam(G.parameters(), lr=LR, betas=BETAS)
    opt_D = torch.optim.Adam(D.parameters(), lr=LR, betas=BETAS)
    scaler = run.precision.make_scaler()
    train = ck.State(z_fixed=torch.randn(16, Z_DIM))     # kept on the CPU; moved to the GPU when used
    loader = ck.ResumableLoader(dataset, batch_size=BATCH_SIZE, seed=seed)
    state = {"G": G, "D": D, "opt_G": opt_G, "opt_D": opt_D, "scaler": scaler, "train": train}
    return state, loader


def train_session(loop_name, *, vm_dies_before=None, interrupt_during=None):
    """One Colab session of training. vm_dies_before / interrupt_during cut it short on purpose."""
    state, loader = build_session()
    G, D, opt_G, opt_D, scaler, train = state.values()
    loop = run.loop(loop_name, total_steps=TOTAL_STEPS, loader=loader, state=state,
                    save_every_steps=SAVE_EVERY_STEPS, log_every=LOG_EVERY)
    for step, x in loop:
        if step == vm_dies_before:
            break                                 # the VM is gone: nothing after this line ever runs
        x = x.to(run.device, non_blocking=True)
        z = torch.randn(x.shape[0], Z_DIM, device=run.device)
        loss_D, loss_G = train_step(G, D, opt_G, opt_D, scaler, run.precision, x, z)
        loop.log(loss_D=loss_D, loss_G=loss_G)
        if loop.every(SAMPLE_EVERY):
            loop.log_images("samples", sample(G, train.z_fixed.to(run.device)))
        if step == interrupt_during:
            press_interrupt(loop)
    return loop, state


def press_interrupt(loop):
    """What Colab's Interrupt button does: send SIGINT to the Python process running the notebook."""
    if threading.current_thread() is threading.main_thread():
        signal.raise_signal(signal.SIGINT)
    else:                                         # signals reach only the main thread; call the handler
        loop._on_sigint(signal.SIGINT, None)


def snapshot(state):
    """A copy of every registered object's state and of torch's random generators, as they are now."""
    out = {"state": {k: copy.deepcopy(v.state_dict()) for k, v in state.items()}, "torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda_rng"] = torch.cuda.get_rng_state()
    return out


def start_demo_over(loop_name):
    """Delete a demo loop's checkpoints and logs, so that the demonstration starts at step 0 every time.
    (Never do this to a run you care about: those files are what lets it continue.)"""
    store = run.store.sub(loop_name)
    for f in store.list():
        store.delete(f)
    shutil.rmtree(run.work / "tb" / loop_name, ignore_errors=True)


# %% [markdown]
# ### The reference: one uninterrupted run
# The loop called `"train"` is the tiny GAN's real training. It is resumable like any other: if Colab
# disconnects you in the middle of it, **Run all** continues it, and once it is finished a later Run all
# restores the final weights instead of training again.

# %%
t0 = time.perf_counter()
loop_ref, state_ref = train_session("train")
ref = snapshot(state_ref)
G_ref = state_ref["G"]
n_G = sum(p.numel() for p in G_ref.parameters())
n_D = sum(p.numel() for p in state_ref["D"].parameters())
print(f"G: {n_G:,} parameters, D: {n_D:,} parameters; {loop_ref.step - (loop_ref.resumed_from or 0)} steps "
      f"trained in this session, in {time.perf_counter() - t0:.1f} s")
assert loop_ref.done and 1_000 < n_G < 5_000_000 and 1_000 < n_D < 5_000_000
final_losses = {tag: loop_ref.history[tag][-1][1] for tag in ("loss_D", "loss_G")}
assert all(np.isfinite(v) for v in final_losses.values()), final_losses

# %%
_ = ck.plot_history(loop_ref.history, ["loss_D", "loss_G"], title="the uninterrupted run (loop.history)")
_ = ck.show_images(sample(G_ref, state_ref["train"].z_fixed.to(run.device)), nrow=8,
                   title=f"G(z_fixed) after {TOTAL_STEPS} steps", size=5)

# %% [markdown]
# (In smoke mode, 60 steps on 16×16 images draw mostly noise. With the full settings the samples pick
# up the stand-ins' stripes, colours and blob, often of one domain only: a GAN this small readily
# collapses onto one of the two kinds of image.)
#
# ### A simulated disconnect
# Now the same training in a loop called `"disconnect"`, with a disconnect in the middle of it:
#
# 1. **Session 1** trains from step 0, saving a checkpoint every `SAVE_EVERY_STEPS` steps, and the VM dies
#    just before step `DISCONNECT_AT`. Nothing is saved at that moment: a dead VM saves nothing.
# 2. We throw every Python object away: the networks, the optimizers, the loader, the loop. That is all
#    a fresh VM lacks. (Only the run's folder remains, as Drive would.)
# 3. **Session 2** is `train_session("disconnect")` again: new objects, a new loop. The loop finds session
#    1's last checkpoint and says so, continues from its step, redoes the few steps that were lost, and
#    trains to the end.
#
# If the checkpoint holds everything, session 2 ends with **exactly** the weights of the uninterrupted
# run: not close, but equal bit for bit, Adam's moments and the random generator's state included.

# %%
start_demo_over("disconnect")
loop_1, _ = train_session("disconnect", vm_dies_before=DISCONNECT_AT)
loop_1.wait()                                     # let a checkpoint write in flight finish (see below)
saved = loop_1.ckpt.steps()
print(f"session 1 stopped before step {DISCONNECT_AT}; its last checkpoint was step {saved[-1]} "
      f"(checkpoints on 'Drive': {saved})")
assert loop_1.step == DISCONNECT_AT
del loop_1                                        # the VM is recycled: every Python object is gone

# %%
loop_2, state_2 = train_session("disconnect")     # session 2: Run all on a fresh VM
print(f"session 2 resumed at step {loop_2.resumed_from}, the step of session 1's last checkpoint; "
      f"it redid {DISCONNECT_AT - loop_2.resumed_from} lost step(s) and finished at step {loop_2.step}")
assert loop_2.resumed_from == saved[-1] == (DISCONNECT_AT // loop_2.save_every_steps) * loop_2.save_every_steps
assert loop_2.done

n = ck.assert_identical(ref, snapshot(state_2))
assert loop_2.history == loop_ref.history        # the logged curves match too
print(f"identical to the uninterrupted run: {n} tensors compared (weights, batch-norm statistics, Adam moments, "
      "scaler, z_fixed, RNG state), all equal bit for bit")

# %% [markdown]
# Real disconnects are harsher than this simulation. The VM can die *during* a checkpoint write. That
# is why a checkpoint is written under a temporary name and renamed only when complete, with a checksum
# recorded beside it. If the newest file is truncated anyway (Drive syncs late), the next session skips
# it with a warning and takes the one before. The course's tests kill a training process with SIGKILL at
# random moments, some of them inside a write, and check the same bit-for-bit equality.
#
# The curves agree as well. Here is `loss_D` from both runs: session 1's logged points up to the
# disconnect are in the checkpoint's history, and session 2 continues them from its checkpoint step.

# %%
fig, ax = plt.subplots(figsize=(6.5, 2.6))
steps_ref, values_ref = zip(*loop_ref.history["loss_D"])
steps_2, values_2 = zip(*loop_2.history["loss_D"])
ax.plot(steps_ref, values_ref, lw=4, alpha=0.35, label="uninterrupted")
ax.plot(steps_2, values_2, lw=1.2, color="black", label="disconnected, then resumed")
ax.axvline(DISCONNECT_AT, color="tab:red", ls=":", label="VM dies")
ax.axvline(loop_2.resumed_from, color="tab:green", ls="--", label="resumed from checkpoint")
ax.set_xlabel("step")
ax.set_ylabel("loss_D")
ax.legend(fontsize=8)
fig.tight_layout()
ck.show(fig)

# TensorBoard agrees too: the event files from both sessions read as one curve with no step twice.
# (TensorBoard's reader logs "Detected out of order event.step ... Purging expired events": that is
# session 2's purge_step dropping what session 1 logged after its last checkpoint.)
tb = EventAccumulator(str(run.work / "tb" / "disconnect"))
tb.Reload()
tb_steps = [e.step for e in tb.Scalars("loss_D")]
print(f"TensorBoard 'loss_D' of the disconnected run: {len(tb_steps)} points, steps {tb_steps[0]}..{tb_steps[-1]}")
assert tb_steps == sorted(set(tb_steps)) == [s for s, _ in loop_ref.history["loss_D"]]

# %% [markdown]
# ### Pressing Interrupt
# Colab's **Interrupt** button (■ next to a running cell; *Runtime → Interrupt execution*) sends the
# Python process a SIGINT. Normally that raises `KeyboardInterrupt` wherever the code happens to be,
# perhaps halfway through an optimizer step. While `run.loop` is running, it catches the signal instead.
# The current step finishes, a checkpoint is written (the cell waits for it), and the loop stops with
# `ck.Interrupted`, which says where the checkpoint is. Nothing is lost: Run all continues at exactly
# the next step. Pressing Interrupt a *second* time stops at once (a checkpoint already being written still completes).
#
# The cell below "presses" Interrupt from inside step `INTERRUPT_AT` by sending the same signal, then starts a
# new session as before.

# %%
start_demo_over("interrupt")
try:
    train_session("interrupt", interrupt_during=INTERRUPT_AT)
    raise AssertionError("the loop should have stopped with ck.Interrupted")
except ck.Interrupted as stop:
    print(f"ck.Interrupted: {stop}")

loop_3, state_3 = train_session("interrupt")
assert loop_3.resumed_from == INTERRUPT_AT + 1    # the interrupted step was finished and saved: nothing redone
ck.assert_identical(ref, snapshot(state_3))
print(f"resumed at step {loop_3.resumed_from}, finished at {loop_3.step}: identical to the uninterrupted run")

# %% [markdown]
# ### What a checkpoint holds
# A checkpoint is one file, `ckpt-<step, 9 digits>.pt`, holding a dict. It is loaded with
# `torch.load(..., weights_only=True)`, so it can only contain tensors, numbers, strings and containers
# of them; loading it never runs code. Here is the newest one of the `"disconnect"` loop, key by key:

# %%
def tensor_bytes(obj):
    """(number of tensors, bytes of tensor data) inside a nested object."""
    if isinstance(obj, torch.Tensor):
        return 1, obj.numel() * obj.element_size()
    items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else []
    counts = [tensor_bytes(v) for v in items]
    return sum(c for c, _ in counts), sum(b for _, b in counts)


payload, fname = loop_2.ckpt.load_latest()
print(f"{fname}: {len(loop_2.ckpt.store.read_bytes(fname)):,} bytes in {loop_2.ckpt.store.url}")
for key, value in payload.items():
    count, nbytes = tensor_bytes(value)
    if count:
        print(f"  {key:9} {count:4} tensors {nbytes:>10,} bytes")
        for sub, v in value.items():
            c, b = tensor_bytes(v)
            print(f"      {sub:8} {c:4} tensors {b:>10,} bytes   {type(v).__name__}")
    elif key == "history":
        print(f"  {key:9} " + ", ".join(f"{tag}: {len(points)} points" for tag, points in value.items()))
    else:
        print(f"  {key:9} {value!r}")
print("files in the checkpoint folder:", loop_2.ckpt.store.list())
assert payload["step"] == TOTAL_STEPS and set(payload["state"]) == set(state_2)
assert {"python", "numpy", "torch"} <= set(payload["rng"]) and payload["config"] == run.config
assert len(loop_2.ckpt.steps()) <= 3             # only the newest 3 are kept

# %% [markdown]
# * `state`: one entry per registered object. `G` and `D` hold the weights and batch-norm statistics;
#   `opt_G` and `opt_D` hold Adam's two moment estimates per weight, which is why they are twice the size
#   of the networks; `scaler` holds the GradScaler's factor (empty when it is off); `train` holds the `ck.State`.
# * `rng`: the states of Python's, NumPy's and torch's random generators (and CUDA's, on a GPU).
# * `config`: the settings it was trained with; `history`: the logged curves; `position`: epoch and
#   batch; `meta`: run name, loop name, time and torch version.
#
# On Drive the run's folder looks like this:

# %%
listing = run.store.list()
for entry in listing[:40]:
    print("  ", entry)
if len(listing) > 40:
    print(f"   ... and {len(listing) - 40} more")
assert any(e.startswith("train/checkpoints/ckpt-") for e in listing) and any("/tb/" in e for e in listing)

# %% [markdown]
# ## Where to go from here
# * **After a disconnect**: reconnect, *Run all*, accept the Drive pop-up. The table says "resuming: … from
#   step N", and the progress bar starts at N.
# * **To start a run over**: change its name in `ck.setup(...)`, or delete its folder under
#   `MyDrive/colabkit/`.
# * **Changed a setting mid-run?** The loop refuses to continue with different settings and lists the keys
#   that differ. Put them back, or pass `allow_config_change=[...]` to `run.loop` if you mean it.
# * **Drive is filling up?** Each loop keeps its 3 newest checkpoints (`keep=` changes that). Old runs can
#   be deleted from Drive's web page; empty the trash too.
#
# Next: **01 · BEGAN**, where a one-number control variable $k_t$ is part of the training state, and the
# checkpoint has to carry it too.
