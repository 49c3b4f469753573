"""BEGAN: speed of the notebook's training step at the paper's 64×64 setting, and a learnability check.

    python bench/bench_began.py            # on a GPU; estimated under 3 minutes on an H100
    python bench/bench_began.py --smoke    # a tiny CPU run that only proves the script works

1. Speed. Images per second of one training step (both networks, both Adam updates and the k_t
   update) at 64×64, n = 128, h = z = 64, batch 16, for two variants of the same math, in this one
   process, alternated (A B A B) and the best of each kept:
     plain     float32, NCHW, eager, PyTorch's default flags (TF32 convolutions, fp32 matmuls,
               cudnn.benchmark off), the default (foreach) Adam
     notebook  what the notebook does on this GPU: the precision colabkit picks (bf16 on compute
               capability >= 8.0, fp16 + GradScaler before), channels_last, cudnn.benchmark and TF32
               on (as colabkit.setup sets them outside smoke mode), fused Adam
   with the peak GPU memory of each. Batches come from a set preloaded on the GPU: data loading is
   not timed (the notebook loads with worker processes, in parallel with the GPU).
2. Learnability. The notebook's default variant trains on a structured synthetic face set
   (colabkit's CelebA stand-in, cropped and resized by the notebook's CelebAFaces) for a fixed
   time. M_global over the first and the last window, and two sample-quality proxies before and
   after: FID under colabkit's tiny random extractor (a relative measure only) and the mean L1
   distance from each sample to its nearest training image. A PNG shows real images, the samples
   before and the samples after. Exit status 1 if M_global did not fall or the samples did not improve.

The networks, losses and training step are the notebook's own (colabkit.nbcells loads its cells
tagged "lib"), so this measures exactly what the notebook runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

import colabkit as ck
import colabkit.metrics
import colabkit.nbcells

REPO = Path(__file__).resolve().parents[1]
nb = colabkit.nbcells.load(REPO / "notebooks" / "01_began.py")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: proves the script runs")
    p.add_argument("--out", default=str(REPO / "runs" / "bench-began"), help="folder for the PNG and JSON")
    p.add_argument("--train-seconds", type=float, default=None, help="learnability budget (default 90; smoke 8)")
    p.add_argument("--timed-steps", type=int, default=None, help="timed steps per variant (default 150; smoke 4)")
    p.add_argument("--faces", type=int, default=None, help="synthetic faces (default 1024; smoke 96)")
    return p.parse_args()


def settings(args):
    if args.smoke:
        s = dict(size=16, n=8, h=16, batch=8, warmup=2, timed=4, faces=96, train_s=8.0, window=20, eval_n=96)
    else:   # the paper's 64×64 faces: n = 128, h = z = 64, batch 16
        s = dict(size=64, n=128, h=64, batch=16, warmup=30, timed=150, faces=1024, train_s=90.0, window=500,
                 eval_n=1000)
    if args.timed_steps:
        s["timed"] = args.timed_steps
    if args.faces:
        s["faces"] = args.faces
    if args.train_seconds:
        s["train_s"] = args.train_seconds
    return s


def synthetic_faces(n: int, size: int, device) -> torch.Tensor:
    """colabkit's generated CelebA-format archive → the notebook's CelebAFaces → one tensor on `device`."""
    with tempfile.TemporaryDirectory() as tmp:
        made = ck.data.standin_celeba(Path(tmp) / "archive", n=n, seed=0)
        root = ck.data.extract(made["archive"], Path(tmp) / "data", expect=["img_align_celeba"], progress=False)
        files = sorted((root / "img_align_celeba").glob("*.jpg"))
        faces = nb.CelebAFaces(files, size=size)
        return torch.stack([faces[i] for i in range(len(faces))]).to(device)


class Variant:
    """One way of running the same training step. `tf32` = (matmul, cudnn) TF32 flags; PyTorch's defaults
    are (False, True): convolutions in TF32, matrix products in full fp32."""

    def __init__(self, name, precision, channels_last, fused, benchmark, tf32=(False, True)):
        self.name, self.precision, self.channels_last = name, precision, channels_last
        self.fused, self.benchmark, self.tf32 = fused, benchmark, tf32

    def apply_flags(self):
        if torch.cuda.is_available():   # set every time: the variants alternate in one process
            torch.backends.cudnn.benchmark = self.benchmark
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self.tf32

    def build(self, s, device, seed=0):
        torch.manual_seed(seed)
        G = nb.Generator(s["size"], s["n"], s["h"]).to(device)
        D = nb.Discriminator(s["size"], s["n"], s["h"]).to(device)
        if self.channels_last:
            G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        opt_G = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.5, 0.999), fused=self.fused)
        opt_D = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.5, 0.999), fused=self.fused)
        train = ck.State(k_t=torch.zeros((), device=device), lr=1e-4, M_sum=torch.zeros((), device=device),
                         M_best=float("inf"), stalled=0, halvings=0)
        return G, D, opt_G, opt_D, self.precision.make_scaler(), train

    def batch(self, x):
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_variant(v: Variant, data, s, device) -> dict:
    v.apply_flags()
    G, D, opt_G, opt_D, scaler, train = v.build(s, device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    order = torch.randint(0, len(data) - s["batch"], (s["warmup"] + s["timed"],))

    def step(i):
        x = v.batch(data[order[i]:order[i] + s["batch"]])
        nb.train_step(x, G, D, opt_G, opt_D, scaler, train, gamma=0.5, lambda_k=0.001, precision=v.precision)

    for i in range(s["warmup"]):
        step(i)
    sync(device)
    t0 = time.perf_counter()
    for i in range(s["warmup"], s["warmup"] + s["timed"]):
        step(i)
    sync(device)
    dt = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    assert torch.isfinite(train.k_t) and 0 <= float(train.k_t) <= 1
    return {"img_s": s["timed"] * s["batch"] / dt, "ms_step": 1000 * dt / s["timed"], "peak_gib": peak}


def sample_quality(G, real, ext, n, z_dim, precision, device, seed=1) -> dict:
    """FID (tiny random extractor: relative only) and mean nearest-neighbour L1 distance to the real set."""
    gen = torch.Generator(device).manual_seed(seed)

    @torch.no_grad()
    def sample(k):
        with precision.autocast():
            return G(nb.sample_z(k, z_dim, device, generator=gen)).float().clamp(-1, 1)

    fake = torch.cat([sample(min(250, n - i)) for i in range(0, n, 250)])
    real_stats = ck.metrics.feature_stats(real, ext, batch_size=250, progress=False)
    fid = ck.metrics.fid(fake, real_stats, ext, batch_size=250, progress=False)
    # nearest neighbour in pixel space at 16×16 (so a shifted copy still counts as close)
    small = lambda t: torch.nn.functional.adaptive_avg_pool2d(t.float(), 16).flatten(1)
    r, f = small(real), small(fake[:256])
    nn_l1 = torch.cdist(f, r, p=1).min(dim=1).values.mean().item() / r.shape[1]
    return {"fid_tiny": fid, "nn_l1": nn_l1, "samples": fake[:32].cpu()}


def learnability(s, data, device, precision, channels_last, fused) -> dict:
    v = Variant("notebook", precision, channels_last, fused, benchmark=device.type == "cuda", tf32=(True, True))
    v.apply_flags()
    G, D, opt_G, opt_D, scaler, train = v.build(s, device, seed=0)
    ext = ck.metrics.tiny_extractor().to(device)
    before = sample_quality(G, data, ext, s["eval_n"], s["h"], precision, device)
    gen = torch.Generator().manual_seed(0)
    perm, pos, step, window_means = torch.randperm(len(data), generator=gen), 0, 0, []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < s["train_s"]:
        if pos + s["batch"] > len(data):
            perm, pos = torch.randperm(len(data), generator=gen), 0
        x = v.batch(data[perm[pos:pos + s["batch"]].to(device)])
        pos += s["batch"]
        nb.train_step(x, G, D, opt_G, opt_D, scaler, train, gamma=0.5, lambda_k=0.001, precision=precision)
        step += 1
        if step % s["window"] == 0:   # the notebook's stall rule, closing one window of M_global
            window_means.append(nb.end_of_window(train, [opt_G, opt_D], window=s["window"], patience=3,
                                                 tolerance=0.01))
    sync(device)
    seconds = time.perf_counter() - t0
    after = sample_quality(G, data, ext, s["eval_n"], s["h"], precision, device)
    return {"steps": step, "seconds": seconds, "windows": window_means, "k_t": float(train.k_t),
            "lr": train.lr, "before": before, "after": after}


def main():
    args = parse_args()
    s = settings(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    if args.smoke:
        torch.set_num_threads(1)
    info = ck.detect_device(allow_cpu=args.smoke)
    device = info.device
    if device.type != "cuda" and not args.smoke:
        sys.exit("No GPU: this benchmark measures GPU speed. Use --smoke for a CPU check of the script.")
    best = info.best_precision()
    cuda = device.type == "cuda"
    print(f"device: {info.name}" + (f", compute capability {info.capability[0]}.{info.capability[1]}" if cuda else ""))
    print(f"torch {torch.__version__}; setting: {s['size']}×{s['size']}, n = {s['n']}, h = z = {s['h']}, "
          f"batch {s['batch']}" + ("  [SMOKE: tiny sizes, numbers mean nothing]" if args.smoke else ""))

    t = time.perf_counter()
    data = synthetic_faces(s["faces"], s["size"], device)
    print(f"synthetic faces: {len(data)} of {s['size']}×{s['size']} ({time.perf_counter() - t:.1f} s to make)")

    # The plain variant keeps PyTorch's default flags (TF32 convolutions, fp32 matmuls, no cudnn.benchmark).
    plain = Variant("plain fp32 eager", ck.Precision("fp32", device.type), channels_last=False, fused=False,
                    benchmark=False)
    default = Variant(f"notebook ({best.name}{', channels_last' if cuda else ''}{', fused Adam' if cuda else ''})",
                      best, channels_last=cuda, fused=cuda, benchmark=cuda, tf32=(True, True))
    results = {plain.name: [], default.name: []}
    for v in (plain, default, plain, default):
        results[v.name].append(time_variant(v, data, s, device))
    rows = {name: max(runs, key=lambda r: r["img_s"]) for name, runs in results.items()}
    print(f"\ntraining step, {s['timed']} timed steps after {s['warmup']} warm-up, best of 2 runs each")
    print(f"  {'variant':44s} {'images/s':>10s} {'ms/step':>9s} {'peak GPU mem':>13s}")
    for name, r in rows.items():
        mem = f"{r['peak_gib']:.2f} GiB" if r["peak_gib"] is not None else "n/a"
        print(f"  {name:44s} {r['img_s']:10.0f} {r['ms_step']:9.2f} {mem:>13s}")
    ratio = rows[default.name]["img_s"] / rows[plain.name]["img_s"]
    print(f"  speed-up of the notebook's default over plain fp32: {ratio:.2f}×")

    print(f"\nlearnability: the notebook's default variant, {s['train_s']:.0f} s of training on synthetic faces")
    lr = learnability(s, data, device, best, channels_last=cuda, fused=cuda)
    w = lr["windows"]
    m_start, m_end = (w[0], w[-1]) if len(w) >= 2 else (float("nan"), float("nan"))
    b, a = lr["before"], lr["after"]
    print(f"  {lr['steps']:,} steps in {lr['seconds']:.1f} s ({lr['steps'] * s['batch'] / lr['seconds']:.0f} img/s "
          f"with the stall rule's syncs); k_t {lr['k_t']:.4f}, lr {lr['lr']:g}")
    print(f"  M_global, mean of the first / last window of {s['window']} steps: {m_start:.4f} → {m_end:.4f}")
    print(f"  FID (tiny random extractor, relative only): {b['fid_tiny']:.3f} → {a['fid_tiny']:.3f}")
    print(f"  nearest-training-image L1 per pixel:         {b['nn_l1']:.4f} → {a['nn_l1']:.4f}")
    m_falls = m_end < m_start
    improves = a["fid_tiny"] < b["fid_tiny"] and a["nn_l1"] < b["nn_l1"]

    from torchvision.utils import save_image
    real = data[:32].float().cpu()
    grid = torch.stack([ck.image_grid(t, nrow=8) for t in (real, b["samples"], a["samples"])])
    png = out / "began_learnability.png"
    save_image(grid, png, nrow=1, padding=6, pad_value=1.0)
    print(f"  sample grid (real / samples before / samples after): {png}")

    verdict = "PASS" if (m_falls and improves) else "FAIL"
    print(f"  learnability: {verdict} (M_global falls: {m_falls}; samples improve: {improves})")
    summary = {
        "device": info.name, "torch": torch.__version__, "smoke": args.smoke, "setting": s,
        "speed": {name: {k: r[k] for k in ("img_s", "ms_step", "peak_gib")} for name, r in rows.items()},
        "speedup": ratio,
        "learnability": {"steps": lr["steps"], "seconds": lr["seconds"], "M_first_window": m_start,
                         "M_last_window": m_end, "fid_tiny": [b["fid_tiny"], a["fid_tiny"]],
                         "nn_l1": [b["nn_l1"], a["nn_l1"]], "verdict": verdict},
        "total_seconds": time.perf_counter() - t_start,
    }
    (out / "bench_began.json").write_text(json.dumps(summary, indent=1))
    print(f"\ntotal {summary['total_seconds']:.0f} s; results in {out / 'bench_began.json'}")
    if verdict != "PASS" and not args.smoke:
        sys.exit(1)


if __name__ == "__main__":
    main()
