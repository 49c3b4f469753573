"""What a checkpoint of a CycleGAN-sized training state costs the training loop.

State: the four CycleGAN networks' parameter counts (2 × 11,378,179 + 2 × 2,764,737 = 28,285,832)
with two Adam optimizers holding both moments: about 340 MB. Measured in one process:

  baseline   a plain blocking `torch.save(state, path)`, as the reference implementations do
  colabkit   Checkpointer.save(): host snapshot in the foreground, write + checksum + verify + prune
             in a background thread; the loop is blocked only for the snapshot
  resume     a fresh Loop finding, verifying and restoring the newest checkpoint, up to its first step

--throttle-mbps imitates a slow destination (Google Drive's FUSE mount writes at tens of MB/s):
the write then takes seconds while the loop stays blocked for the snapshot only.

    python bench/bench_checkpoint.py [--saves 3] [--throttle-mbps 60] [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import colabkit as ck
import colabkit.store as store_mod
from colabkit.checkpoint import Checkpointer
from colabkit.store import LocalStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakefiles import FakeFile  # noqa: E402  (the same slow-destination stand-in the tests use)

COUNTS = {"G_xy": 11_378_179, "G_yx": 11_378_179, "D_x": 2_764_737, "D_y": 2_764_737}


class Flat(nn.Module):
    """A module with exactly n parameters, in tensors of conv-like sizes."""

    def __init__(self, n: int):
        super().__init__()
        sizes, left = [], n
        while left:
            sizes.append(min(left, 589_824))   # 256×256×3×3, the residual blocks' conv
            left -= sizes[-1]
        self.p = nn.ParameterList(nn.Parameter(torch.randn(s) * 0.02) for s in sizes)


def build(device):
    nets = {k: Flat(n).to(device) for k, n in COUNTS.items()}
    opt_G = torch.optim.Adam([*nets["G_xy"].parameters(), *nets["G_yx"].parameters()], lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam([*nets["D_x"].parameters(), *nets["D_y"].parameters()], lr=2e-4, betas=(0.5, 0.999))
    for opt in (opt_G, opt_D):   # one step so both Adam moments exist
        for g in opt.param_groups:
            for p in g["params"]:
                p.grad = torch.randn_like(p) * 1e-3
        opt.step()
    return {**nets, "opt_G": opt_G, "opt_D": opt_D}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--saves", type=int, default=3)
    ap.add_argument("--throttle-mbps", type=float, default=0, help="imitate a slow destination (0: off)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.throttle_mbps:
        store_mod._open = lambda path, mode: FakeFile(path, mode, bytes_per_s=args.throttle_mbps * 1e6)

    state = build(device)
    n_params = sum(p.numel() for k in COUNTS for p in state[k].parameters())
    print(f"state: {n_params:,} parameters + Adam moments on {device}; torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # baseline: the reference implementations' blocking save
        base = []
        for i in range(args.saves):
            t0 = time.perf_counter()
            torch.save({k: v.state_dict() for k, v in state.items()}, tmp / f"plain-{i}.pt")
            if args.throttle_mbps:   # the same slow destination for the baseline
                size = (tmp / f"plain-{i}.pt").stat().st_size
                time.sleep(size / (args.throttle_mbps * 1e6))
            base.append(time.perf_counter() - t0)
        plain_bytes = (tmp / "plain-0.pt").stat().st_size

        ckpt = Checkpointer(LocalStore(tmp / "store"), keep=2)
        blocked, total = [], []
        for i in range(args.saves):
            t0 = time.perf_counter()
            rec = ckpt.save(i + 1, {"state": ck.checkpoint.capture(state)})
            blocked.append(time.perf_counter() - t0)
            ckpt.wait()            # a real loop trains here; waiting isolates the write time
            total.append(rec.write_s)
        nbytes = ckpt.records[-1].nbytes

        # resume: new networks and optimizers (as on a fresh VM), then a new Loop up to its first step
        os.environ["COLABKIT_HOME"] = str(tmp / "home")
        os.environ["COLABKIT_WORK"] = str(tmp / "work")
        run = ck.setup("bench", {"seed": 0}, allow_cpu=True, verbose=False)
        loop = run.loop("train", total_steps=2, state=state, progress=False, save_every_min=1e9)
        for step, _ in loop:
            if step == 0:
                loop.stop()
        del loop
        fresh = build(device)
        t0 = time.perf_counter()
        loop = run.loop("train", total_steps=2, state=fresh, progress=False, save_every_min=1e9)
        for step, _ in loop:
            first_step = time.perf_counter() - t0
            loop.stop()
        same = all(torch.equal(a, b) for a, b in zip(state["G_xy"].parameters(), fresh["G_xy"].parameters()))

    med = lambda xs: sorted(xs)[len(xs) // 2]
    print(f"checkpoint size: {nbytes / 1e6:,.1f} MB (plain torch.save: {plain_bytes / 1e6:,.1f} MB)")
    print(f"plain torch.save, loop blocked:     {med(base) * 1e3:9.1f} ms  (median of {args.saves})")
    print(f"colabkit save, loop blocked:        {med(blocked) * 1e3:9.1f} ms  (host snapshot)")
    print(f"colabkit save, background total:    {med(total) * 1e3:9.1f} ms  (serialise, write, sha256, read back)")
    print(f"blocked time ratio plain/colabkit:  {med(base) / med(blocked):9.1f} x")
    print(f"new Loop → first resumed step:      {first_step * 1e3:9.1f} ms  (find, verify, load, restore)")
    print(f"restored weights identical:         {same}")


if __name__ == "__main__":
    main()
