"""BEGAN learns real digits: the notebook's own networks, losses, controller and training step on
scikit-learn's handwritten digits, beside the same run with k_t frozen at 0 (the control).

    python bench/learn_began.py                      # the benchmark: seed 0, 3,000 steps, working and control
    python bench/learn_began.py --seeds 0 1 2 --steps 600 --eval-every 300 --eval-n 300 --window 200 \
        --warn-after 400 --gamma 0.7 --g-lr-scale 4  # the short version whose spread sets the test's margins
    python bench/learn_began.py --h 64 --n 16 ...    # anything the notebook leaves as a setting

Every `--eval-every` steps it samples `--eval-n` images from fixed noise and scores them with
bench/digits.py's Judge (an SVC trained on real digits): the share it reads with confidence > 0.9,
how many of the 10 classes get at least 3 % of the samples, and the mean pairwise L1 between samples
(next to the held-out real digits' value); with the window's mean of M_global, k_t at that step and
the window's mean of L(G(z)) / L(x), which the controller drives towards γ. The control is the same
run with λ_k = 0, so that k_t stays at k_0 = 0: D then only auto-encodes real digits and nothing
pushes back on G, the known BEGAN failure. A PNG of 100 samples per run goes to --out.

The networks, losses, controller, training step, initialisation, optimiser set-up, lr-halving
rule and k_t watch are the notebook's (colabkit.nbcells loads its cells tagged "lib"). The defaults
are the best setting found with this script (notebook 01, section 5, has every setting tried): 16×16,
n = 8, h = z = 8, Glorot init, Adam β = (0.9, 0.999), D's lr 5e-5 (half the paper's 1e-4; the
public TF reproduction starts at 8e-5) with G's 16× (G_LR_SCALE), the lr floor 2e-5, γ = 0.9; the
paper's λ_k = 0.001, k_0 = 0, batch 16. It meets the issue's target (≥ 8 digits with ≥ 3 % of the
samples, ≥ 70 % confident) at step 3,000 on 7 of seeds 0–9, not on all: the small model hops between
groups of digits. `--gamma 0.7 --g-lr-scale 4` is the earlier small-model setting (1 or 2 of 5 seeds),
which the test's margins were measured with.
`--ema 0.99 0.999` also scores averages of G's weights (a diagnostic outside the paper; training is unchanged);
`--anneal-from S` halves the lr at the end of every window from step S on; `--channels 1` trains on the
grey digits in one channel (the default copies the grey into the three channels the notebook's networks draw).
`--h 64 --g-lr-scale 1 --init torch --beta1 0.5 --lr 1e-4 --gamma 0.5` is the notebook's former
configuration, whose k_t collapses; `--skip` is the paper's skip variant.

Runtime: one run of 3,000 steps takes about 1.5 minutes on one idle thread; on the shared 2-core
machine (load ~7) it took about 5.5 minutes. The training dominates, the judge takes seconds.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import torch

import colabkit as ck
import colabkit.nbcells

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from digits import Judge, load_digits, markdown_table, with_defaults  # noqa: E402

nb = colabkit.nbcells.load(REPO / "notebooks" / "01_began.py")

# The notebook's defaults, at a reduced width (n) for 16×16 digits on two CPU cores.
DEFAULTS = dict(size=16, n=8, h=8, z=None, batch=16, steps=3000,
                lr=5e-5, g_lr_scale=16.0, beta1=0.9, beta2=0.999, init="xavier", gamma=0.9, lambda_k=0.001, k_0=0.0,
                window=500, patience=3, tolerance=0.01, lr_floor=2e-5, eval_every=500, eval_n=500,
                warn_after=1000, skip=False, ema=(), anneal_from=None, channels=3, seed=0, control=False)


def make_config(**kw) -> dict:
    cfg = with_defaults(DEFAULTS, **kw)
    if cfg["z"] is None:
        cfg["z"] = cfg["h"]
    return cfg


_DIGITS: dict[tuple[int, int], torch.Tensor] = {}


def training_digits(size: int, channels: int = 3) -> torch.Tensor:
    """The training digits (the judge's own training split) as images in [-1, 1] with `channels` equal channels."""
    if (size, channels) not in _DIGITS:
        train_x = load_digits(size)[0]
        _DIGITS[size, channels] = train_x.expand(-1, channels, -1, -1).contiguous()
    return _DIGITS[size, channels]


def train_began(cfg: dict, judge: Judge, *, log=print) -> dict:
    """Train one run as the notebook does (without the checkpointing): rows of figures every
    cfg["eval_every"] steps, the final samples and the wall-clock."""
    torch.manual_seed(cfg["seed"])
    data = training_digits(cfg["size"], cfg["channels"])
    G = nb.init_weights(nb.Generator(cfg["size"], cfg["n"], cfg["z"], skip=cfg["skip"], channels=cfg["channels"]),
                        cfg["init"])
    D = nb.init_weights(nb.Discriminator(cfg["size"], cfg["n"], cfg["h"], skip=cfg["skip"], channels=cfg["channels"]),
                        cfg["init"])
    betas = (cfg["beta1"], cfg["beta2"])
    opt_G = nb.make_adam(G, cfg["lr"], betas, lr_scale=cfg["g_lr_scale"])
    opt_D = nb.make_adam(D, cfg["lr"], betas)
    prec = ck.Precision("fp32", "cpu")
    scaler = prec.make_scaler()
    train = ck.State(k_t=torch.tensor(cfg["k_0"]), lr=cfg["lr"], M_sum=torch.zeros(()), M_best=math.inf,
                     stalled=0, halvings=0, k_max=torch.zeros(()), k_zero_steps=0)
    lambda_k = 0.0 if cfg["control"] else cfg["lambda_k"]
    # A diagnostic, not the paper: exponential moving averages of G's weights (one per decay in cfg["ema"]),
    # scored beside G itself at every evaluation; they never feed back into training.
    G_ema = {d: copy.deepcopy(G).requires_grad_(False) for d in cfg["ema"]}
    z_fixed = nb.sample_z(cfg["eval_n"], cfg["z"], "cpu", generator=torch.Generator().manual_seed(10_000))
    order = torch.Generator().manual_seed(cfg["seed"] + 1)
    perm, pos = torch.randperm(len(data), generator=order), 0
    rows, warnings = [], []
    ratio_sum = M_sum = 0.0
    since = 0
    t0 = time.perf_counter()
    for step in range(1, cfg["steps"] + 1):
        if pos + cfg["batch"] > len(perm):
            perm, pos = torch.randperm(len(data), generator=order), 0
        x = data[perm[pos:pos + cfg["batch"]]]
        pos += cfg["batch"]
        out = nb.train_step(x, G, D, opt_G, opt_D, scaler, train, gamma=cfg["gamma"], lambda_k=lambda_k,
                            precision=prec)
        ratio_sum += float(out["L_G"] / out["L_x"])
        M_sum += float(out["M_global"])
        since += 1
        train.k_max = torch.maximum(train.k_max, train.k_t)     # as the notebook's loop does
        with torch.no_grad():
            for decay, avg in G_ema.items():
                for p_avg, p in zip(avg.parameters(), G.parameters()):
                    p_avg.lerp_(p, 1 - decay)
        if step % cfg["window"] == 0:
            # From step anneal_from on, every window counts as stalled (patience 1, and no mean can be
            # 100 % below the best): the lr halves at the end of every window, down to the floor.
            annealing = cfg["anneal_from"] is not None and step >= cfg["anneal_from"]
            nb.end_of_window(train, [opt_G, opt_D], window=cfg["window"],
                             patience=1 if annealing else cfg["patience"],
                             tolerance=1.0 if annealing else cfg["tolerance"], floor=cfg["lr_floor"])
            msg = nb.watch_k(train, window=cfg["window"], warn_after=cfg["warn_after"])
            if msg:
                warnings.append((step, msg))
        if step % cfg["eval_every"] == 0 or step == cfg["steps"]:
            with torch.no_grad():
                samples = G(z_fixed)
            s = judge.score(samples)
            row = dict(step=step, confident=s["confident"], classes=s["classes"], diversity=s["diversity"],
                       M_global=M_sum / since, k_t=float(train.k_t), ratio=ratio_sum / since, lr=train.lr,
                       counts=s["counts"], seconds=time.perf_counter() - t0)
            if G_ema:
                with torch.no_grad():
                    row["ema"] = {str(decay): judge.score(avg(z_fixed)) for decay, avg in G_ema.items()}
            rows.append(row)
            ratio_sum = M_sum = 0.0
            since = 0
            log(f"  {'control' if cfg['control'] else 'working'} seed {cfg['seed']} step {step:>5}: "
                f"confident {row['confident']:.1%}, classes {row['classes']}, diversity {row['diversity']:.3f}, "
                f"M {row['M_global']:.4f}, k_t {row['k_t']:.4f}, L(G)/L(x) {row['ratio']:.3f}, lr {train.lr:.2g}, "
                f"counts {row['counts']} ({row['seconds']:.0f} s)")
            for decay, e in row.get("ema", {}).items():
                log(f"    G's average, decay {decay}: confident {e['confident']:.1%}, classes {e['classes']}, "
                    f"diversity {e['diversity']:.3f}, counts {e['counts']}")
    with torch.no_grad():
        final = G(z_fixed[:100])
    return dict(rows=rows, samples=final, seconds=time.perf_counter() - t0, warnings=warnings,
                k_t=float(train.k_t), lr=train.lr)


def save_grid(samples: torch.Tensor, path: Path, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = ck.image_grid(samples, nrow=10)
    fig, ax = plt.subplots(figsize=(5, 5.3))
    ax.imshow(grid.permute(1, 2, 0).numpy())
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int)
    p.add_argument("--size", type=int, choices=[16, 32])
    p.add_argument("--n", type=int, help="filters of the first scale")
    p.add_argument("--h", type=int, help="bottleneck size")
    p.add_argument("--z", type=int, help="noise size (default: = h)")
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--lr-floor", type=float)
    p.add_argument("--g-lr-scale", "--g-lr-mult", dest="g_lr_scale", type=float,
                   help="G's learning rate as a multiple of D's (the notebook's G_LR_SCALE)")
    p.add_argument("--beta1", type=float)
    p.add_argument("--beta2", type=float)
    p.add_argument("--init", choices=["xavier", "torch"])
    p.add_argument("--gamma", type=float)
    p.add_argument("--lambda-k", type=float)
    p.add_argument("--window", type=int, help="lr-stall window (steps)")
    p.add_argument("--patience", type=int)
    p.add_argument("--tolerance", type=float)
    p.add_argument("--eval-every", type=int)
    p.add_argument("--eval-n", type=int)
    p.add_argument("--warn-after", type=int, help="steps of k_t at 0 before the notebook's warning")
    p.add_argument("--skip", action="store_true", default=None,
                   help="the paper's skip variant (the notebook's SKIP): h0 up-sampled into every scale")
    p.add_argument("--anneal-from", type=int, help="from this step on, halve the lr at the end of every window "
                   "(the notebook's stall rule with every window counted as stalled), down to --lr-floor")
    p.add_argument("--channels", type=int, choices=[1, 3], help="image channels (3: the digits' grey copied "
                   "into RGB, as the notebook's networks draw colour; 1: grey)")
    p.add_argument("--ema", type=float, nargs="+", help="also score averages of G's weights with these decays "
                   "(a diagnostic, not in the paper; never used in training)")
    p.add_argument("--no-control", action="store_true", help="only the working run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--label", default="", help="name of this configuration in the JSON")
    p.add_argument("--out", default=str(REPO / "runs" / "learn-began"))
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    keys = [k for k in DEFAULTS if k not in ("seed", "control")]
    cfg = make_config(**{k: getattr(args, k, None) for k in keys})
    out = Path(args.out)
    t0 = time.perf_counter()
    judge = Judge(cfg["size"])
    real = judge.real
    print(f"judge: {judge.accuracy:.1%} accurate on held-out real digits; real digits: confident "
          f"{real['confident']:.1%}, classes {real['classes']}, diversity {real['diversity']:.3f} "
          f"({time.perf_counter() - t0:.0f} s)")
    print("config:", json.dumps(cfg))
    results = []
    for seed in args.seeds:
        for control in ([False] if args.no_control else [False, True]):
            c = dict(cfg, seed=seed, control=control)
            r = train_began(c, judge)
            name = f"{'control' if control else 'working'}-seed{seed}"
            save_grid(r["samples"], out / f"{args.label or 'run'}-{name}.png",
                      f"{name}: {c['steps']} steps, n={c['n']} h={c['h']} lr={c['lr']:g} (G ×{c['g_lr_scale']:g}) "
                      f"β1={c['beta1']} γ={c['gamma']:g} init={c['init']}" + (" grey" if c["channels"] == 1 else ""))
            results.append(dict(seed=seed, control=control, config=c, rows=r["rows"], seconds=r["seconds"],
                                warnings=r["warnings"]))
    header = ["run", "step", "confident", "classes ≥ 3 %", "diversity (real {:.3f})".format(real["diversity"]),
              "M_global", "k_t", "L(G)/L(x)"]
    rows = []
    for r in results:
        for row in r["rows"]:
            rows.append([f"{'control' if r['control'] else 'working'} s{r['seed']}", row["step"],
                         f"{row['confident']:.1%}", row["classes"], row["diversity"], row["M_global"], row["k_t"],
                         row["ratio"]])
            for decay, e in row.get("ema", {}).items():
                rows.append([f"  G's average, decay {decay}", row["step"], f"{e['confident']:.1%}",
                             e["classes"], e["diversity"], "", "", ""])
    print()
    print(markdown_table(header, rows))
    print()
    for r in results:
        last = r["rows"][-1]
        print(f"{'control' if r['control'] else 'working'} seed {r['seed']}: {r['seconds']:.0f} s, final counts "
              f"{last['counts']}" + (f", warnings at steps {[w[0] for w in r['warnings']]}" if r["warnings"] else ""))
    print(f"total {time.perf_counter() - t0:.0f} s with {args.threads} threads")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.label or 'run'}.json").write_text(json.dumps(dict(real=real, results=results), indent=1))


if __name__ == "__main__":
    main()
