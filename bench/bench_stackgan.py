"""Speed of StackGAN's training steps at the paper's sizes: plain fp32 eager vs the notebook's default.

    python bench/bench_stackgan.py            # a GPU; estimated under 4 minutes on an H100
    python bench/bench_stackgan.py --smoke    # tiny sizes on the CPU: proves the script runs, numbers mean nothing

Both stages at batch 64 (Stage-I 64×64; Stage-II 256×256 with the frozen Stage-I in front), the notebook's
own networks and `gan_step` (loaded from notebooks/03_stackgan.py with colabkit.nbcells), 1024-d text
embeddings, random data already on the GPU (the data loader is not timed). Two configurations, in one run:

  fp32     float32, NCHW, cudnn.benchmark off, TF32 off: the plain baseline
  default  what the notebook does on this GPU: its precision (bf16 autocast on compute capability >= 8.0,
           fp16 + GradScaler below), channels_last, cudnn.benchmark and TF32 on

Prints images/s, ms/step, the peak GPU memory of each, the speed-up, and the projected hours for 600
epochs a stage over CUB's 8,855 training images (138 steps of 64 per epoch).
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext
from pathlib import Path

import torch

import colabkit as ck
from colabkit import nbcells

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "03_stackgan.py"
CUB_TRAIN = 8_855
EPOCHS = 600

PAPER = dict(emb=1024, N_g=128, N_z=100, N_d=128, M_d=4, W0=64, W=256, NGF0=1024, NGF=128, NDF=64, N_RES=4,
             batch=64, warmup=5, steps=20)
SMOKE = dict(emb=1024, N_g=16, N_z=16, N_d=16, M_d=4, W0=16, W=32, NGF0=64, NGF=8, NDF=8, N_RES=1,
             batch=8, warmup=1, steps=3)


def set_backend(default: bool) -> None:
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = default
        torch.backends.cuda.matmul.allow_tf32 = default
        torch.backends.cudnn.allow_tf32 = default


def build(nb, s, device, memory_format):
    torch.manual_seed(0)
    G0 = nb.StageIGenerator(s["emb"], s["N_g"], s["N_z"], s["NGF0"], s["W0"])
    D0 = nb.Discriminator(s["emb"], s["W0"], s["NDF"], s["N_d"], s["M_d"])
    G = nb.StageIIGenerator(s["emb"], s["N_g"], s["NGF"], s["N_RES"], s["W0"], s["W"])
    D = nb.Discriminator(s["emb"], s["W"], s["NDF"], s["N_d"], s["M_d"])
    nets = [m.to(device, memory_format=memory_format) for m in (G0, D0, G, D)]
    for m in nets:
        m.apply(nb.init_weights)
    return nets


def time_stage(nb, stage, nets, s, device, precision, memory_format):
    """(images/s, ms/step, peak GiB) of `steps` training steps after `warmup` ones."""
    G0, D0, G, D = nets
    if stage == 1:
        net_G, net_D, generate, size = G0, D0, G0, s["W0"]
        G0.train().requires_grad_(True)
    else:
        net_G, net_D, size = G, D, s["W"]
        G0.eval().requires_grad_(False)      # frozen, as in the notebook
        generate = lambda phi, z: nb.stage2_generate(G0, G, phi, z)[:3]
    opt_G = torch.optim.Adam(net_G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(net_D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    scaler = precision.make_scaler() if precision else torch.amp.GradScaler(device.type, enabled=False)
    autocast = precision.autocast if precision else nullcontext
    g = torch.Generator(device=device).manual_seed(1)
    real = (torch.rand(s["batch"], 3, size, size, device=device, generator=g) * 2 - 1).contiguous(
        memory_format=memory_format)
    phi = torch.randn(s["batch"], s["emb"], device=device, generator=g)
    z = torch.randn(s["batch"], s["N_z"], device=device, generator=g)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    for _ in range(s["warmup"]):
        values = nb.gan_step(generate, net_D, opt_G, opt_D, scaler, real, phi, z, 2.0, autocast)
    sync()
    t0 = time.perf_counter()
    for _ in range(s["steps"]):
        values = nb.gan_step(generate, net_D, opt_G, opt_D, scaler, real, phi, z, 2.0, autocast)
    sync()
    dt = (time.perf_counter() - t0) / s["steps"]
    nb.check_step(values, 0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return s["batch"] / dt, dt * 1000, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true",
                    help="tiny sizes on the CPU (checks the script; meaningless numbers)")
    args = ap.parse_args()
    s = SMOKE if args.smoke else PAPER
    info = ck.detect_device(allow_cpu=args.smoke)
    device = info.device if not args.smoke else torch.device("cpu")
    if args.smoke:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    nb = nbcells.load(NOTEBOOK)
    default_precision = info.best_precision() if device.type == "cuda" else ck.Precision("fp32", "cpu")
    channels_last = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    configs = [("fp32", None, torch.contiguous_format, False),
               (f"default ({default_precision.name}{', channels_last' if device.type == 'cuda' else ''})",
                default_precision, channels_last, True)]

    print(f"device: {info.name}   torch {torch.__version__}   batch {s['batch']}   "
          f"Stage-I {s['W0']}×{s['W0']}, Stage-II {s['W']}×{s['W']}"
          + ("   SMOKE: numbers mean nothing" if args.smoke else ""))
    t_start = time.perf_counter()
    results = {}
    for name, precision, memory_format, default in configs:
        set_backend(default)
        nets = build(nb, s, device, memory_format)
        for stage in (1, 2):
            results[(stage, name)] = time_stage(nb, stage, nets, s, device, precision, memory_format)
        del nets
    set_backend(False)

    steps_per_epoch = CUB_TRAIN // 64      # the notebook's batch of 64, drop_last
    print(f"\n{'stage':<9} {'configuration':<28} {'images/s':>9} {'ms/step':>9} {'peak GiB':>9} {'speed-up':>9} "
          f"{'h / 600 epochs':>15}")
    for stage in (1, 2):
        base = results[(stage, configs[0][0])][0]
        for name, *_ in configs:
            ips, ms, peak = results[(stage, name)]
            hours = EPOCHS * steps_per_epoch * 64 / ips / 3600
            peak_text = f"{peak:.2f}" if peak == peak else "-"      # NaN on the CPU
            print(f"{'Stage-' + 'I' * stage:<9} {name:<28} {ips:>9.1f} {ms:>9.1f} {peak_text:>9} {ips / base:>8.2f}x "
                  f"{hours:>15.1f}")
    print(f"\nprojection: {EPOCHS} epochs × {steps_per_epoch} steps of 64 images (CUB train {CUB_TRAIN:,}) at the "
          "measured step time; data loading, logging, checkpoints and sample grids excluded.")
    print(f"bench time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
