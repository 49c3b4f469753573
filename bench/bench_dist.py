"""Training throughput with 1 and N processes under torchrun (DDP), on whatever this machine has.

    python bench/bench_dist.py [--procs 2] [--steps 30] [--batch 16] [--size 32]

Each configuration trains notebook 01's own BEGAN definitions (its lib cells, loaded with
colabkit.nbcells; n = 32, h = z = 32 at 32×32 unless told otherwise) for --steps steps of its
train_step after 10 warm-up steps, with --batch images per process, on random images; DDP averages
the gradients and run.average the two loss values of k_t. One process per GPU where there are
GPUs (nccl), else CPU processes of one thread each (gloo). Printed: steps/s and images/s of
each, and the N-process figures as ratios to the single process (images/s ratio N.0 would be
perfect scaling; on CPUs sharing cores, expect far less).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def worker(args) -> None:
    import torch

    import colabkit as ck
    import colabkit.nbcells

    torch.set_num_threads(1)
    nb = ck.nbcells.load(REPO / "notebooks" / "01_began.py")
    run = ck.setup("bench-dist", {"seed": 0}, allow_cpu=True, verbose=False)
    dev = run.device
    G = nb.init_weights(nb.Generator(args.size, args.n, args.h)).to(dev)
    D = nb.init_weights(nb.Discriminator(args.size, args.n, args.h)).to(dev)
    opt_G = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.9, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.9, 0.999))
    G_t, D_t = run.ddp(G), run.ddp(D)
    train = ck.State(k_t=torch.zeros((), device=dev), M_sum=torch.zeros((), device=dev))
    scaler = run.precision.make_scaler()
    x = torch.rand(args.batch, 3, args.size, args.size, device=dev) * 2 - 1

    def step():
        nb.train_step(x, G_t, D_t, opt_G, opt_D, scaler, train, gamma=0.5, lambda_k=0.001,
                      precision=run.precision, average=run.average)

    for _ in range(10):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    float(train.k_t)   # wait for the device
    dt = time.perf_counter() - t0
    if run.main:
        Path(args.out).write_text(json.dumps({"procs": run.world.size, "seconds": dt, "steps": args.steps,
                                              "images": args.steps * args.batch * run.world.size,
                                              "device": str(run.info.name)}))


def launch(n: int, args, out: Path) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", __file__,
           "--worker", "--out", str(out), "--steps", str(args.steps), "--batch", str(args.batch),
           "--size", str(args.size), "--filters", str(args.n), "--hidden", str(args.h)]
    env = dict(os.environ, OMP_NUM_THREADS="1", COLABKIT_HOME=str(out.parent / "home"),
               COLABKIT_WORK=str(out.parent / "work"), COLABKIT_ALLOW_CPU="1")
    env.pop("COLABKIT_SMOKE", None)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{n} process(es) failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=16, help="images per process per step")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--filters", dest="n", type=int, default=32)
    ap.add_argument("--hidden", dest="h", type=int, default=32)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        rows = [launch(n, args, Path(tmp) / f"r{n}.json") for n in (1, args.procs)]
    base = rows[0]
    print(f"BEGAN train_step, {args.size}×{args.size}, n = {args.n}, h = z = {args.h}, batch {args.batch} per "
          f"process, {args.steps} steps; torch {torch.__version__}, {base['device']}, {os.cpu_count()} CPU cores")
    print(f"{'processes':>9} {'steps/s':>8} {'images/s':>9} {'images/s ratio':>15}")
    for r in rows:
        sps, ips = r["steps"] / r["seconds"], r["images"] / r["seconds"]
        ratio = ips / (base["images"] / base["seconds"])
        print(f"{r['procs']:>9} {sps:>8.2f} {ips:>9.1f} {ratio:>14.2f}×")


if __name__ == "__main__":
    main()
