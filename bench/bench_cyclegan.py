"""Speed of the CycleGAN notebook's training step: the plain step against the notebook's default.

    python bench/bench_cyclegan.py              # one GPU, 256x256, batch 1 (estimated: about a minute on an H100)
    python bench/bench_cyclegan.py --compile    # also the default step with torch.compile (+ 2-3 min)
    python bench/bench_cyclegan.py --ablate     # also the fast step without CUDA graphs, and with
                                                # channels_last switched, to see where the time goes
    python bench/bench_cyclegan.py --smoke      # tiny CPU run: proves the script works, times mean nothing

Both steps come from the notebook itself (colabkit.nbcells loads its `lib` cells), and the default
step's settings (STEP, CUDA_GRAPHS, CHANNELS_LAST, COMPILE) are read from the notebook's settings
cell. Both start from the same weights and inputs; the first step's losses are compared, so a
speed-up that changed the math would show, and so are the gradients of that first step (every
step kind runs its first call eagerly; the CUDA-graph replays are checked against an eager forward
pass inside the notebook's GraphedStep). Inputs are random images already on the GPU: data
loading, checkpoints and the per-epoch grids are not timed (the notebook loads data in worker
processes, alongside the GPU).

Printed: steps/s and peak GPU memory of each step, the ratio, the warm-up time (with the CUDA-graph
recording, and the compile time if compiled), and the projected hours for 200 epochs of
horse2zebra (266,800 steps) on this GPU.
"""

from __future__ import annotations

import argparse
import ast
import gc
import random
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "02_cyclegan.py"
H2Z_STEPS = 200 * 1334   # 200 epochs of max(1,067, 1,334) steps = 266,800


def notebook_defaults() -> dict:
    """The speed settings as the notebook's settings cell assigns them (first assignment, outside SMOKE)."""
    wanted = {"STEP", "CUDA_GRAPHS", "CHANNELS_LAST", "COMPILE"}
    found = {}
    for node in ast.parse(NOTEBOOK.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in wanted and target.id not in found:
                    found[target.id] = node.value.value
    missing = wanted - set(found)
    if missing:
        raise SystemExit(f"{NOTEBOOK} no longer assigns {sorted(missing)} in its settings cell")
    return found


def _nets(m):
    for net_name in ("G_xy", "G_yx", "D_x", "D_y"):
        net = getattr(m, net_name)
        yield net_name, getattr(net, "_orig_mod", net)


def live_params(m) -> dict:
    """name -> parameter, leaving out the conv biases that instance norm cancels: their exact
    gradient is 0, so what they receive is rounding noise (and Adam turns noise into ±lr steps)."""
    out = {}
    for net_name, net in _nets(m):
        dead = set()
        for mod_name, mod in net.named_modules():
            if isinstance(mod, torch.nn.Sequential):
                for i in range(len(mod) - 1):
                    if isinstance(mod[i + 1], torch.nn.InstanceNorm2d):
                        dead.add(f"{mod_name}.{i}.bias")
        out.update({f"{net_name}.{n}": p for n, p in net.named_parameters() if n not in dead})
    return out


def live_grads(m) -> dict:
    return {k: p.grad.detach().float().cpu().clone() for k, p in live_params(m).items() if p.grad is not None}


def grad_error(ref: dict, got: dict) -> tuple[float, str]:
    """Worst max|g - g_ref| / max|g_ref| over the parameter tensors."""
    worst, where = 0.0, ""
    for k, g in ref.items():
        err = float((got[k] - g).abs().max() / g.abs().max().clamp_min(1e-30))
        if err > worst:
            worst, where = err, k
    return worst, where


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def build(nb, device, args, *, kind, channels_last, capturable, compile_nets=False, seed=0):
    """The notebook's four networks, optimizers and histories, as its cells build them."""
    torch.manual_seed(seed)
    nets = [nb.init_weights(nb.ResnetGenerator(args.ngf, args.n_blocks)) for _ in range(2)]
    nets += [nb.init_weights(nb.PatchDiscriminator(args.ngf)) for _ in range(2)]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for net in nets:
        net.to(device, memory_format=fmt)
    G_xy, G_yx, D_x, D_y = nets
    fast_cuda = kind == "fast" and device.type == "cuda"
    opt_G, opt_D = nb.make_optimizers(G_xy, G_yx, D_x, D_y, 2e-4, (0.5, 0.999), fused=fast_cuda,
                                      capturable=fast_cuda and capturable)
    if compile_nets:
        G_xy, G_yx, D_x, D_y = (torch.compile(n, dynamic=False) for n in (G_xy, G_yx, D_x, D_y))
    return nb.CycleGAN(G_xy, G_yx, D_x, D_y, opt_G, opt_D, nb.ImagePool(50), nb.ImagePool(50))


def measure(nb, device, info, args, name, *, kind, channels_last=False, cuda_graphs=False,
            compile_nets=False, inputs):
    """Warm up, then time `steps` steps; returns a result dict."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    prec = info.best_precision() if kind == "fast" else None
    m = build(nb, device, args, kind=kind, channels_last=channels_last, compile_nets=compile_nets,
              capturable=cuda_graphs and prec is not None and prec.name != "fp16")
    scaler = prec.make_scaler() if prec is not None else None
    fs = nb.FastSettings(device.type, prec.dtype if prec else None, scaler, channels_last=channels_last)
    step = nb.make_train_step(kind, m, fs, cuda_graphs=cuda_graphs)
    random.seed(0)

    n_steps = args.steps_plain if kind == "plain" else args.steps_fast
    warm = args.warmup
    t0 = time.perf_counter()
    first = None
    for i in range(warm):
        x, y = inputs[i % len(inputs)]
        out = step(x, y)
        if i == 0:
            first = {k: float(v) for k, v in out.items()}
            first_grads = live_grads(m)   # the first call of every step kind runs eagerly
    sync(device)
    warm_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    for i in range(n_steps):
        x, y = inputs[i % len(inputs)]
        out = step(x, y)
    sync(device)
    dt = time.perf_counter() - t0
    last = {k: float(v) for k, v in out.items()}
    its = n_steps / dt
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    graphed = getattr(step, "captures", 0)
    result = {"name": name, "its": its, "peak_gb": peak, "warm_s": warm_s, "warm_steps": warm,
              "first": first, "first_grads": first_grads, "last": last, "captures": graphed,
              "graphs_on": bool(getattr(step, "enabled", False)) and device.type == "cuda",
              "precision": prec.name if prec else "fp32"}
    assert all(v == v and abs(v) < 1e6 for v in last.values()), f"{name}: losses not finite: {last}"
    del step, m, out
    return result


def graph_check(nb, device, info, args, inputs, default_opts, n_steps=8) -> tuple[float, int]:
    """The graphed fast step against the eager fast step, n_steps from the same state and inputs.

    Returns the worst max|w_graphed - w_eager| / max|w_eager - w_start| over the parameter tensors
    (replays that used stale inputs, gradients or optimizer state would give about 1 or more;
    the same kernels replayed give rounding-level differences) and the number of recordings.
    """
    prec = info.best_precision()
    weights, captures = [], 0
    for graphs in (True, False):
        random.seed(0)
        m = build(nb, device, args, kind="fast", channels_last=default_opts["channels_last"], capturable=True)
        start = {k: p.detach().float().cpu().clone() for k, p in live_params(m).items()}
        fs = nb.FastSettings(device.type, prec.dtype, prec.make_scaler(), channels_last=default_opts["channels_last"])
        step = nb.make_train_step("fast", m, fs, cuda_graphs=graphs)
        for i in range(n_steps):
            step(*inputs[i % len(inputs)])
        sync(device)
        captures = max(captures, getattr(step, "captures", 0))
        weights.append({k: p.detach().float().cpu().clone() for k, p in live_params(m).items()})
        del step, m
    graphed, eager = weights
    worst = max(float((graphed[k] - eager[k]).abs().max() / (eager[k] - start[k]).abs().max().clamp_min(1e-12))
                for k in eager)
    return worst, captures


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny CPU run (32x32, ngf 8) to check the script")
    p.add_argument("--compile", action="store_true", help="also time the default step with torch.compile")
    p.add_argument("--ablate", action="store_true", help="also time the eager fast step and no channels_last")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--n-blocks", type=int, default=9)
    p.add_argument("--steps-plain", type=int, default=60)
    p.add_argument("--steps-fast", type=int, default=300)
    p.add_argument("--warmup", type=int, default=8, help="untimed steps first (>= 5: graph recording)")
    args = p.parse_args(argv)
    if args.smoke:
        args.size, args.ngf, args.n_blocks = 32, 8, 2
        args.steps_plain, args.steps_fast, args.warmup = 4, 4, 2
        torch.set_num_threads(1)

    from colabkit import nbcells
    from colabkit.env import detect_device

    info = detect_device(allow_cpu=args.smoke)
    device = info.device
    if device.type == "cuda":   # what ck.setup does outside smoke mode
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    nb = nbcells.load(NOTEBOOK)
    defaults = notebook_defaults()
    print(f"device: {info.name}" + (f" (compute capability {info.capability[0]}.{info.capability[1]}, "
                                    f"{info.memory_gb:.0f} GiB)" if info.capability else ""))
    print(f"torch {torch.__version__}; {args.size}x{args.size}, batch 1, ngf = ndf = {args.ngf}, "
          f"{args.n_blocks} residual blocks")
    print(f"notebook defaults: {defaults}")

    g = torch.Generator().manual_seed(1)
    inputs = [tuple((torch.rand(1, 3, args.size, args.size, generator=g) * 2 - 1).to(device) for _ in range(2))
              for _ in range(8)]

    on_cuda = device.type == "cuda"
    default_opts = dict(kind=defaults["STEP"], channels_last=defaults["CHANNELS_LAST"] and on_cuda,
                        cuda_graphs=defaults["CUDA_GRAPHS"], compile_nets=defaults["COMPILE"] and on_cuda)
    t_start = time.perf_counter()
    results = [measure(nb, device, info, args, "plain (fp32 eager, 12 calls)", kind="plain", inputs=inputs),
               measure(nb, device, info, args, "notebook default", inputs=inputs, **default_opts)]
    if args.ablate:
        results.append(measure(nb, device, info, args, "fast, eager (no CUDA graphs)", inputs=inputs,
                               **{**default_opts, "cuda_graphs": False}))
        cl = not default_opts["channels_last"]
        results.append(measure(nb, device, info, args, f"default, channels_last {'on' if cl else 'off'}",
                               inputs=inputs, **{**default_opts, "channels_last": cl}))
    if args.compile and not default_opts["compile_nets"] and on_cuda:
        results.append(measure(nb, device, info, args, "default + torch.compile", inputs=inputs,
                               **{**default_opts, "compile_nets": True}))

    check = None
    if defaults["STEP"] == "fast" and defaults["CUDA_GRAPHS"]:
        check = graph_check(nb, device, info, args, inputs, default_opts)

    plain, default = results[0], results[1]
    print()
    print(f"{'step':<34} {'steps/s':>8} {'x plain':>8} {'peak GiB':>9} {'warm-up s':>10} {'200 ep. h':>10}")
    for r in results:
        print(f"{r['name']:<34} {r['its']:>8.2f} {r['its'] / plain['its']:>8.2f} {r['peak_gb']:>9.2f} "
              f"{r['warm_s']:>10.1f} {H2Z_STEPS / r['its'] / 3600:>10.2f}")
    print()
    print(f"ratio default / plain: {default['its'] / plain['its']:.2f}x "
          f"(default runs {default['precision']}, CUDA graphs {'on' if default['graphs_on'] else 'off'}, "
          f"{default['captures']} recording(s))")
    print(f"projected 200 epochs of horse2zebra ({H2Z_STEPS:,} steps) on this GPU: "
          f"plain {H2Z_STEPS / plain['its'] / 3600:.1f} h, default {H2Z_STEPS / default['its'] / 3600:.1f} h "
          "(training steps only)")
    for r in results[1:]:
        if "compile" in r["name"] or default_opts["compile_nets"]:
            steady = r["warm_steps"] / r["its"]
            compile_s = max(0.0, r["warm_s"] - steady)
            print(f"{r['name']}: compile time about {compile_s:.0f} s (warm-up {r['warm_s']:.0f} s minus "
                  f"{r['warm_steps']} steady steps)")
            if r is not default and r["its"] > default["its"]:
                gain = 1 / default["its"] - 1 / r["its"]
                print(f"  pays back after {compile_s / gain:,.0f} steps ({compile_s / gain / default['its'] / 60:.0f} "
                      "min of training) in every session")
            elif r is not default:
                print("  never pays back: it is not faster than the default")
    expect = "fp32: ~1e-6 expected" if default["precision"] == "fp32" else "bf16/fp16: ~1e-2 expected"
    print(f"first step from the same weights and inputs, against the plain step ({expect}):")
    for r in results[1:]:
        loss_err = max(abs(plain["first"][k] - r["first"][k]) / max(1.0, abs(plain["first"][k]))
                       for k in plain["first"])
        g_err, where = grad_error(plain["first_grads"], r["first_grads"])
        flag = "  <-- NOT THE SAME MATH" if g_err > 0.1 or loss_err > 0.05 else ""
        print(f"  {r['name']:<34} losses {loss_err:.1e}, gradients {g_err:.1e} (worst: {where}){flag}")
    if check is not None:
        err, captures = check
        bad = "  <-- THE GRAPHS DO NOT REPLAY THE STEP" if err > 0.1 else ""
        print(f"CUDA-graphed vs eager fast step, 8 steps from the same state ({captures} recording(s)): "
              f"weights differ by {err:.1e} of the distance they moved{bad}")
    print(f"total bench time {time.perf_counter() - t_start:.0f} s")
    if args.smoke:
        print("(smoke: CPU and tiny networks; these speeds say nothing about a GPU)")
    return results


if __name__ == "__main__":
    main()
