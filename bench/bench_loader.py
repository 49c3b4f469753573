"""ck.ResumableLoader against a plain shuffled DataLoader: same data, same transform, same process.

    python bench/bench_loader.py                # about 2 minutes on 2 CPU cores
    python bench/bench_loader.py --smoke        # a few seconds: proves the script runs
    python bench/bench_loader.py --json out.json

Two data sets, each at 0 and 2 worker processes:
  cifar   in memory, CIFAR-sized: N × 3 × 32 × 32 uint8, scaled to [-1, 1] and flipped left-right
          half the time with torch.rand (the transform of 00_start_here's ImageFolderGAN), batch 16
  jpeg    a folder of 256 × 256 JPEGs like horse2zebra's, read by 02_cyclegan's own UnalignedPairs
          and train_transform (resize to 286, random 256 crop, flip, [-1, 1]; the Y image drawn with
          Python's random), batch 1 as in the paper
Two resumable loaders each time: as the notebooks build it (all three global generators seeded
for each batch), and with `draws_from` naming only the generators that data set draws from (torch
for cifar; torch and Python for jpeg), which the data set may declare. And a control: a second
plain DataLoader, timed like the others against the first; its ratios would be 1.00 on an idle
machine, so how far they stray shows how much of any ratio is the measurement.
For each case the plain loader and the resumable loaders are built once (persistent workers when
there are any), warmed up by one epoch, then timed one epoch at a time, rotating which goes first;
the best epoch of each is kept. Ratio = resumable / plain images per second (one CycleGAN sample is
an X and a Y image; it counts as one). Other processes may be running: only ratios measured within
one process mean anything, and on a busy machine even they swing, since the scheduler hands this
process (and the workers) different shares of the cores from one epoch to the next. So two more
figures, which depend much less on the load:
  interleaved  (no workers only) the loaders' epochs advanced in lockstep, one batch of each in
          turn (in a random order, drawn anew for each batch), each batch timed; ratio = plain / resumable
          median time per batch, per epoch: the median over the timed epochs, and the lowest and
          highest. A burst of load hits all alike.
  CPU     CPU time each loader spends per image (this process and its workers, from /proc, over all
          timed epochs), ratio plain / resumable.
Last, each loader's own time per batch, without workers, on samples that cost nothing (the loaders
interleaved as above; plain DataLoader's is its per-batch machinery and collation), and the time
ResumableLoader's seeding adds per batch (and in the main process saving and restoring the global
generators), timed on its own. The main process uses one torch thread, like
the workers.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

import colabkit as ck
import colabkit.nbcells

REPO = Path(__file__).resolve().parents[1]


def jpeg_folder(root: Path, n: int, size: int = 256, seed: int = 0) -> list[Path]:
    """n photo-like JPEGs (smooth gradients plus noise, so they do not compress to nothing)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        a, b, c = rng.uniform(0.5, 3, 3)
        base = np.stack([np.sin(a * 6 * xx + i), np.cos(b * 6 * yy), np.sin(c * 6 * (xx + yy))], -1)
        img = np.clip((base * 0.4 + 0.5) * 255 + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        files.append(root / f"{i:04d}.jpg")
        Image.fromarray(img).save(files[-1], quality=90)
    return files


def count(batch) -> int:
    return len(batch[0]) if isinstance(batch, (list, tuple)) else len(batch)


CLOCK_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def worker_pids(loader: DataLoader) -> list[int]:
    """The persistent worker processes of a DataLoader (after its first epoch)."""
    it = getattr(loader, "_iterator", None)
    return [w.pid for w in getattr(it, "_workers", [])]


def cpu_seconds(pids: list[int]) -> float | None:
    """CPU time used so far by this process (all threads) and the given workers; None without /proc."""
    total = time.process_time()
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICK    # utime + stime
    return total


def timed_epoch(make_iter, pids) -> tuple[int, float, float | None]:
    """Images, wall seconds and CPU seconds (main process + workers) of one epoch."""
    c0, t0 = cpu_seconds(pids()), time.perf_counter()
    n = sum(count(b) for b in make_iter())
    wall, c1 = time.perf_counter() - t0, cpu_seconds(pids())
    return n, wall, (c1 - c0) if c0 is not None and c1 is not None else None


_ORDER = random.Random(0)


def shuffled_order(names: list, previous: list) -> list:
    """The loaders in a fresh random order, the last one before not first. A loader runs faster right
    after itself (its data still in the caches) and after one that runs the same code (a plain loader
    after the other plain one), so no fixed order is fair; a random one is, on average."""
    order = names[:]
    _ORDER.shuffle(order)
    if previous and order[0] == previous[-1]:
        order.append(order.pop(0))
    return order


def interleaved(loaders: dict, rounds: int) -> dict:
    """Per epoch, plain / resumable median time per batch, the loaders advanced one batch each in turn."""
    ratios = {name: [] for name in loaders if name != "plain"}
    clock = time.perf_counter
    for r in range(rounds):
        its = {name: make() for name, make in loaders.items()}
        times = {name: [] for name in loaders}
        live, order = True, []
        while live:
            order = shuffled_order(list(loaders), order)
            for name in order:
                t = clock()
                if next(its[name], None) is None:
                    live = False
                    break
                times[name].append(clock() - t)
        plain = statistics.median(times["plain"])
        for name in ratios:
            ratios[name].append(plain / statistics.median(times[name]))
    return {name: (statistics.median(v), min(v), max(v)) for name, v in ratios.items()}


CONTROL = "control: plain again"


def compare(dataset, batch: int, workers: int, rounds: int, variants: dict) -> list[dict]:
    """Plain against each resumable variant (name -> ResumableLoader keyword arguments) and against a
    second plain DataLoader (CONTROL: its ratios show how far the measurement itself strays from 1)."""
    def make_plain():
        return DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers,
                          persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0))

    plain = {"plain": make_plain(), CONTROL: make_plain()}
    loaders = {name: ck.ResumableLoader(dataset, batch_size=batch, seed=0, num_workers=workers, **kw)
               for name, kw in variants.items()}
    epochs = dict.fromkeys([*plain, *loaders], 0)

    def starter(name):
        def start():
            epochs[name] += 1
            return iter(plain[name]) if name in plain else loaders[name].epoch_batches(epochs[name])
        return start

    runs = {name: (starter(name), lambda dl=dl: worker_pids(dl)) for name, dl in plain.items()}
    for name, loader in loaders.items():
        runs[name] = (starter(name), lambda loader=loader: worker_pids(loader._loader))
    names = list(runs)
    for f, pids in runs.values():   # warm-up: starts the persistent workers, fills caches
        timed_epoch(f, pids)
    best = dict.fromkeys(names, 0.0)
    cpu = {name: [0, 0.0] for name in names}     # images, CPU seconds over all timed epochs
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            n, wall, c = timed_epoch(*runs[name])
            best[name] = max(best[name], n / wall)
            if c is not None and cpu[name] is not None:
                cpu[name][0] += n
                cpu[name][1] += c
            else:
                cpu[name] = None
    inter = interleaved({name: f for name, (f, _) in runs.items()}, rounds) if workers == 0 else {}
    out = []
    for name in [*loaders, CONTROL]:
        row = {"variant": name, "plain": best["plain"], "resumable": best[name], "ratio": best[name] / best["plain"]}
        if name in inter:
            row["interleaved_ratio"], row["interleaved_min"], row["interleaved_max"] = inter[name]
        if cpu["plain"] and cpu[name] and cpu["plain"][1] > 0 and cpu[name][1] > 0:
            row["cpu_us_plain"] = cpu["plain"][1] / cpu["plain"][0] * 1e6
            row["cpu_us_resumable"] = cpu[name][1] / cpu[name][0] * 1e6
            row["cpu_ratio"] = row["cpu_us_plain"] / row["cpu_us_resumable"]
        out.append(row)
    return out


def own_cost(calls: int = 2000, repeats: int = 3) -> dict | None:
    """µs ResumableLoader adds per batch, whatever the data: in the main process (save, seed and restore
    the global generators: all three, or torch's alone) and in a worker process (seed all three).
    Each call timed on its own, the median over `calls`, the lowest of `repeats`: the mean of a timed
    loop would count every time the scheduler hands the core to another process."""
    try:
        from colabkit.loader import _seed_globals, _SeededBatches
        _SeededBatches([], None, ("torch",))
    except (ImportError, TypeError):   # a colabkit from before per-batch seeding, or before draws_from
        return None
    key = ([], 0x123456789ABCDEF)
    clock = time.perf_counter

    def best(f):
        out = float("inf")
        for _ in range(repeats):
            times = []
            for _ in range(calls):
                t = clock()
                f()
                times.append(clock() - t)
            out = min(out, statistics.median(times) * 1e6)
        return out

    every = _SeededBatches([], lambda samples: samples)
    torch_only = _SeededBatches([], lambda samples: samples, ("torch",))
    return {"main_us_per_batch": best(lambda: every[key]), "main_torch_us_per_batch": best(lambda: torch_only[key]),
            "worker_us_per_batch": best(lambda: _seed_globals(key[1]))}


class _Free(torch.utils.data.Dataset):
    """Samples that cost nothing (one stored 3×32×32 tensor): what is left is the loaders' own cost."""

    def __init__(self, n: int):
        self.n, self.x = n, torch.zeros(3, 32, 32)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.x


def per_batch_cost(rounds: int, batches: int = 400) -> dict:
    """µs per batch of 16 free samples without workers, the loaders interleaved: median per epoch, then
    the median over epochs. Plain DataLoader's figure is its own per-batch machinery and collation."""
    ds = _Free(16 * batches)
    plain = DataLoader(ds, batch_size=16, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(0))
    make = {"plain": lambda e: iter(plain), "resumable, default": ck.ResumableLoader(ds, 16).epoch_batches}
    if "draws_from" in inspect.signature(ck.ResumableLoader).parameters:
        make["resumable, draws_from=('torch',)"] = ck.ResumableLoader(ds, 16, draws_from=("torch",)).epoch_batches
    names, clock = list(make), time.perf_counter
    medians = {name: [] for name in names}
    for e in range(rounds + 1):      # the first epoch warms up
        its = {name: f(e) for name, f in make.items()}
        times = {name: [] for name in names}
        order = []
        for b in range(batches):
            order = shuffled_order(names, order)
            for name in order:
                t = clock()
                next(its[name])
                times[name].append(clock() - t)
        if e:
            for name in names:
                medians[name].append(statistics.median(times[name]) * 1e6)
    return {name: statistics.median(v) for name, v in medians.items()}


def table(results: list[dict]) -> list[str]:
    """The markdown table (bench/report.py prints the same one)."""
    lines = ["| data | workers | compared with plain | plain DataLoader | compared | ratio | interleaved ratio, "
             "median (range) | CPU µs/image, plain | CPU µs/image, compared | CPU ratio |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        cpu = (f"{r['cpu_us_plain']:,.0f} | {r['cpu_us_resumable']:,.0f} | {r['cpu_ratio']:.2f}"
               if "cpu_ratio" in r else "— | — | —")
        inter = (f"{r['interleaved_ratio']:.2f} ({r['interleaved_min']:.2f}–{r['interleaved_max']:.2f})"
                 if "interleaved_ratio" in r else "—")
        lines.append(f"| {r['case']}: {r['data']} | {r['workers']} | {r.get('variant', 'default')} | "
                     f"{r['plain']:,.0f} img/s | {r['resumable']:,.0f} img/s | {r['ratio']:.2f} | {inter} | {cpu} |")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: proves the script runs")
    ap.add_argument("--rounds", type=int, default=None, help="timed epochs per loader (default 5; smoke 1)")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--cases", nargs="+", default=["cifar", "jpeg"], choices=["cifar", "jpeg"])
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.smoke else 5)
    cifar_batches = 20 if args.smoke else 400
    jpeg_n = (6, 8) if args.smoke else (40, 48)
    torch.manual_seed(0)
    # One intra-op thread, as in DataLoader's workers: on a shared 2-core machine two OpenMP threads
    # on tensors this small spend most of their time waiting for each other (10× slower per image).
    torch.set_num_threads(1)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            if case == "cifar":
                images = torch.randint(0, 256, (16 * cifar_batches, 3, 32, 32), dtype=torch.uint8)
                # Notebook 00's own in-memory data set (uint8 → [-1, 1], random flip), not a copy of it.
                nb = colabkit.nbcells.load(REPO / "notebooks" / "00_start_here.py")
                dataset, batch, lean = nb.ImageFolderGAN(images), 16, ("torch",)
                what = f"{len(images):,} × 3×32×32 uint8, batch 16"
            else:
                nb = colabkit.nbcells.load(REPO / "notebooks" / "02_cyclegan.py")
                xs = jpeg_folder(Path(tmp) / "trainA", jpeg_n[0], seed=1)
                ys = jpeg_folder(Path(tmp) / "trainB", jpeg_n[1], seed=2)
                dataset = nb.UnalignedPairs(xs, ys, nb.train_transform(286, 256))
                batch, what = 1, f"{len(xs)} + {len(ys)} JPEGs 256×256 → 286 → crop 256, batch 1"
                lean = ("torch", "python")
            variants = {"default": {}}
            if "draws_from" in inspect.signature(ck.ResumableLoader).parameters:   # else a colabkit from before it
                variants[f"draws_from={lean}"] = {"draws_from": lean}
            for w in args.workers:
                for r in compare(dataset, batch, w, rounds, variants):
                    results.append({"case": case, "data": what, "workers": w, **r})
                    cpu = (f"; CPU per image {r['cpu_us_plain']:,.0f} vs {r['cpu_us_resumable']:,.0f} µs, ratio "
                           f"{r['cpu_ratio']:.2f}" if "cpu_ratio" in r else "")
                    inter = (f"; interleaved {r['interleaved_ratio']:.2f} ({r['interleaved_min']:.2f}–"
                             f"{r['interleaved_max']:.2f})" if "interleaved_ratio" in r else "")
                    print(f"{case:5s} workers={w} {r['variant']:28s}: plain {r['plain']:9,.0f} img/s  compared "
                          f"{r['resumable']:9,.0f} img/s  ratio {r['ratio']:.2f}{inter}{cpu}", flush=True)

    free = per_batch_cost(rounds, 20 if args.smoke else 400)
    print("\nPer batch of 16 samples that cost nothing, no workers, interleaved (median µs): "
          + ", ".join(f"{name} {us:.1f}" for name, us in free.items()))
    cost = own_cost()
    if cost:
        print(f"\nResumableLoader's own cost per batch: {cost['main_us_per_batch']:.0f} µs in the main process "
              f"(save, seed, restore Python's, NumPy's and torch's generators; torch's alone: "
              f"{cost['main_torch_us_per_batch']:.0f} µs), {cost['worker_us_per_batch']:.0f} µs in a worker "
              "(seed all three)")
    print(f"\ntorch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads; best of {rounds} epochs each, rotated\n")
    for line in table(results):
        print(line)
    if args.json:
        summary = {"rounds": rounds, "smoke": args.smoke, "results": results, "own_cost": cost,
                   "free_samples_us_per_batch": free}
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
