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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/open-gan-course/gan-papers/blob/main/notebooks/02_cyclegan.ipynb)
#
# # CycleGAN: unpaired image-to-image translation
#
# Zhu, Park, Isola, Efros, *Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial
# Networks* (ICCV 2017, [arXiv 1703.10593](https://arxiv.org/abs/1703.10593)), reproduced on
# horse2zebra with the paper's settings: 200 epochs of 1,334 steps at batch 1 and 256×256.
#
# The paper's authors quote 1–2 days on a GTX 1080 for this run; a learner on a laptop CPU got
# 20 epochs in 3 days. On Colab it spans several sessions, so this notebook is built to be
# interrupted: every few minutes it saves everything (the four networks, both optimizers, the
# learning-rate schedule, both image histories, the position inside the epoch, the random
# states) to Google Drive. After a disconnect, reconnect and **Runtime → Run all**: training
# continues at the step where it stopped, with nothing typed by hand.
#
# The training step that runs by default computes the paper's math with fewer, batched and
# graph-replayed GPU kernels, built to run at least 3× faster than a plain implementation on a
# modern GPU (appendix "Making it fast"; `bench/bench_cyclegan.py` measures it). A plain version
# of the same step sits next to it, for reading and for comparison.
#
# Sections follow the paper: 1 the objective, 2 data, 3 networks, 4 losses, 5 training,
# 6 evaluation (FID), 7 play.

# %%
# Colab only: install the course's helper package from this repository (torch is already on Colab).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "colabkit[metrics] @ git+https://github.com/open-gan-course/gan-papers@main"], check=True)

# %% [markdown]
# ## Settings
# The paper's values (section 4 and appendix 7.1 of the paper, and the authors' code where the
# paper is silent). `SMOKE` (set by the tests through `COLABKIT_SMOKE=1`) shrinks everything to
# tiny stand-in images and a few steps; the code path stays the same.

# %%
import colabkit as ck

SMOKE = ck.smoke_mode()

DATASET = "horse2zebra"     # X = trainA (horses), Y = trainB (zebras); any name in UNPAIRED_SETS works
LOAD_SIZE = 286             # images are resized to LOAD_SIZE × LOAD_SIZE ...
CROP_SIZE = 256             # ... then randomly cropped to CROP_SIZE and randomly flipped
N_BLOCKS = 9 if CROP_SIZE >= 256 else 6   # residual blocks: 9 at 256×256, 6 at 128×128
NGF = 64                    # generator filters in the first layer
NDF = 64                    # discriminator filters in the first layer
INIT_STD = 0.02             # weights drawn from N(0, 0.02)
LAMBDA_CYC = 10.0           # λ, weight of the cycle-consistency loss
LAMBDA_IDT = 0.5            # identity loss weight, as a fraction of λ (0.5 λ = 5)
POOL_SIZE = 50              # history of generated images shown to each discriminator
LR = 2e-4                   # Adam learning rate
BETAS = (0.5, 0.999)        # Adam β1, β2
BATCH_SIZE = 1              # the paper trains with batch 1
N_EPOCHS = 100              # epochs at the constant learning rate ...
N_EPOCHS_DECAY = 100        # ... then epochs of linear decay towards 0 (the pre-2020 reference rule, section 5)
SEED = 0

# How fast, not what: these change the speed, never the math (appendix "Making it fast").
STEP = "fast"               # "fast" (default) or "plain" (fp32 eager, one network call per image)
CUDA_GRAPHS = True          # replay the fast step as two CUDA graphs (bf16 GPUs; T4's fp16 step runs eager)
CHANNELS_LAST = False       # NHWC tensors on the GPU: off, see the appendix (instance norm)
COMPILE = False             # torch.compile the four networks (about 2 minutes per session; see the appendix)
NUM_WORKERS = 2             # data loading processes (Colab gives 2+ CPU cores)

LOG_EVERY = 100             # steps between logged loss averages
N_FIXED = 4                 # fixed test images per domain for the translation grids

if SMOKE:   # tiny stand-in images, tiny networks, 4 epochs of 10 steps
    LOAD_SIZE, CROP_SIZE, N_BLOCKS = 36, 32, 2
    NGF, NDF = 8, 8
    POOL_SIZE = 4           # small enough that the history fills up and starts swapping
    N_EPOCHS, N_EPOCHS_DECAY = 2, 2
    NUM_WORKERS = 0
    LOG_EVERY = 5
    import torch
    torch.set_num_threads(1)   # tiny networks: more threads only contend for the cores

# cfg: every name this cell assigns above, collected from the cell's own code by ck.settings, so a
# setting cannot be left out. Each checkpoint records cfg; a later session whose values differ stops
# with the list. Only the speed-only settings below may change between sessions: they change how fast
# it trains, never what it computes.
cfg = ck.settings(speed_only=[
    "STEP",          # the same math and random draws; only the rounding differs (fp32, or this GPU's bf16/fp16),
                     # as it does when a resume lands on another GPU
    "CUDA_GRAPHS",   # replays the same kernels (its first replay is checked against the eager step)
    "COMPILE",       # fuses kernels: the same math, rounding aside
    "NUM_WORKERS",   # batches are drawn under seeds of (SEED, epoch, batch): the same with any number of workers
])   # not CHANNELS_LAST: instance norm's gradients are wrong with it on some builds (appendix), so it is guarded

# %%
run = ck.setup(f"cyclegan-{DATASET}", config=cfg)

# %% [markdown]
# ## 1. Unpaired translation and cycle consistency
#
# We have photos of horses, $X$, and photos of zebras, $Y$, but no pairs showing the same scene
# both ways. CycleGAN learns two mappings, $G: X \to Y$ and $F: Y \to X$, with two
# discriminators: $D_Y$ tells real zebras from $G(x)$, and $D_X$ tells real horses from $F(y)$.
#
# **Adversarial losses.** For $G$ and $D_Y$ (and the same for $F$ and $D_X$):
#
# $$\mathcal{L}_{GAN}(G, D_Y, X, Y) = \mathbb{E}_{y}\big[\log D_Y(y)\big]
#   + \mathbb{E}_{x}\big[\log\big(1 - D_Y(G(x))\big)\big]$$
#
# Adversarial training alone can map all horses to the same handful of zebras: any output that
# looks like a zebra satisfies $D_Y$. The paper adds a constraint that the translation must be
# reversible:
#
# **Cycle consistency.** $x \to G(x) \to F(G(x)) \approx x$ and $y \to F(y) \to G(F(y)) \approx y$:
#
# $$\mathcal{L}_{cyc}(G, F) = \mathbb{E}_{x}\big[\lVert F(G(x)) - x \rVert_1\big]
#   + \mathbb{E}_{y}\big[\lVert G(F(y)) - y \rVert_1\big]$$
#
# **The full objective**, with $\lambda = 10$:
#
# $$\mathcal{L}(G, F, D_X, D_Y) = \mathcal{L}_{GAN}(G, D_Y, X, Y) + \mathcal{L}_{GAN}(F, D_X, Y, X)
#   + \lambda\, \mathcal{L}_{cyc}(G, F), \qquad
#   G^*, F^* = \arg\min_{G, F} \max_{D_X, D_Y} \mathcal{L}(G, F, D_X, D_Y)$$
#
# **Identity loss** (section 5.2 of the paper, used there for paintings ↔ photos; the authors'
# code applies it to every data set with weight $0.5\lambda$, and so does this notebook): a real
# zebra given to $G$ should come out unchanged.
#
# $$\mathcal{L}_{identity}(G, F) = \mathbb{E}_{y}\big[\lVert G(y) - y \rVert_1\big]
#   + \mathbb{E}_{x}\big[\lVert F(x) - x \rVert_1\big]$$
#
# ### Names in the code
# `F` is the paper's second generator, but in PyTorch code `F` is `torch.nn.functional`. The code
# names every network by the direction it maps:
#
# | paper | code | what it is |
# | --- | --- | --- |
# | $X$, $Y$ | `x`, `y` (folders `trainA`, `trainB`) | the two domains (horses, zebras) |
# | $G: X \to Y$ | `G_xy` | generator horse → zebra |
# | $F: Y \to X$ | `G_yx` | generator zebra → horse |
# | $D_Y$ | `D_y` | discriminator on $Y$: real zebra vs $G(x)$ |
# | $D_X$ | `D_x` | discriminator on $X$: real horse vs $F(y)$ |
# | $\lambda$ | `lambda_cyc` | 10 |
# | $0.5\lambda$ | `lambda_idt * lambda_cyc` | identity weight, 5 |
# | `torch.nn.functional` | `nnf` | renamed so `F` stays the paper's |

# %% [markdown]
# ## 2. Data
#
# The authors' unpaired sets are zip archives with four folders of JPEGs: `trainA`, `trainB`,
# `testA`, `testB` (horse2zebra: 1,067 horses, 1,334 zebras, 120 + 140 test images, 117 MB).
# The archive is downloaded once and kept in the run's cache on Drive; every later session copies
# it from there and extracts it to the VM's local disk (reading thousands of small files from
# Drive is slow).
#
# **Unaligned pairs.** Sample $i$ of an epoch is the $i$-th image of $X$ and an image of $Y$
# drawn at random; an epoch has $\max(|X|, |Y|)$ samples (1,334 for horse2zebra, so some horses
# appear twice). Each image is resized to 286×286, cropped at a random place to 256×256, flipped
# left-right half the time and scaled to $[-1, 1]$ (the generators end in tanh).
#
# `ck.ResumableLoader` draws every batch under a seed made from (seed, epoch, batch index), so the
# random zebra, crop and flip of step $s$ are the same whether or not the run was interrupted
# before it.

# %% tags=["lib"]
import random
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms

UNPAIRED_SETS = ("horse2zebra", "apple2orange", "summer2winter_yosemite", "monet2photo", "cezanne2photo",
                 "ukiyoe2photo", "vangogh2photo", "maps", "facades", "iphone2dslr_flower", "ae_photos")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def list_images(folder) -> list:
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"No images in {folder}: is the data set extracted there?")
    return files


def load_rgb(path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def train_transform(load_size: int, crop_size: int):
    """Resize to load_size, random crop_size crop, random flip, scale to [-1, 1]."""
    return transforms.Compose([
        transforms.Resize((load_size, load_size), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.RandomCrop(crop_size),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),                                  # [0, 1]
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # [-1, 1]
    ])


def test_transform(size: int):
    """Test images: resized to the training crop size, no randomness."""
    return transforms.Compose([
        transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ])


class UnalignedPairs(Dataset):
    """(x, y): the i-th image of X (cycling when Y is larger) and a random image of Y."""

    draws_from = ("torch", "python")   # torchvision's random crop and flip; random.randrange for Y

    def __init__(self, files_x, files_y, transform):
        self.files_x, self.files_y, self.transform = list(files_x), list(files_y), transform

    def __len__(self):
        return max(len(self.files_x), len(self.files_y))

    def __getitem__(self, i):
        x = load_rgb(self.files_x[i % len(self.files_x)])
        y = load_rgb(self.files_y[random.randrange(len(self.files_y))])   # B drawn at random
        return self.transform(x), self.transform(y)


def load_images(files, size: int) -> torch.Tensor:
    """A whole (test) folder as one N×3×size×size tensor in [-1, 1]."""
    t = test_transform(size)
    return torch.stack([t(load_rgb(f)) for f in files])


# %% [markdown]
# Download (or, in smoke mode, generate a stand-in archive with the same layout: stripes and a
# blob in two styles), cache, extract, and check the layout.

# %%
assert DATASET in UNPAIRED_SETS, f"DATASET must be one of {UNPAIRED_SETS}"
archive_name = f"{DATASET}.zip"
data_root = run.data_dir / "standin" if SMOKE else run.data_dir
cache_dir = Path(run.cache) / "standin" if SMOKE else run.cache   # a stand-in never replaces a real archive
folders = ("trainA", "trainB", "testA", "testB")
with run.main_first():   # several processes: process 0 downloads and extracts, then the others read
    if SMOKE and not (cache_dir / archive_name).exists():
        made = ck.data.standin_unpaired(run.work / "standin-src", name=DATASET, n_train_a=8, n_train_b=10,
                                        n_test_a=6, n_test_b=8, size=48, seed=SEED)
        ck.data.place_in_cache(made["archive"], cache_dir)   # whole or absent
    archive = ck.data.fetch(ck.data.CYCLEGAN_URL.format(name=DATASET), archive_name, cache_dir=cache_dir,
                            dest_dir=data_root)
    ck.data.extract(archive, data_root, expect=[f"{DATASET}/{f}" for f in folders])
files = {f: list_images(data_root / DATASET / f) for f in folders}
for f in folders:
    print(f"{f}: {len(files[f]):,} images")

train_set = UnalignedPairs(files["trainA"], files["trainB"], train_transform(LOAD_SIZE, CROP_SIZE))
loader = ck.ResumableLoader(train_set, batch_size=BATCH_SIZE, seed=SEED, num_workers=NUM_WORKERS,
                            pin_memory=run.device.type == "cuda")
assert loader.steps_per_epoch == max(len(files["trainA"]), len(files["trainB"])) // (BATCH_SIZE * run.world.size)
print(f"one epoch = max(|X|, |Y|) = {loader.steps_per_epoch:,} steps at batch {BATCH_SIZE}"
      + (f" in each of {run.world.size} processes" if run.world.distributed else ""))

# %% [markdown]
# The first training samples, exactly as step 0, 1, 2, … will see them (cropped and flipped):

# %%
first = loader.epoch_batches(0)
preview = [next(first) for _ in range(min(8, loader.steps_per_epoch))]
del first
xs = torch.cat([b[0] for b in preview])
ys = torch.cat([b[1] for b in preview])
assert xs.shape[1:] == (3, CROP_SIZE, CROP_SIZE) and ys.shape == xs.shape
assert xs.min() >= -1 and xs.max() <= 1
ck.show_images(xs, nrow=8, title="X (trainA), as trained on")
ck.show_images(ys, nrow=8, title="Y (trainB), drawn at random for each sample")

# %% [markdown]
# ## 3. Networks
#
# **Generator** (the paper's appendix 7.2, after Johnson et al.): `c7s1-64, d128, d256,
# R256 × 9, u128, u64, c7s1-3` — a 7×7 convolution, two stride-2 convolutions down, nine
# residual blocks at 64×64, two stride-½ (transposed) convolutions up, a 7×7 convolution to RGB
# and tanh. Borders use reflection padding. Six blocks for 128×128 images.
#
# **Discriminator**: the 70×70 PatchGAN `C64-C128-C256-C512`, 4×4 convolutions with strides
# 2, 2, 2, 1 and a last 4×4 convolution to one channel. Its output is a 30×30 map for a
# 256×256 image; each value judges one 70×70 patch, so the discriminator has few parameters
# and works on any image size. No normalisation in the first layer, LeakyReLU(0.2).
#
# **Instance normalisation** everywhere else: each image's channels are normalised with that
# image's own mean and variance, with no learned scale or shift and no running statistics. So
# an image's output never depends on the other images of a batch — which the fast step uses (appendix).
#
# Weights are drawn from $\mathcal{N}(0, 0.02)$, biases start at 0.

# %% tags=["lib"]
from torch import nn


def instance_norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    """R256: x + (pad, 3×3 conv, norm, ReLU, pad, 3×3 conv, norm)(x)."""

    def __init__(self, dim: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), instance_norm(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), instance_norm(dim))

    def forward(self, x):
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """c7s1-ngf, d(2 ngf), d(4 ngf), R(4 ngf) × n_blocks, u(2 ngf), u(ngf), c7s1-3, tanh."""

    def __init__(self, ngf: int = 64, n_blocks: int = 9, channels: int = 3):
        super().__init__()
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7), instance_norm(ngf), nn.ReLU(True)]
        for i in range(2):                                   # down-sampling: d128, d256
            c = ngf * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), instance_norm(2 * c), nn.ReLU(True)]
        layers += [ResnetBlock(4 * ngf) for _ in range(n_blocks)]
        for i in range(2):                                   # up-sampling: u128, u64
            c = 4 * ngf // 2 ** i
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1),
                       instance_norm(c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """70×70 PatchGAN: C64 (no norm), C128, C256, C512 (stride 1), then a 1-channel 4×4 conv."""

    def __init__(self, ndf: int = 64, channels: int = 3):
        super().__init__()
        layers = [nn.Conv2d(channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        c = ndf
        for mult, stride in ((2, 2), (4, 2), (8, 1)):
            layers += [nn.Conv2d(c, ndf * mult, 4, stride=stride, padding=1), instance_norm(ndf * mult),
                       nn.LeakyReLU(0.2, True)]
            c = ndf * mult
        layers += [nn.Conv2d(c, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def init_weights(net: nn.Module, std: float = 0.02) -> nn.Module:
    """Convolution weights from N(0, std), biases 0 (instance norm has no parameters)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            nn.init.zeros_(m.bias)
    return net


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def receptive_field(net: nn.Module) -> int:
    """Input pixels (per side) that one output value of a plain conv stack sees."""
    size, jump = 1, 1
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            size += (m.kernel_size[0] - 1) * jump
            jump *= m.stride[0]
    return size


# %% [markdown]
# The parameter counts must equal the reference implementation's (ngf = ndf = 64): generator
# 11,378,179 and discriminator 2,764,737, 28,285,832 for all four networks. They are counted on
# PyTorch's `meta` device, which builds the full-size networks without allocating their weights,
# so the check is exact even in smoke mode.

# %%
with torch.device("meta"):
    paper_G = ResnetGenerator(ngf=64, n_blocks=9)
    paper_D = PatchDiscriminator(ndf=64)
    paper_G6 = ResnetGenerator(ngf=64, n_blocks=6)
n_G, n_D = count_params(paper_G), count_params(paper_D)
print(f"generator (9 blocks, 256×256):  {n_G:>12,}")
print(f"generator (6 blocks, 128×128):  {count_params(paper_G6):>12,}")
print(f"discriminator (70×70 PatchGAN): {n_D:>12,}")
print(f"all four networks:              {2 * n_G + 2 * n_D:>12,}")
assert n_G == 11_378_179, n_G
assert n_D == 2_764_737, n_D
assert 2 * n_G + 2 * n_D == 28_285_832
assert receptive_field(paper_D) == 70
del paper_G, paper_D, paper_G6

# %% [markdown]
# The networks this run trains (paper size, or tiny in smoke mode):

# %%
torch.manual_seed(SEED)
G_xy = init_weights(ResnetGenerator(NGF, N_BLOCKS), INIT_STD)   # G: X → Y
G_yx = init_weights(ResnetGenerator(NGF, N_BLOCKS), INIT_STD)   # F: Y → X
D_x = init_weights(PatchDiscriminator(NDF), INIT_STD)           # D_X
D_y = init_weights(PatchDiscriminator(NDF), INIT_STD)           # D_Y
use_cl = CHANNELS_LAST and run.device.type == "cuda"
memory_format = torch.channels_last if use_cl else torch.contiguous_format
for net in (G_xy, G_yx, D_x, D_y):
    net.to(run.device, memory_format=memory_format)

with torch.no_grad():
    x0 = xs[:1].to(run.device)
    out_G, out_D = G_xy(x0), D_y(x0)
patch = CROP_SIZE // 8 - 2      # three stride-2 convs, then two 4×4 convs that each take 1 pixel
print(f"G_xy: {tuple(x0.shape)} → {tuple(out_G.shape)};  D_y: {tuple(x0.shape)} → {tuple(out_D.shape)}")
assert out_G.shape == x0.shape and out_G.abs().max() <= 1
assert out_D.shape == (1, 1, patch, patch)
if not SMOKE:
    assert count_params(G_xy) == 11_378_179 and count_params(D_y) == 2_764_737

# %% [markdown]
# ## 4. Losses
#
# **Least-squares adversarial loss.** The paper replaces the log-likelihood of
# $\mathcal{L}_{GAN}$ by a least-squares loss (LSGAN, Mao et al.), which trains more stably.
# The generator $G$ minimises
#
# $$\mathcal{L}_{GAN}^{G} = \mathbb{E}_{x}\big[(D_Y(G(x)) - 1)^2\big]$$
#
# and the discriminator $D_Y$ minimises (halved, as in the authors' code, which slows $D$
# relative to $G$)
#
# $$\mathcal{L}_{GAN}^{D_Y} = \tfrac12\Big(\mathbb{E}_{y}\big[(D_Y(y) - 1)^2\big]
#   + \mathbb{E}_{x}\big[D_Y(G(x))^2\big]\Big)$$
#
# Every value of the 30×30 patch map is a prediction, so the squared error is averaged over the
# map.

# %% tags=["lib"]
import torch.nn.functional as nnf  # not `F`: F is the paper's generator Y → X


def lsgan_generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """E[(D(G(x)) - 1)^2]: the generator wants every patch judged real."""
    return nnf.mse_loss(d_fake, torch.ones_like(d_fake))


def lsgan_discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """1/2 (E[(D(y) - 1)^2] + E[D(G(x))^2])."""
    return 0.5 * (nnf.mse_loss(d_real, torch.ones_like(d_real)) + nnf.mse_loss(d_fake, torch.zeros_like(d_fake)))


# %% [markdown]
# **Cycle-consistency and identity losses.** $\lVert\cdot\rVert_1$ becomes the mean absolute
# difference over pixels and channels:
#
# $$\mathcal{L}_{cyc} = \mathbb{E}_{x}\big[\lVert F(G(x)) - x \rVert_1\big]
#   + \mathbb{E}_{y}\big[\lVert G(F(y)) - y \rVert_1\big], \qquad
# \mathcal{L}_{identity} = \mathbb{E}_{y}\big[\lVert G(y) - y \rVert_1\big]
#   + \mathbb{E}_{x}\big[\lVert F(x) - x \rVert_1\big]$$
#
# The generators' total, minimised jointly by $G$ and $F$:
#
# $$\mathcal{L}_{G,F} = \mathcal{L}_{GAN}^{G} + \mathcal{L}_{GAN}^{F} + \lambda\,\mathcal{L}_{cyc}
#   + 0.5\lambda\,\mathcal{L}_{identity}$$

# %% tags=["lib"]
def cycle_loss(reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """||F(G(x)) - x||_1 (or ||G(F(y)) - y||_1), averaged over pixels."""
    return nnf.l1_loss(reconstructed, original)


def identity_loss(mapped: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """||G(y) - y||_1 (or ||F(x) - x||_1): a real image of the target domain should pass unchanged."""
    return nnf.l1_loss(mapped, original)


# %% [markdown]
# **The history of generated images** (section 4 of the paper, after Shrivastava et al.): the
# discriminators are updated with generated images drawn from a buffer of the last 50 rather
# than only the newest one, which keeps the generator and discriminator from chasing each
# other's latest move. While the buffer is filling, each new image goes in and is used; once it
# is full, half the time the new image is used, and half the time a random stored one is used
# and replaced by the new one.
#
# The buffer is training state: it is saved in every checkpoint (`state_dict`) and restored on
# resume, like the weights.

# %% tags=["lib"]
class ImagePool:
    """The last `size` generated images shown to one discriminator (Python's `random` decides)."""

    def __init__(self, size: int = 50):
        self.size = size
        self.images: list = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach().split(1):
            new = image.clone()   # a copy: the caller may overwrite its buffer (CUDA graphs do)
            if len(self.images) < self.size:
                self.images.append(new)
                out.append(new)
            elif random.random() < 0.5:
                i = random.randrange(self.size)
                old, self.images[i] = self.images[i], new
                out.append(old.to(device=image.device, dtype=image.dtype))
            else:
                out.append(new)
        return torch.cat(out)

    def state_dict(self) -> dict:
        return {"size": self.size, "images": list(self.images)}

    def load_state_dict(self, state: dict) -> None:
        self.size = int(state["size"])
        self.images = list(state["images"])


# %%
pool_demo = ImagePool(2)
img = [torch.full((1, 3, 2, 2), float(i)) for i in range(6)]
assert torch.equal(pool_demo.query(img[0]), img[0]) and torch.equal(pool_demo.query(img[1]), img[1])
for i in range(2, 6):
    pool_demo.query(img[i])
assert len(pool_demo.images) == 2
restored = ImagePool()
restored.load_state_dict(pool_demo.state_dict())
assert restored.size == 2 and all(torch.equal(a, b) for a, b in zip(restored.images, pool_demo.images))
d = torch.rand(1, 1, 30, 30)
assert torch.isclose(lsgan_discriminator_loss(d, d), 0.5 * ((d - 1) ** 2 + d ** 2).mean())
print("losses and image pool behave as the equations say")

# %% [markdown]
# ## 5. Training
#
# ### One training step
# The paper alternates one update of both generators with one update of both discriminators.
# `plain_step` writes it out as directly as possible: fp32, one network call per image, six
# generator calls and six discriminator calls a step.
#
# While the generators learn, the discriminators' weights are frozen (`requires_grad` off): the
# generators' loss must not train the discriminators. The discriminators then see real images
# and images from the history. One Adam optimizer holds both generators' parameters, another
# both discriminators' (Adam treats every parameter separately, so this equals one optimizer per
# network).

# %% tags=["lib"]
import contextlib
import warnings

import colabkit as ck

LOSS_NAMES = ("adv_xy", "adv_yx", "cyc_x", "cyc_y", "idt_x", "idt_y", "loss_G", "loss_D_y", "loss_D_x")


class CycleGAN:
    """Everything one training step reads or updates."""

    def __init__(self, G_xy, G_yx, D_x, D_y, opt_G, opt_D, pool_x, pool_y,
                 lambda_cyc: float = 10.0, lambda_idt: float = 0.5):
        self.G_xy, self.G_yx = G_xy, G_yx        # G: X -> Y and F: Y -> X
        self.D_x, self.D_y = D_x, D_y            # D_X and D_Y
        self.opt_G, self.opt_D = opt_G, opt_D    # Adam over both generators / both discriminators
        self.pool_x, self.pool_y = pool_x, pool_y   # histories of F(y) for D_X and of G(x) for D_Y
        self.lambda_cyc = lambda_cyc             # λ
        self.lambda_idt = lambda_idt             # identity weight, times λ


def set_requires_grad(nets, flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def plain_step(m: CycleGAN, x: torch.Tensor, y: torch.Tensor) -> dict:
    """One update of G_xy and G_yx, then one of D_y and D_x: fp32, one network call per image."""
    lam, lam_idt = m.lambda_cyc, m.lambda_idt * m.lambda_cyc

    # Generators G and F, with the discriminators frozen.
    set_requires_grad([m.D_x, m.D_y], False)
    m.opt_G.zero_grad(set_to_none=True)
    fake_y = m.G_xy(x)                      # G(x)
    rec_x = m.G_yx(fake_y)                  # F(G(x))
    fake_x = m.G_yx(y)                      # F(y)
    rec_y = m.G_xy(fake_x)                  # G(F(y))
    idt_y = m.G_xy(y)                       # G(y)
    idt_x = m.G_yx(x)                       # F(x)
    adv_xy = lsgan_generator_loss(m.D_y(fake_y))
    adv_yx = lsgan_generator_loss(m.D_x(fake_x))
    cyc_x, cyc_y = cycle_loss(rec_x, x), cycle_loss(rec_y, y)
    idt_x_, idt_y_ = identity_loss(idt_x, x), identity_loss(idt_y, y)
    loss_G = adv_xy + adv_yx + lam * (cyc_x + cyc_y) + lam_idt * (idt_x_ + idt_y_)
    loss_G.backward()
    m.opt_G.step()

    # Discriminators D_Y and D_X, on real images and images from the history.
    set_requires_grad([m.D_x, m.D_y], True)
    m.opt_D.zero_grad(set_to_none=True)
    fake_y_hist = m.pool_y.query(fake_y)
    loss_D_y = lsgan_discriminator_loss(m.D_y(y), m.D_y(fake_y_hist))
    loss_D_y.backward()
    fake_x_hist = m.pool_x.query(fake_x)
    loss_D_x = lsgan_discriminator_loss(m.D_x(x), m.D_x(fake_x_hist))
    loss_D_x.backward()
    m.opt_D.step()
    values = (adv_xy, adv_yx, cyc_x, cyc_y, idt_x_, idt_y_, loss_G, loss_D_y, loss_D_x)
    return {k: v.detach() for k, v in zip(LOSS_NAMES, values)}


# %% [markdown]
# ### The same step, faster
# The default step (`STEP = "fast"`) is `plain_step`'s math with the waste removed: batched network
# calls where they are exact, mixed precision, fused Adam, no host synchronisation and, on bf16
# GPUs, CUDA graphs (a plain step takes about 94 ms on an H200, mostly spent launching small
# kernels from Python). It is not part of the paper, so its explanation, and a check that both
# steps give the same losses, are in the **Appendix: Making it fast** at the end. The next cell
# holds its code (folded in Colab); the lesson goes on with the loop.

# %% tags=["lib"] cellView="form"
#@title The fast step: its code (explained in the appendix "Making it fast")
class FastSettings:
    """How the fast step runs: autocast dtype (None = fp32), GradScaler (fp16), memory layout."""

    def __init__(self, device_type: str = "cpu", dtype=None, scaler=None, channels_last: bool = False):
        self.precision, self.channels_last = ck.Precision.of(dtype, device_type), channels_last
        self.scaler = scaler if scaler is not None and scaler.is_enabled() else None

    def autocast(self):
        # No cast cache: CUDA graphs must redo the weight casts on every replay.
        return self.precision.autocast(cache=False)

    def layout(self, t: torch.Tensor) -> torch.Tensor:
        return t.contiguous(memory_format=torch.channels_last) if self.channels_last else t

    def backward_and_step(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            loss.backward()
            opt.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(opt)   # with fused Adam the inf check happens on the GPU, no sync

    def end_step(self) -> None:
        if self.scaler is not None:
            self.scaler.update()


def generator_losses(m: CycleGAN, x, y, fs: FastSettings):
    """The generators' objective with G_xy on [x; y] and G_yx on [y; x] (exact: per-image norm)."""
    lam, lam_idt = m.lambda_cyc, m.lambda_idt * m.lambda_cyc
    with fs.autocast():
        fake_y, idt_y = m.G_xy(torch.cat([x, y])).chunk(2)    # G(x), G(y)
        fake_x, idt_x = m.G_yx(torch.cat([y, x])).chunk(2)    # F(y), F(x)
        rec_x = m.G_yx(fake_y)                                # F(G(x))
        rec_y = m.G_xy(fake_x)                                # G(F(y))
        adv_xy = lsgan_generator_loss(m.D_y(fake_y))
        adv_yx = lsgan_generator_loss(m.D_x(fake_x))
        cyc_x, cyc_y = cycle_loss(rec_x, x), cycle_loss(rec_y, y)
        idt_x_, idt_y_ = identity_loss(idt_x, x), identity_loss(idt_y, y)
        loss_G = adv_xy + adv_yx + lam * (cyc_x + cyc_y) + lam_idt * (idt_x_ + idt_y_)
    stats = torch.stack([adv_xy, adv_yx, cyc_x, cyc_y, idt_x_, idt_y_, loss_G]).detach().float()
    return loss_G, stats, fake_y, fake_x


def discriminator_losses(m: CycleGAN, x, y, fake_y_hist, fake_x_hist, fs: FastSettings):
    """Both discriminators' objectives, each D on [real; from history]; the halves give each term."""
    with fs.autocast():
        d_real, d_fake = m.D_y(torch.cat([y, fake_y_hist.to(y.dtype)])).chunk(2)
        loss_D_y = lsgan_discriminator_loss(d_real, d_fake)
        d_real, d_fake = m.D_x(torch.cat([x, fake_x_hist.to(x.dtype)])).chunk(2)
        loss_D_x = lsgan_discriminator_loss(d_real, d_fake)
    # D_y and D_x share no parameters: one backward of the sum = two separate backward calls.
    return loss_D_y + loss_D_x, torch.stack([loss_D_y, loss_D_x]).detach().float()


def generator_update(m: CycleGAN, x, y, fs: FastSettings):
    set_requires_grad([m.D_x, m.D_y], False)
    m.opt_G.zero_grad(set_to_none=True)
    loss_G, stats, fake_y, fake_x = generator_losses(m, x, y, fs)
    fs.backward_and_step(loss_G, m.opt_G)
    return stats, fake_y.detach(), fake_x.detach()


def discriminator_update(m: CycleGAN, x, y, fake_y_hist, fake_x_hist, fs: FastSettings):
    set_requires_grad([m.D_x, m.D_y], True)
    m.opt_D.zero_grad(set_to_none=True)
    loss_D, stats = discriminator_losses(m, x, y, fake_y_hist, fake_x_hist, fs)
    fs.backward_and_step(loss_D, m.opt_D)
    return stats


def fast_step(m: CycleGAN, x: torch.Tensor, y: torch.Tensor, fs: FastSettings) -> dict:
    """plain_step's math with batched calls, mixed precision and no host sync."""
    x, y = fs.layout(x), fs.layout(y)
    stats_G, fake_y, fake_x = generator_update(m, x, y, fs)
    fake_y_hist = m.pool_y.query(fake_y)      # same order of random draws as plain_step
    fake_x_hist = m.pool_x.query(fake_x)
    stats_D = discriminator_update(m, x, y, fake_y_hist, fake_x_hist, fs)
    fs.end_step()
    return dict(zip(LOSS_NAMES, torch.cat([stats_G, stats_D]).unbind()))


class GraphedStep:
    """fast_step with its generator and discriminator halves replayed as CUDA graphs.

    The first `warmup` calls run fast_step on a side stream (CUDA's lazy setup, cuDNN's algorithm
    search and Adam's state happen there); then both halves are recorded and replayed. They are
    recorded again whenever the learning rate or an optimizer's state object changes, and the
    first replay of each recording is checked against an ordinary forward pass.
    """

    device_type = "cuda"   # the course's tests replay on the CPU with a stand-in for CUDA graphs

    def __init__(self, m: CycleGAN, fs: FastSettings, warmup: int = 3, check: bool = True):
        self.m, self.fs, self.warmup, self.check = m, fs, warmup, check
        self.warm_steps = 0
        self._side = None
        self.captures = 0
        self._key = None
        self._graphs = None
        self.enabled = fs.scaler is None and all(
            g.get("capturable", False) for opt in (m.opt_G, m.opt_D) for g in opt.param_groups)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        if not self.enabled or x.device.type != self.device_type:
            return fast_step(self.m, x, y, self.fs)
        if self.warm_steps < self.warmup:
            return self._warmup_step(x, y)
        if self._key is None or not self._same_key(self._make_key(x, y)):
            try:
                self._record(x, y)
            except Exception as exc:  # noqa: BLE001 - recording only records: no state changed yet
                self._release()
                self.enabled = False
                print(f"CUDA graph recording failed ({type(exc).__name__}: {str(exc)[:300]}); "
                      "continuing with the eager fast step.")
                return fast_step(self.m, x, y, self.fs)
        return self._replay(x, y)

    # --- the pieces -----------------------------------------------------------------------
    def _warmup_step(self, x, y):
        side = self._side = self._side or torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*capturable=True.*")
            out = fast_step(self.m, x, y, self.fs)
        torch.cuda.current_stream().wait_stream(side)
        self.warm_steps += 1
        return out

    def _make_key(self, x, y):
        m = self.m
        first = next(m.G_xy.parameters())
        return (m.opt_G.state, m.opt_D.state, first.grad,
                tuple(g["lr"] for g in m.opt_G.param_groups), tuple(g["lr"] for g in m.opt_D.param_groups),
                x.shape, y.shape, x.dtype)

    def _same_key(self, key) -> bool:
        old = self._key
        return all(a is b for a, b in zip(old[:3], key[:3])) and old[3:] == key[3:]

    def _release(self):
        self._graphs, self._key = None, None

    def _record(self, x, y):
        m, fs = self.m, self.fs
        self._release()
        for opt in (m.opt_G, m.opt_D):   # the graphs allocate (and then own) the gradients
            opt.zero_grad(set_to_none=True)
        s = {"x": torch.empty_like(fs.layout(x)), "y": torch.empty_like(fs.layout(y))}
        s["x"].copy_(x)
        s["y"].copy_(y)
        g_G, g_D = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
        with torch.cuda.graph(g_G, capture_error_mode="thread_local"):
            s["stats_G"], s["fake_y"], s["fake_x"] = generator_update(m, s["x"], s["y"], fs)
        s["hist_y"], s["hist_x"] = torch.empty_like(s["fake_y"]), torch.empty_like(s["fake_x"])
        with torch.cuda.graph(g_D, capture_error_mode="thread_local"):
            s["stats_D"] = discriminator_update(m, s["x"], s["y"], s["hist_y"], s["hist_x"], fs)
        self._graphs = (g_G, g_D, s)
        self._key = self._make_key(x, y)
        self.captures += 1
        self._check_next = self.check

    def _replay(self, x, y):
        g_G, g_D, s = self._graphs
        m = self.m
        s["x"].copy_(x, non_blocking=True)
        s["y"].copy_(y, non_blocking=True)
        checking, self._check_next = self._check_next, False
        if checking:
            with torch.no_grad():
                expect_G = generator_losses(m, s["x"], s["y"], self.fs)[1]
        g_G.replay()
        s["hist_y"].copy_(m.pool_y.query(s["fake_y"]))   # the pool keeps copies, never graph memory
        s["hist_x"].copy_(m.pool_x.query(s["fake_x"]))
        if checking:
            with torch.no_grad():
                expect_D = discriminator_losses(m, s["x"], s["y"], s["hist_y"], s["hist_x"], self.fs)[1]
        g_D.replay()
        stats = torch.cat([s["stats_G"], s["stats_D"]])   # a new tensor: safe from the next replay
        if checking:
            self._verify(stats, torch.cat([expect_G, expect_D]))
        return dict(zip(LOSS_NAMES, stats.unbind()))

    @staticmethod
    def _verify(got, expected):
        if not torch.allclose(got, expected, rtol=5e-2, atol=1e-3):   # one host sync, once per recording
            raise RuntimeError(
                "The CUDA graph's losses differ from an ordinary forward pass "
                f"(graph {got.tolist()}, eager {expected.tolist()}). Set CUDA_GRAPHS = False in the "
                "settings cell and run the notebook again: training resumes from the last checkpoint.")


def make_train_step(kind: str, m: CycleGAN, fs: FastSettings, cuda_graphs: bool = True):
    """The step the loop calls as train_step(x, y): "plain", or "fast" (graphed where possible)."""
    if kind == "plain":
        return lambda x, y: plain_step(m, x, y)
    if kind != "fast":
        raise ValueError(f"step must be 'plain' or 'fast', not {kind!r}")
    if cuda_graphs:
        return GraphedStep(m, fs)
    return lambda x, y: fast_step(m, x, y, fs)


def make_optimizers(G_xy, G_yx, D_x, D_y, lr=2e-4, betas=(0.5, 0.999), fused: bool = False,
                    capturable: bool = False):
    """Adam over both generators, Adam over both discriminators (fused / graph-capturable on CUDA)."""
    extra = {"fused": True} if fused else {}
    if capturable:
        extra["capturable"] = True
    opt_G = torch.optim.Adam([*G_xy.parameters(), *G_yx.parameters()], lr=lr, betas=betas, **extra)
    opt_D = torch.optim.Adam([*D_x.parameters(), *D_y.parameters()], lr=lr, betas=betas, **extra)
    return opt_G, opt_D


def linear_decay(n_epochs: int, n_epochs_decay: int):
    """lr factor for epoch e (0-based): 1 for n_epochs epochs, then linearly down (the reference's pre-2020 rule)."""
    return lambda e: 1.0 - max(0, e + 1 - n_epochs) / float(n_epochs_decay + 1)


@torch.no_grad()
def translate(G: nn.Module, images: torch.Tensor, device, autocast=contextlib.nullcontext,
              batch_size: int = 8) -> torch.Tensor:
    """G applied to a CPU batch in chunks; the result on the CPU in float32."""
    out = []
    for chunk in images.split(batch_size):
        with autocast():
            out.append(G(chunk.to(device)).float().cpu())
    return torch.cat(out)


# %% [markdown]
# Optimizers, the learning-rate schedule and the precision:
#
# - Adam, lr $2\cdot10^{-4}$, $\beta = (0.5, 0.999)$, batch 1;
# - 100 epochs at that rate, then 100 epochs of linear decay: epoch $e$ (counted from 0) uses
#   $1 - \max(0, e + 1 - 100)/101$ of the rate, and `LambdaLR` is stepped at the end of each
#   epoch, so the first 100 epochs train at the full rate and the last one at $1/101$ of it.
#
# **Which rule, and why.** The authors' code has had two versions of this schedule:
#
# | rule | epochs 1–99 | epoch 100 | epoch 101 | epoch 200 |
# | --- | --- | --- | --- | --- |
# | the paper's text | full rate | full rate | then "linearly decay to zero" | |
# | reference code before mid-2020 (**here**) | full rate | full rate | $100/101$ | $1/101$ |
# | reference code since mid-2020 (updates at epoch start) | full rate | $100/101$ | $99/101$ | 0 |
#
# This notebook follows the older code: it keeps the paper's 100 epochs at the full rate, does not
# spend its last epoch at lr 0 (where Adam changes nothing), and it is the code of 2017, when
# the authors released the models measured in section 6 (so presumably the rule they were
# trained with). The two rules differ by a one-epoch shift of the decay; its effect on the FID
# has not been measured, and is expected to be far smaller than the FID's noise on 120 images.

# %%
fast_cuda = STEP == "fast" and run.device.type == "cuda"
graphs_possible = fast_cuda and CUDA_GRAPHS and run.precision.name != "fp16" and not run.world.distributed
opt_G, opt_D = make_optimizers(G_xy, G_yx, D_x, D_y, LR, BETAS, fused=fast_cuda, capturable=graphs_possible)
decay = linear_decay(N_EPOCHS, N_EPOCHS_DECAY)
sched_G = torch.optim.lr_scheduler.LambdaLR(opt_G, decay)
sched_D = torch.optim.lr_scheduler.LambdaLR(opt_D, decay)
scaler = run.precision.make_scaler()
pool_x, pool_y = ImagePool(POOL_SIZE), ImagePool(POOL_SIZE)

# Several processes (torchrun): each network in DDP, which averages its gradients over the processes.
# One process (Colab): run.ddp returns the network itself.
nets = {k: run.ddp(v) for k, v in dict(G_xy=G_xy, G_yx=G_yx, D_x=D_x, D_y=D_y).items()}
if COMPILE and run.device.type == "cuda":
    nets = {k: torch.compile(v, dynamic=False) for k, v in nets.items()}
model = CycleGAN(**nets, opt_G=opt_G, opt_D=opt_D, pool_x=pool_x, pool_y=pool_y,
                 lambda_cyc=LAMBDA_CYC, lambda_idt=LAMBDA_IDT)
fast = FastSettings(run.device.type, run.precision.dtype, scaler, channels_last=use_cl)
lrs = [decay(e) for e in range(N_EPOCHS + N_EPOCHS_DECAY)]
assert lrs[0] == lrs[N_EPOCHS - 1] == 1.0 and lrs[N_EPOCHS] < 1.0 and 0 < lrs[-1] < lrs[N_EPOCHS]
print(f"step: {STEP}; precision: {run.precision.name}; channels_last: {use_cl}; "
      f"CUDA graphs: {graphs_possible}; "
      f"compile: {COMPILE and run.device.type == 'cuda'}")

# %% [markdown]
# ### The resumable loop
# Everything the step changes is registered with the loop, so the checkpoint holds it: the four
# networks, both optimizers (with Adam's moments), both schedulers, the gradient scaler, both
# image histories; the loop adds the step, the position inside the epoch, the loss history and
# the random states. A checkpoint is written to Drive every 10 minutes, when you press
# Interrupt, and at the end. After a disconnect, **Run all** resumes here: the learning rate, the
# histories and the data order continue as if nothing had happened.
#
# Curves go to TensorBoard (and `loop.history`); at the end of each epoch a grid of the fixed
# test images translated both ways and back ($x, G(x), F(G(x))$ and $y, F(y), G(F(y))$).
#
# **On several GPUs** (the script twin under `torchrun --nproc_per_node N`, README "Outgrowing
# Colab"): each process takes its own image pair at every step and DDP averages the gradients, so a
# step sees N pairs, a batch of N where the paper uses 1; each process keeps its own image
# histories. The learning rate and its schedule in epochs are kept as they are: an epoch is still
# one pass over the data, in N times fewer steps, each with an N-pair gradient. This is not the
# paper's setting (batch 1, and instance normalisation is per image either way); with N = 1 it is.

# %%
total_steps = (N_EPOCHS + N_EPOCHS_DECAY) * loader.steps_per_epoch
loop = run.loop("train", total_steps=total_steps, loader=loader, log_every=LOG_EVERY,
                state={"G_xy": G_xy, "G_yx": G_yx, "D_x": D_x, "D_y": D_y, "opt_G": opt_G, "opt_D": opt_D,
                       "sched_G": sched_G, "sched_D": sched_D, "scaler": scaler,
                       "pool_x": pool_x, "pool_y": pool_y})
train_step = make_train_step(STEP, model, fast, cuda_graphs=CUDA_GRAPHS)
# A checkpoint written on another GPU resumes with this GPU's optimizer flags (colabkit keeps them).
assert not graphs_possible or train_step.enabled

fixed_x = load_images(files["testA"][:N_FIXED], CROP_SIZE)
fixed_y = load_images(files["testB"][:N_FIXED], CROP_SIZE)


def translation_grid():
    """Rows: x, G(x), F(G(x)), then y, F(y), G(F(y)) for the fixed test images."""
    fake_y = translate(G_xy, fixed_x, run.device, run.precision.autocast)
    fake_x = translate(G_yx, fixed_y, run.device, run.precision.autocast)
    rec_x = translate(G_yx, fake_y, run.device, run.precision.autocast)
    rec_y = translate(G_xy, fake_x, run.device, run.precision.autocast)
    return torch.cat([fixed_x, fake_y, rec_x, fixed_y, fake_x, rec_y])


ck.tensorboard(run.work / "tb")
for step, (x, y) in loop:
    x = x.to(run.device, non_blocking=True)
    y = y.to(run.device, non_blocking=True)
    losses = train_step(x, y)
    loop.log(**losses, lr=opt_G.param_groups[0]["lr"])
    if loop.end_of_epoch:
        if run.main:
            loop.log_images("translations", translation_grid(), nrow=N_FIXED)
        sched_G.step()
        sched_D.step()
run.leave_to_main()   # several processes: from here on process 0 alone draws and evaluates

assert loop.done
assert all(torch.isfinite(torch.tensor([v for _, v in loop.history[k]])).all() for k in LOSS_NAMES)
print(f"{loop.epoch} of {N_EPOCHS + N_EPOCHS_DECAY} epochs done; the last one trained at lr "
      f"{LR * decay(N_EPOCHS + N_EPOCHS_DECAY - 1):.3g}; the histories hold {len(pool_x.images)} and "
      f"{len(pool_y.images)} images")

# %%
ck.plot_history(loop.history, ["loss_G", "adv_xy", "adv_yx", "loss_D_y", "loss_D_x"])
ck.plot_history(loop.history, ["cyc_x", "cyc_y", "idt_x", "idt_y", "lr"])
grid = translation_grid()
assert grid.shape == (6 * N_FIXED, 3, CROP_SIZE, CROP_SIZE) and torch.isfinite(grid).all()
ck.show_images(grid, nrow=N_FIXED, title="rows: x, G(x), F(G(x)), y, F(y), G(F(y))")

# %% [markdown]
# ## 6. Evaluation: FID per direction
#
# The paper judged its results with AMT perceptual studies and FCN scores; later work reports
# the Fréchet Inception Distance on horse2zebra: translate every test horse into a zebra and
# compare the Inception features of those 120 images with those of the 140 real test zebras
# (lower is better). Two published numbers exist for horse → zebra: **77.2**, the CycleGAN row of
# the CUT paper (Park et al. 2020), and **62.1**, mmagic's measurement of the authors' released
# model (trained with the identity loss). For zebra → horse (against the 120 real horses) mmagic
# lists **138.6** for the authors' released model (141.2 for a run of its own).
#
# **How the published numbers were measured, and what this notebook does.**
#
# | step | published (CUT's protocol) | here |
# | --- | --- | --- |
# | test images | resized to 256 (bicubic), no crop or flip | the same (`test_transform`) |
# | fakes to files | PNG; uint8 by truncation, `((x+1)/2·255).astype(uint8)` | the same truncation (`as_png`) |
# | network | pytorch-fid: the 2015 TF FID Inception | the same graph, torch-fidelity's port |
# | resize to 299 | PyTorch bilinear on floats | the same, then rounded to uint8 (≤ ½ level) |
# | pixel scaling | $2u/255 - 1$ | $(u - 128)/128$, the TF graph's own: 0.4 % apart, not matched |
# | real side | the 140 testB JPEGs (120 testA the other way) | the same files, decoded by PIL |
#
# mmagic measures with its own evaluation code, whose details were not checked here.
#
# **First, the measurement itself.** Before trusting a number from your own run, measure the
# authors' released generators with exactly the same code: if the pipeline gives about 62 and
# 139 on their models, it measures what the published tables measure. The generators are
# published at `http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/NAME.pth` as state
# dicts of the reference implementation's `ResnetGenerator`: the same tensors, in the same order,
# as `ResnetGenerator` here, whose residual blocks name their layers `block` where the reference
# says `conv_block`. Files written by old PyTorch versions also hold `running_mean`,
# `running_var` and `num_batches_tracked` for every instance norm, which has none here (and none
# in the reference, whose loader drops them); `load_reference_generator` drops them too and
# refuses any other difference with a message that names it.
#
# Which released generators fit which data set of `UNPAIRED_SETS` (the direction matters: X is
# `trainA`). The directions below follow the model and folder names (`maps`: A = aerial photos;
# the painting sets: A = paintings) and were not checked against the files. `facades` has
# released generators (`facades_photo2label`, `facades_label2photo`), but which of its folders
# holds the photos was not checked, so they are left out; `ae_photos` has none.
#
# That these definitions learn an unpaired translation at all is checked on real data by the
# learning benchmark `bench/learn_cyclegan.py`: this notebook's networks and losses, at a reduced
# size, on unpaired real digits (X: grey digits; Y: the same digits thickened, shifted and drawn blue
# on cream, which no per-pixel map can do), scored on held-back true pairs. With the cycle loss 95 %
# of translated digits keep their class (L1 to the true counterpart 0.033); with $\lambda_{cyc} = 0$,
# 23 % (L1 0.074); 5 seeds, 500 steps each.

# %% tags=["lib"]
import io
from collections.abc import Mapping

from colabkit.data import CYCLEGAN_PRETRAINED_URL as PRETRAINED_URL  # the authors' generators: {name}.pth

PRETRAINED = {              # data set: (released generator X → Y, released generator Y → X); None: not released
    "horse2zebra": ("horse2zebra", "zebra2horse"),
    "apple2orange": ("apple2orange", "orange2apple"),
    "summer2winter_yosemite": ("summer2winter_yosemite", "winter2summer_yosemite"),
    "monet2photo": ("monet2photo", "style_monet"),
    "cezanne2photo": (None, "style_cezanne"),
    "ukiyoe2photo": (None, "style_ukiyoe"),
    "vangogh2photo": (None, "style_vangogh"),
    "maps": ("sat2map", "map2sat"),
    "iphone2dslr_flower": ("iphone2dslr_flower", None),
}
INSTANCE_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")


class PretrainedMismatch(ValueError):
    """A released generator file that does not fit: the message says what differs."""


def reference_name(name: str) -> str:
    """This notebook's name of a parameter → the reference ResnetGenerator's (`block` → `conv_block`)."""
    return name.replace(".block.", ".conv_block.")


def _describe_file(state: Mapping) -> str:
    """ngf and block count of a reference-layout state dict, for error messages."""
    first = state.get("model.1.weight")
    ngf = f"ngf={first.shape[0]}" if isinstance(first, torch.Tensor) and first.dim() == 4 else "ngf unknown"
    blocks = {k.split(".")[1] for k in state if ".conv_block." in k}
    return f"{ngf}, {len(blocks)} residual blocks" if blocks else f"{ngf}, no reference residual blocks"


def load_reference_generator(G: nn.Module, source, what: str = "the file") -> nn.Module:
    """Load a released generator (a reference-layout state dict: a file path, bytes or a dict) into G."""
    if not isinstance(source, Mapping):
        raw = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
        try:
            source = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise PretrainedMismatch(
                f"{what} ({len(raw):,} bytes) cannot be read as a PyTorch file ({type(exc).__name__}: {exc}). "
                "A truncated download or a Drive copy that had not finished syncing looks like this: delete "
                "the file (and its copy in the cache folder) and run the cell again.") from exc
    if not isinstance(source, Mapping):
        raise PretrainedMismatch(f"{what} holds a {type(source).__name__}, not a state dict "
                                 "(a mapping of parameter names to tensors).")
    not_tensors = [k for k, v in source.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise PretrainedMismatch(f"{what} is a mapping, but not of tensors: {not_tensors[:4]} hold "
                                 f"{type(source[not_tensors[0]]).__name__} values. A training checkpoint "
                                 "(networks, optimizers) is not a released generator.")
    norms = {reference_name(n + "."): m for n, m in G.named_modules() if isinstance(m, nn.InstanceNorm2d)}
    expected = {reference_name(k): (k, v) for k, v in G.state_dict().items()}
    state, dropped, unexpected = {}, 0, []
    for key, value in source.items():
        prefix, _, last = key.rpartition(".")
        if last in INSTANCE_NORM_STATS and prefix + "." in norms and key not in expected:
            dropped += 1        # instance-norm statistics that old PyTorch saved: unused, as in the reference
        elif key in expected:
            state[expected[key][0]] = value
        else:
            unexpected.append(key)
    missing = [k for k in expected if k not in source]
    shapes = [f"{k}: file {tuple(source[k].shape)}, here {tuple(v.shape)}"
              for k, (_, v) in expected.items() if k in source and source[k].shape != v.shape]
    if missing or unexpected or shapes:
        problems = []
        if shapes:
            problems.append(f"{len(shapes)} tensors have other shapes ({'; '.join(shapes[:3])})")
        if missing:
            problems.append(f"{len(missing)} tensors are missing ({', '.join(missing[:4])})")
        if unexpected:
            hint = (" (names with `.block.`: this notebook's own layout, not the reference's)"
                    if any(".block." in k for k in unexpected) else "")
            problems.append(f"{len(unexpected)} tensors are not in a ResnetGenerator ({', '.join(unexpected[:4])})"
                            + hint)
        n_blocks = sum(isinstance(m, ResnetBlock) for m in G.modules())
        ngf = G.model[1].out_channels
        raise PretrainedMismatch(
            f"{what} does not fit this generator (ngf={ngf}, {n_blocks} residual blocks; the file: "
            f"{_describe_file(source)}): " + "; ".join(problems) + ". The released CycleGAN generators are "
            "ngf=64 with 9 blocks (256×256 images).")
    G.load_state_dict(state, strict=True)
    G.dropped_instance_norm_stats = dropped
    return G


# %% [markdown]
# Download the authors' generators for this data set (cached on Drive like the data, so later
# sessions copy them from there), load them into copies of `G_xy` and `G_yx`, and check them on a
# test image. In smoke mode there is no network: a small generator written in the reference's
# layout, once with the old instance-norm entries, is served from a server on this machine
# (127.0.0.1), and the loaded copy must give exactly that generator's output.
#
# These networks are loaded independently of your training: you can look at them (section 7)
# or measure them at any point of your run. Press Interrupt, run the cells of sections 6 and 7,
# then run the training cell again: it continues where it stopped.

# %%
import contextlib

pretrained_names = dict(zip(("xy", "yx"), PRETRAINED.get(DATASET, (None, None))))
released_size = (NGF, N_BLOCKS) if SMOKE else (64, 9)     # the released files are ngf 64, 9 blocks
pretrained_dir = run.data_dir / ("standin" if SMOKE else "") / "pretrained"
pretrained_cache = Path(run.cache) / "standin" if SMOKE else run.cache
official = {}                      # "xy" / "yx" → the authors' generator, in eval mode
with contextlib.ExitStack() as stack:
    url = PRETRAINED_URL
    if SMOKE:
        payloads, standins = {}, {}
        with torch.random.fork_rng(devices=[]):     # the training RNG stays as it was
            for i, (d, name) in enumerate((d, n) for d, n in pretrained_names.items() if n):
                torch.manual_seed(SEED + 100 + i)
                standins[d] = init_weights(ResnetGenerator(*released_size)).eval()
                sd = {reference_name(k): v for k, v in standins[d].state_dict().items()}
                if i == 1:   # the format of files saved by old PyTorch versions
                    for m_name, m in standins[d].named_modules():
                        if isinstance(m, nn.InstanceNorm2d):
                            p = reference_name(m_name + ".")
                            sd[p + "running_mean"], sd[p + "running_var"] = torch.zeros(m.num_features), \
                                torch.ones(m.num_features)
                            sd[p + "num_batches_tracked"] = torch.tensor(0)
                buf = io.BytesIO()
                torch.save(sd, buf)
                payloads[f"{name}.pth"] = buf.getvalue()
        url = stack.enter_context(ck.loopback.serve(payloads)) + "/{name}.pth"
    for d, name in pretrained_names.items():
        if name is None:
            continue
        try:
            path = ck.data.fetch(url.format(name=name), f"{name}.pth", cache_dir=pretrained_cache,
                                 dest_dir=pretrained_dir)
            G_ref = load_reference_generator(ResnetGenerator(*released_size), path, what=f"{name}.pth")
        except (ck.data.DataError, PretrainedMismatch) as exc:
            if SMOKE:
                raise
            # The calibration is an extra: a dead server must not stop the evaluation of your own run.
            print(f"The authors' {name}.pth is unavailable, so it is left out ({exc})")
            continue
        official[d] = G_ref.to(run.device).eval()
        print(f"{name}.pth → copy of G_{d} ({count_params(G_ref):,} parameters; "
              f"{G_ref.dropped_instance_norm_stats} old instance-norm entries dropped)")
if not official:
    print(f"The authors released no generator known to fit {DATASET}: section 6 measures only your run.")
if SMOKE:
    probe = xs[:2].cpu()
    for d, G_ref in official.items():
        with torch.no_grad():
            assert torch.equal(G_ref.cpu()(probe), standins[d](probe)), d
        G_ref.to(run.device)
    assert sum(G.dropped_instance_norm_stats for G in official.values()) > 0

# %% [markdown]
# Now the measurement, on the authors' generators and on yours. The real test sets' statistics
# are computed once and cached on Drive. The generated images are quantised as the reference
# writes its PNGs (truncation) before they reach Inception.
#
# **Why these numbers are noisy.** FID estimates a mean and a 2048 × 2048 covariance from only
# 120 or 140 images, so it is biased upwards and moves by several points between checkpoints
# and between runs. To show the scale of that noise, the last line computes the FID between two
# random halves of the *real* test zebras: two samples of the same distribution, which would
# score 0 with unlimited images. Compare runs measured the same way, not single digits.
#
# In smoke mode the extractor is a tiny random network and **the numbers mean nothing**: the
# cell only proves the code path.

# %%
def as_png(images: torch.Tensor) -> torch.Tensor:
    """Generated images as the reference code saves them: uint8 by truncation (see the table above)."""
    return ck.metrics.to_uint8(images, rounding="truncate")


test_x = load_images(files["testA"], CROP_SIZE)
test_y = load_images(files["testB"], CROP_SIZE)
extractor = (ck.metrics.tiny_extractor() if SMOKE
             else ck.metrics.inception_extractor(cache_dir=run.cache, device=run.device, resize="pytorch-fid"))
tag = "standin-" if SMOKE else ""
stats_y = ck.metrics.cached_stats(f"cyclegan-{tag}{DATASET}-testB-{CROP_SIZE}", test_y, extractor,
                                  run.cache, device=run.device)
stats_x = ck.metrics.cached_stats(f"cyclegan-{tag}{DATASET}-testA-{CROP_SIZE}", test_x, extractor,
                                  run.cache, device=run.device)


def fid_of(G: nn.Module, source: torch.Tensor, real_stats, autocast=contextlib.nullcontext) -> float:
    mode = G.training
    G.eval()
    fake = translate(G, source, run.device, autocast)
    G.train(mode)
    assert fake.shape == source.shape
    value = ck.metrics.fid(as_png(fake), real_stats, extractor, device=run.device)
    assert value == value and value >= 0
    return value


# The authors' generators in float32, as they were evaluated; yours in the precision it trains in.
fid_official = {"xy": fid_of(official["xy"], test_x, stats_y) if "xy" in official else None,
                "yx": fid_of(official["yx"], test_y, stats_x) if "yx" in official else None}
fid_xy = fid_of(G_xy, test_x, stats_y, run.precision.autocast)   # X → Y
fid_yx = fid_of(G_yx, test_y, stats_x, run.precision.autocast)   # Y → X
halves = torch.randperm(len(test_y), generator=torch.Generator().manual_seed(0))
half = len(test_y) // 2
fid_floor = ck.metrics.fid(test_y[halves[:half]], test_y[halves[half:2 * half]], extractor, device=run.device)
assert fid_floor == fid_floor and fid_floor >= 0

a, b = DATASET.split("2") if "2" in DATASET else ("X", "Y")
yours = f"your run, after {loop.epoch} of {N_EPOCHS + N_EPOCHS_DECAY} epochs"
official_row = "CycleGAN official model (mmagic)"
if DATASET == "horse2zebra":
    for direction, key, mine in (("xy", "cyclegan_horse2zebra_fid", fid_xy),
                                 ("yx", "cyclegan_zebra2horse_fid", fid_yx)):
        measured = {yours: mine} if fid_official[direction] is None else {official_row: fid_official[direction],
                                                                           yours: mine}
        print(ck.metrics.compare_table(measured, key, digits=1, comparable=not SMOKE,
                                       why="smoke mode measures with a tiny random network, not pytorch-fid's "
                                       "Inception: another scale."))
        print()
    print("The official model's row is the calibration: the same released generator, measured here and by mmagic. "
          "Its difference is the pipeline's, not a model's.")
else:
    for direction, (src, dst), mine in (("xy", (a, b), fid_xy), ("yx", (b, a), fid_yx)):
        ref = fid_official[direction]
        ref_text = f"; the authors' released {pretrained_names[direction]}: {ref:.1f}" if ref is not None else ""
        print(f"{src} → {dst} FID: yours {mine:.1f}{ref_text} (no published FID for {DATASET} in the course's notes)")
print(f"noise floor, two halves of the real test set {half} vs {half} images: {fid_floor:.1f}")
print(f"extractor: {extractor.name}; generated images quantised by truncation, as the reference's PNGs")
if SMOKE:
    print("(smoke mode: tiny random extractor, stand-in images and stand-in 'released' generators: "
          "these numbers mean nothing)")

# %% [markdown]
# ## 7. Play
# Upload a photo, or pick a test image. Since the notebook cannot know which domain a photo
# belongs to, it shows both: the first row treats it as $x$ ($x \to G(x) \to F(G(x))$), the second
# row as $y$ ($y \to F(y) \to G(F(y))$). A good model changes a horse into a zebra and back, and
# leaves a photo it cannot place almost untouched (the identity loss at work).
#
# Below your networks, the same image through the authors' released generators (section 6), where
# they exist for this data set: what 200 epochs of the paper's training reach. Your networks are
# shown as they are now, so this works at any point of training (Interrupt, run this cell, run
# the training cell again).

# %%
import io

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display

to_input = test_transform(CROP_SIZE)
choices = [(f"X test: {p.name}", p) for p in files["testA"]] + [(f"Y test: {p.name}", p) for p in files["testB"]]
picker = widgets.Dropdown(options=choices, description="test image", layout=widgets.Layout(width="60%"))
upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload")
shown = widgets.Output()


def both_ways(image, g_xy: nn.Module | None, g_yx: nn.Module | None, autocast) -> list:
    """Rows of (title, image or None): x, G(x), F(G(x)) and the same image as y: y, F(y), G(F(y))."""
    v = to_input(image.convert("RGB")).unsqueeze(0)
    rows = []
    for name_in, first, second, t1, t2 in (("x", g_xy, g_yx, "G", "F"), ("y", g_yx, g_xy, "F", "G")):
        if first is None:
            continue
        once = translate(first, v, run.device, autocast)
        back = translate(second, once, run.device, autocast) if second is not None else None
        rows.append([(f"as {name_in}", v), (f"{t1}({name_in})", once), (f"{t2}({t1}({name_in}))", back)])
    return rows


def show(image) -> list:
    rows = [[(f"yours, {t}", im) for t, im in row]
            for row in both_ways(image, G_xy, G_yx, run.precision.autocast)]
    rows += [[(f"authors', {t}", im) for t, im in row]
             for row in both_ways(image, official.get("xy"), official.get("yx"), contextlib.nullcontext)]
    shown.clear_output(wait=True)
    with shown:
        fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.6 * len(rows)), squeeze=False)
        for ax_row, row in zip(axes, rows):
            for ax, (t, im) in zip(ax_row, row):
                if im is not None:
                    ax.imshow(im[0].permute(1, 2, 0).clamp(-1, 1).add(1).div(2).numpy())
                    ax.set_title(t, fontsize=9)
                ax.axis("off")
        plt.tight_layout()
        ck.show(fig)
    plt.close("all")
    return rows


def on_pick(change):
    show(load_rgb(change["new"]))


def on_upload(change):
    value = change["new"]
    items = list(value.values()) if isinstance(value, dict) else list(value)   # ipywidgets 7 / 8
    if items:
        show(Image.open(io.BytesIO(bytes(items[-1]["content"]))))


picker.observe(on_pick, names="value")
upload.observe(on_upload, names="value")
display(widgets.VBox([widgets.HBox([picker, upload]), shown]))
played = show(load_rgb(files["testA"][0]))
assert len(played) == 2 + sum(d in official for d in ("xy", "yx"))
assert all(im.shape == (1, 3, CROP_SIZE, CROP_SIZE) and torch.isfinite(im).all()
           for row in played for _, im in row if im is not None)

# %% [markdown]
# ## Appendix: Making it fast
#
# How the default step (`STEP = "fast"`, section 5) gets its speed without changing the math.
#
# At batch 1 a 256×256 step is about 2.1 TFLOP: a modern GPU does that arithmetic in a few
# milliseconds, yet the plain step takes about 94 ms on an H200 (10.6 steps/s, measured for the
# course). The time goes to thousands of small kernels launched one by one from Python. The
# default step keeps the math and removes the waste:
#
# 1. **Batches of two where it is exact.** $G$ is applied to $x$ (translation) and to $y$
#    (identity) with the same weights, so `G_xy` runs once on $[x; y]$; likewise `G_yx` on
#    $[y; x]$ and each discriminator on $[\text{real}; \text{fake}]$. Instance norm takes its
#    statistics per image, convolutions and activations act per image, and the discriminator's
#    first layer (no norm) is a convolution: each half of the output is exactly what a call on
#    that image alone gives. The losses are computed on each half separately, so every term is
#    the one-image term (an LSGAN mean over one image's patch map, not over both). Eight network
#    calls instead of twelve.
# 2. **Precision per GPU**: bf16 autocast on compute capability ≥ 8.0 (A100, L4, H100), fp16
#    with a gradient scaler on a T4. The losses are computed in fp32 (autocast does that for
#    `mse_loss` and `l1_loss`); the weights and Adam's moments stay fp32.
# 3. **Fused Adam**: one kernel updates all parameters of an optimizer.
# 4. **No host synchronisation**: nothing in the step waits for the GPU. The losses come back as
#    GPU tensors and `loop.log` fetches them in one transfer every `LOG_EVERY` steps; the
#    history's coin flips use Python's random generator, not GPU values.
# 5. **CUDA graphs** (bf16 GPUs): after three ordinary steps, the generator update
#    (forward, backward, Adam) and the discriminator update are each recorded once as a CUDA
#    graph and then replayed: one launch replaces thousands. The history query runs between the
#    two replays, in Python, on a *copy* of the generated images — a graph's outputs are
#    overwritten by its next replay (the failure noted with `torch.compile(mode="reduce-overhead")`,
#    whose graphs fed each other). A graph bakes in the learning rate and the optimizer's state
#    tensors, so it is recorded again when either changes (the learning rate changes once per
#    epoch during the decay; a resume replaces the optimizer state). The first replay of every
#    recording is checked against an ordinary forward pass. On a T4 the fp16 step, which needs
#    the gradient scaler, runs eager: there the arithmetic, not the launches, is the bottleneck.
#
# Two tools are available but **off by default**:
#
# - `CHANNELS_LAST` (NHWC tensors, the layout tensor-core convolutions prefer). PyTorch's instance
#   norm computes in the NCHW layout, so in this network every layer converts back and forth and
#   the layout buys little. Worse, with PyTorch 2.11 and 2.14 on the CPU, instance norm at batch 1 returns
#   wrong gradients when the gradient arriving from the next layer is channels_last: the outputs
#   are right, but the weight gradients of the layers before it are off by tens of percent (the
#   course's tests found this). Whether a GPU build has the same flaw is what
#   `bench/bench_cyclegan.py --ablate` checks, by comparing gradients with the plain step's.
# - `COMPILE` (`torch.compile` of the four networks) fuses small kernels. It took 129 s on an
#   H200 for this model, paid again in every Colab session; the course measured 17.0 steps/s
#   for the plain step with bf16, channels_last and compile, against 10.6 for the plain fp32
#   step and 14.9 for the batched bf16 eager step (without CUDA graphs). CUDA graphs remove the
#   launch overhead without compiling; `bench/bench_cyclegan.py --compile` measures on your GPU
#   whether compiling on top pays back, and after how many steps.
#
# `fast_step` (in the folded cell of section 5) is the eager version (1–4); `GraphedStep` records
# its two halves as graphs.

# %% [markdown]
# **One step, both ways.** From copies of the same state (the trained networks), `plain_step`
# and the eager `fast_step` give the same losses: exactly the same math (to float rounding in
# fp32; to bf16 rounding on a GPU that trains in bf16). The copies are thrown away. `tests/` checks
# the same over many steps in float64, and the graphed step against the eager one.

# %%
import copy

rng_saved = random.getstate()
eager_model = CycleGAN(G_xy, G_yx, D_x, D_y, opt_G, opt_D, pool_x, pool_y, LAMBDA_CYC, LAMBDA_IDT)
m_plain, m_fast = copy.deepcopy(eager_model), copy.deepcopy(eager_model)   # never compiled: no compile time
x1, y1 = preview[0][0].to(run.device), preview[0][1].to(run.device)
random.setstate(rng_saved)
losses_plain = plain_step(m_plain, x1, y1)
random.setstate(rng_saved)
with warnings.catch_warnings():   # the copies' Adam is graph-capturable; here it runs eagerly, once
    warnings.filterwarnings("ignore", message=".*capturable=True.*")
    losses_fast = fast_step(m_fast, x1, y1, FastSettings(run.device.type, run.precision.dtype,
                                                         channels_last=use_cl))
random.setstate(rng_saved)
tol = 1e-4 if run.precision.dtype is None else 5e-2
print(f"{'loss':<9} {'plain':>10} {'fast':>10}")
for k in LOSS_NAMES:
    a, b = float(losses_plain[k]), float(losses_fast[k])
    print(f"{k:<9} {a:>10.5f} {b:>10.5f}")
    assert torch.isfinite(torch.tensor([a, b])).all()
    assert abs(a - b) <= tol * max(1.0, abs(a)), (k, a, b)
del m_plain, m_fast
