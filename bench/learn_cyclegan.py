"""Does the CycleGAN notebook learn a translation? Its own definitions on two unpaired digit domains.

    python bench/learn_cyclegan.py                    # seed 0: the working run and its control, CPU
    python bench/learn_cyclegan.py --seeds 0 1 2 3 4  # the spread over seeds (about 6 min a seed)
    python bench/learn_cyclegan.py --smoke            # a few steps: proves the script runs, numbers mean nothing

The two domains are built from scikit-learn's real handwritten digits (bench/digits.py), 32×32:

    X  the digit as it is (upsampled to 24×24), centred on a black 32×32 canvas: a grey stroke on
       black, as 3 equal channels;
    Y  the same digit in another style: the stroke thickened by a 5×5 dilation (a max filter,
       ±2 pixels), moved 4 pixels up and 4 right, and drawn as dark-blue ink on a cream
       background (the grey value v in [0, 1] becomes cream + v·(blue − cream), so the
       intensity is also inverted).

Neither a trivial map solves it. The identity map is far off (inverted, coloured, moved). No
per-pixel colour map can solve it either: the dilation and the shift put ink where x is black,
and a per-pixel map sees only the pixel's own value. The bench measures the best such map
directly (an oracle fitted on paired pixels: for each of 64 grey levels of x, the per-channel
median of the matching y pixels, the L1-optimal per-pixel function) and prints its figures beside
the networks'. (Without the shift, this oracle came within 0.03 of y in L1, most pixels being
background: a dilation alone was too easy to imitate pixel by pixel.) What is left must be
learned spatially, by convolutions.

Unpaired training: X draws only from one half of the training digits, Y only from the other half,
each in its own random order, so no (x, y) of the same digit is ever seen. The pairs of the
held-out test digits (450) are used for scoring only:

    L1 G(x)     mean |G(x) − y| against x's true counterpart y (pixels on the [0, 1] scale)
    L1 F(y)     mean |F(y) − x| against y's true counterpart x
    class G(x)  share of test digits whose G(x) a Y-style judge reads as x's label. The judge is
                bench/digits.py's SVC setup trained on the Y-style training digits; it reads an
                image after undoing the colour (projecting each pixel onto the cream→blue line,
                the exact inverse of the colouring step; the dilation has no inverse, which is
                why this judge is trained on dilated digits)
    class F(y)  share whose F(y) the real-digit judge (digits.Judge, shown the 24×24 box) reads as
                the label
    class FG(x) share whose F(G(x)) the real-digit judge reads as the label (the round trip)

Working run: the notebook's losses (LSGAN, λ_cyc = 10, identity 0.5 λ), image histories of 50, its
fast step (fp32 on the CPU), Adam 2e-4, β = (0.5, 0.999), at a reduced size: ngf = ndf = 8, 2
residual blocks, 32×32 (the PatchGAN's output is then 2×2; at 16×16 it would be empty), batch 4
(the paper's batch is 1; instance norm is per image, so the batch only averages gradients), a
constant learning rate (no decay in so short a run).
Control: the same run with λ_cyc = 0. In the notebook (and the paper) the identity weight is
0.5 λ_cyc, so this removes the identity loss too; everything else is unchanged: the same initial
weights, the same batches in the same order, the same history coin flips, the same adversarial
losses. `--no-cycle-keep-identity` adds a second control that drops only the cycle term and
keeps the identity term at 5 (the notebook's cycle_loss replaced, in a private copy of its
definitions, by a zero of the same graph).

The PNG grids (rows: x, G(x), true y, F(G(x)), one column per class) go to --out
(default bench-results/learn_cyclegan/, which git ignores).

Measured (CPU, torch 2.14.1, 1 thread, seeds 0-4, 500 steps, all 450 test pairs; mean ± sd):

    run                      L1 G(x)        L1 F(y)        class G(x)     class F(y)     class FG(x)
    working                  0.033 ± 0.003  0.044 ± 0.002  0.950 ± 0.007  0.914 ± 0.023  0.973 ± 0.009
    control λ_cyc = 0        0.074 ± 0.003  0.175 ± 0.028  0.225 ± 0.085  0.184 ± 0.086  0.130 ± 0.022
    no cycle, identity 5     0.060 ± 0.007  0.088 ± 0.026  0.376 ± 0.097  0.478 ± 0.236  0.224 ± 0.102
    identity map             0.605          0.605          0.105          0.105
    per-pixel oracle         0.139                         0.096
    true counterpart         0              0              0.984          0.998

The control's generators ignore their input (one blob for every digit in the grids); with the
identity term kept they follow it a little. One seed (working + control) took about 5.5 min of
wall-clock on a 2-core machine shared with four other jobs, about 1.7 min of CPU time.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import digits  # noqa: E402  (bench/digits.py)

from colabkit import nbcells  # noqa: E402

NOTEBOOK = REPO / "notebooks" / "02_cyclegan.py"
SIZE = 32                                   # the images the networks see
BOX = 24                                    # the digit's own size inside them
X_AT = (4, 4)                               # X: the digit centred (top, left)
SHIFT = 4                                   # Y: moved SHIFT pixels up and SHIFT pixels right
Y_AT = (X_AT[0] - SHIFT, X_AT[1] + SHIFT)
DILATE = 5                                  # max filter width: ±2 pixels of extra stroke
JUDGE_SIZE = 16
CREAM = torch.tensor([0.95, 0.90, 0.70])    # Y's background, [0, 1] RGB
BLUE = torch.tensor([0.10, 0.20, 0.60])     # Y's ink


# --- the two domains ------------------------------------------------------------------------------
def _place(d: torch.Tensor, at: tuple[int, int]) -> torch.Tensor:
    """(N, 1, BOX, BOX) in [-1, 1] on a black SIZE×SIZE canvas, top-left corner at `at`."""
    out = torch.full((d.shape[0], 1, SIZE, SIZE), -1.0)
    out[:, :, at[0]:at[0] + BOX, at[1]:at[1] + BOX] = d
    return out


def style_x(d: torch.Tensor) -> torch.Tensor:
    """(N, 1, BOX, BOX) digits in [-1, 1] → X: centred, the same grey in 3 channels."""
    return _place(d, X_AT).expand(-1, 3, -1, -1).contiguous()


def style_y(d: torch.Tensor) -> torch.Tensor:
    """(N, 1, BOX, BOX) digits in [-1, 1] → Y: dilated, moved up-right, blue ink on cream, in [-1, 1]."""
    v = F.max_pool2d((d + 1) / 2, DILATE, stride=1, padding=DILATE // 2)
    v = (_place(v * 2 - 1, Y_AT) + 1) / 2
    rgb = CREAM.view(1, 3, 1, 1) + v * (BLUE - CREAM).view(1, 3, 1, 1)
    return rgb * 2 - 1


def crop_x(images: torch.Tensor) -> torch.Tensor:
    """X-style images → the digit's box, the frame digits.Judge was trained on."""
    return images[:, :, X_AT[0]:X_AT[0] + BOX, X_AT[1]:X_AT[1] + BOX]


def uncolour_y(images: torch.Tensor) -> torch.Tensor:
    """Y-style (N, 3, H, W) in [-1, 1] → (N, 1, H, W) grey in [-1, 1]: the colouring undone.

    Each pixel is projected onto the cream→blue line (exact for true Y images; for generated ones,
    the nearest point of that line). The dilation stays: it has no inverse."""
    rgb = (images.detach().float().cpu().clamp(-1, 1) + 1) / 2
    axis = (BLUE - CREAM).view(1, 3, 1, 1)
    v = ((rgb - CREAM.view(1, 3, 1, 1)) * axis).sum(1, keepdim=True) / (axis ** 2).sum()
    return v.clamp(0, 1) * 2 - 1


class StyleJudge(digits.Judge):
    """digits.Judge's SVC, trained on the Y-style training digits (read through uncolour_y)."""

    def __init__(self, size: int = JUDGE_SIZE, seed: int = 0):
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC

        self.size = size
        train_x, train_y, test_x, test_y = digits.load_digits(BOX, seed)
        self.svc = CalibratedClassifierCV(SVC(gamma="scale", C=10.0), method="sigmoid", cv=5, ensemble=False)
        self.svc.fit(digits.to_gray01(uncolour_y(style_y(train_x)), size), train_y.numpy())
        self.test_x, self.test_y = style_y(test_x), test_y
        self.accuracy = float((self.proba(self.test_x).argmax(1) == test_y.numpy()).mean())

    def proba(self, images: torch.Tensor) -> np.ndarray:
        return self.svc.predict_proba(digits.to_gray01(uncolour_y(images), self.size))


def pointwise_oracle(x: torch.Tensor, y: torch.Tensor, levels: int = 64):
    """The L1-best per-pixel map X → Y, fitted on paired pixels: for each grey level of x, the
    per-channel median of the y pixels at the same places. Returns the map as a function."""
    g = ((x[:, 0].clamp(-1, 1) + 1) / 2 * (levels - 1)).round().long().flatten()
    yy = y.permute(1, 0, 2, 3).reshape(3, -1)
    table = torch.zeros(levels, 3)
    for level in range(levels):
        sel = g == level
        if sel.any():
            table[level] = yy[:, sel].median(dim=1).values
        elif level:
            table[level] = table[level - 1]

    def apply(images: torch.Tensor) -> torch.Tensor:
        idx = ((images[:, 0].clamp(-1, 1) + 1) / 2 * (levels - 1)).round().long()
        return table[idx].permute(0, 3, 1, 2)

    return apply


def l1_01(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference of images in [-1, 1], on the [0, 1] scale."""
    return float((a.clamp(-1, 1) - b.clamp(-1, 1)).abs().mean() / 2)


class Domains:
    """Unpaired training domains and the held-back test pairs."""

    def __init__(self, seed: int = 0):
        train_d, train_label, test_d, test_label = digits.load_digits(BOX, seed=0)
        half = len(train_d) // 2
        self.train_x = style_x(train_d[:half])           # X only ever sees the first half
        self.train_y = style_y(train_d[half:])           # Y only the second half
        self.test_x, self.test_y = style_x(test_d), style_y(test_d)   # pairs: scoring only
        self.test_label = test_label.numpy()
        # the pointwise oracle may see pairs (it is a bound for a class of maps, not a contender)
        self.oracle = pointwise_oracle(style_x(train_d), style_y(train_d))
        self.gen = torch.Generator().manual_seed(1000 + seed)

    def batch(self, n: int):
        """n random X images and n independent random Y images."""
        i = torch.randint(0, len(self.train_x), (n,), generator=self.gen)
        j = torch.randint(0, len(self.train_y), (n,), generator=self.gen)
        return self.train_x[i], self.train_y[j]


# --- training ----------------------------------------------------------------------------------
def load_notebook(keep_identity_without_cycle: bool = False):
    """The notebook's lib cells; with the flag, a private copy whose cycle_loss is a zero."""
    if not keep_identity_without_cycle:
        return nbcells.load(NOTEBOOK)
    ns: dict = {"__name__": "nbcells_02_cyclegan_nocycle"}
    nb = nbcells.load(NOTEBOOK, namespace=ns)
    ns["cycle_loss"] = lambda rec, orig: (rec - orig).abs().mean() * 0.0   # the step reads this global
    return nb


def build(nb, seed: int, ngf: int, n_blocks: int, lambda_cyc: float, pool: int = 50):
    torch.manual_seed(seed)
    G_xy, G_yx = (nb.init_weights(nb.ResnetGenerator(ngf, n_blocks)) for _ in range(2))
    D_x, D_y = (nb.init_weights(nb.PatchDiscriminator(ngf)) for _ in range(2))
    opt_G, opt_D = nb.make_optimizers(G_xy, G_yx, D_x, D_y, 2e-4, (0.5, 0.999))
    return nb.CycleGAN(G_xy, G_yx, D_x, D_y, opt_G, opt_D, nb.ImagePool(pool), nb.ImagePool(pool),
                       lambda_cyc, 0.5)


@torch.no_grad()
def evaluate(m, dom: Domains, judge, style_judge, n: int | None = None) -> dict:
    x, y, label = dom.test_x[:n], dom.test_y[:n], dom.test_label[:n]
    nets = (m.G_xy, m.G_yx)
    for net in nets:
        net.eval()   # (no dropout or running statistics in these nets: eval changes nothing)
    gx, fy = m.G_xy(x), m.G_yx(y)
    fgx = m.G_yx(gx)
    for net in nets:
        net.train()
    return {
        "L1 G(x)": l1_01(gx, y),
        "L1 F(y)": l1_01(fy, x),
        "class G(x)": float((style_judge.proba(gx).argmax(1) == label).mean()),
        "class F(y)": float((judge.proba(crop_x(fy)).argmax(1) == label).mean()),
        "class FG(x)": float((judge.proba(crop_x(fgx)).argmax(1) == label).mean()),
    }


def baselines(dom: Domains, judge, style_judge) -> dict:
    """The same figures for the identity map and the pointwise oracle (X → Y only; F has no oracle here)."""
    x, y, label = dom.test_x, dom.test_y, dom.test_label
    ox = dom.oracle(x)
    return {
        "identity": {"L1 G(x)": l1_01(x, y), "L1 F(y)": l1_01(y, x),
                     "class G(x)": float((style_judge.proba(x).argmax(1) == label).mean()),
                     "class F(y)": float((judge.proba(crop_x(y)).argmax(1) == label).mean())},
        "per-pixel oracle": {"L1 G(x)": l1_01(ox, y),
                             "class G(x)": float((style_judge.proba(ox).argmax(1) == label).mean())},
        "true counterpart": {"L1 G(x)": 0.0, "L1 F(y)": 0.0,
                             "class G(x)": float((style_judge.proba(y).argmax(1) == label).mean()),
                             "class F(y)": float((judge.proba(crop_x(x)).argmax(1) == label).mean())},
    }


def train(nb, dom: Domains, judge, style_judge, *, seed: int, steps: int, every: int, lambda_cyc: float,
          ngf: int = 8, n_blocks: int = 2, batch: int = 4, eval_n: int | None = None, log=print):
    """Train from scratch; evaluate every `every` steps. Returns (model, [(step, figures)], seconds)."""
    m = build(nb, seed, ngf, n_blocks, lambda_cyc)
    dom.gen.manual_seed(1000 + seed)   # the same batches for the working run and its control
    random.seed(seed)                  # the image histories' coin flips
    fs = nb.FastSettings("cpu", None, None)
    history = [(0, evaluate(m, dom, judge, style_judge, eval_n))]
    t0, t_eval = time.perf_counter(), 0.0
    for step in range(1, steps + 1):
        x, y = dom.batch(batch)
        losses = nb.fast_step(m, x, y, fs)
        if step % every == 0 or step == steps:
            t1 = time.perf_counter()
            figs = evaluate(m, dom, judge, style_judge, eval_n)
            figs["loss_G"] = float(losses["loss_G"])
            history.append((step, figs))
            t_eval += time.perf_counter() - t1
            log(f"  step {step:5d}  " + "  ".join(f"{k} {v:.3f}" for k, v in figs.items()))
    return m, history, time.perf_counter() - t0 - t_eval


@torch.no_grad()
def save_grid(m, dom: Domains, path: Path, title: str) -> None:
    """Rows x, G(x), true y, F(G(x)); one test digit of each class."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = [int(np.flatnonzero(dom.test_label == c)[0]) for c in range(10)]
    x, y = dom.test_x[idx], dom.test_y[idx]
    gx = m.G_xy(x)
    rows = [("x", x), ("G(x)", gx), ("true y", y), ("F(G(x))", m.G_yx(gx))]
    fig, axes = plt.subplots(len(rows), 10, figsize=(10, 4.4))
    for r, (name, images) in enumerate(rows):
        for c in range(10):
            ax = axes[r, c]
            ax.imshow(((images[c].clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--ngf", type=int, default=8)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--eval-n", type=int, default=None, help="test pairs scored (default: all 450)")
    p.add_argument("--no-cycle-keep-identity", action="store_true",
                   help="a second control: cycle term 0, identity term kept at 0.5·10")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: on a shared CPU, more threads made a step 35× slower here)")
    p.add_argument("--out", type=Path, default=REPO / "bench-results" / "learn_cyclegan")
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.seeds, args.steps, args.every, args.eval_n = [0], 4, 2, 40
    if args.steps < 1 or args.every < 1 or args.batch < 1:
        p.error("--steps, --every and --batch must be at least 1")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    judge, style_judge, dom = digits.Judge(JUDGE_SIZE), StyleJudge(JUDGE_SIZE), Domains()
    print(f"judges: real digits {judge.accuracy:.3f} accurate, Y-style digits {style_judge.accuracy:.3f} "
          f"({time.perf_counter() - t0:.0f} s)")
    base = baselines(dom, judge, style_judge)
    variants = [("working", 10.0, False), ("control λ_cyc=0", 0.0, False)]
    if args.no_cycle_keep_identity:
        variants.append(("no cycle, identity 5", 10.0, True))
    nbs = {flag: load_notebook(flag) for flag in {v[2] for v in variants}}

    finals: dict = {name: [] for name, _, _ in variants}
    curves: dict = {}
    for seed in args.seeds:
        for name, lam, keep_idt in variants:
            print(f"seed {seed}, {name}:")
            m, hist, secs = train(nbs[keep_idt], dom, judge, style_judge, seed=seed, steps=args.steps,
                                  every=args.every, lambda_cyc=lam, ngf=args.ngf, n_blocks=args.blocks,
                                  batch=args.batch, eval_n=args.eval_n)
            print(f"  {args.steps} steps in {secs:.0f} s ({args.steps / secs:.1f} steps/s, evaluation not counted)")
            finals[name].append(hist[-1][1])
            curves[(seed, name)] = hist
            tag = {"working": "working", "control λ_cyc=0": "control"}.get(name, "nocycle_identity")
            save_grid(m, dom, args.out / f"cyclegan_digits_seed{seed}_{tag}.png",
                      f"{name}, seed {seed}, step {args.steps}")

    keys = ["L1 G(x)", "L1 F(y)", "class G(x)", "class F(y)", "class FG(x)"]
    short = {"working": "work", "control λ_cyc=0": "ctrl", "no cycle, identity 5": "idt only"}
    print(f"\nOver training, seed {args.seeds[0]} (L1 on the [0, 1] scale; class = share read as x's label):")
    header = ["step"] + [f"{k} {short[name]}" for k in keys for name, _, _ in variants]
    runs = [curves[(args.seeds[0], name)] for name, _, _ in variants]
    rows = [[points[0][0]] + [p[1][k] for k in keys for p in points] for points in zip(*runs)]
    print(digits.markdown_table(header, rows))

    print(f"\nAfter {args.steps} steps, mean ± sd over seeds {args.seeds} (min–max):")
    rows = []
    for name, _, _ in variants:
        cells = []
        for k in keys:
            vals = np.array([f[k] for f in finals[name]])
            cells.append(f"{vals.mean():.3f} ± {vals.std(ddof=1) if len(vals) > 1 else 0:.3f} "
                         f"({vals.min():.3f}–{vals.max():.3f})")
        rows.append([name] + cells)
    for name, figs in base.items():
        rows.append([name] + [f"{figs[k]:.3f}" if k in figs else "—" for k in keys])
    print(digits.markdown_table(["run"] + keys, rows))
    print(f"\ngrids in {args.out}; total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
