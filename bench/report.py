"""One speed report: every benchmark this machine can run, written to one markdown file.

    python bench/report.py                     # writes bench/REPORT.md; about 5 minutes on 2 CPU cores
    python bench/report.py --out /tmp/r.md     # elsewhere
    python bench/report.py --rehearse-gpu      # on a CPU: also run the GPU branch's steps, on the CPU

Always (each benchmark prints ratios against its own baseline, measured in its own process):
  loader      bench/bench_loader.py: ck.ResumableLoader vs a plain DataLoader, 0 and 2 workers
  checkpoint  bench/bench_checkpoint.py: what a CycleGAN-sized checkpoint blocks the loop for
  steps       the three notebooks' training steps: `bash bench/gpu.sh --smoke` on a CPU (smoke
              sizes, only proves the scripts run), `bash bench/gpu.sh` at the papers' sizes on a GPU
With a CUDA GPU, in the same command, also:
  notebooks   every notebook's script twin in smoke mode on CUDA, once with COLABKIT_PRECISION=bf16
              and once with fp16 (four at a time: they are tiny)
  resume      01_began's twin in smoke mode on CUDA: an uninterrupted run, and a run SIGKILLed after
              its first checkpoint and restarted; their final checkpoints compared bit for bit
Everything runs under one time budget (--budget, default 570 s, so that one 10-minute command
holds it all): each step's time limit is cut to what is left, and a step that no longer fits is
reported as not run. gpu.sh's per-benchmark limits are passed down (GPU_SH_LIMIT_*).

--rehearse-gpu runs the GPU branch (notebooks in bf16 and fp16, the kill-and-resume) on the CPU, to
check its control flow where there is no GPU: the report then says so, and its figures are CPU
figures. Other processes may be running on the machine: the report records the load average.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from colabkit import assert_identical

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
# the environment and the checkpoint test the kill tests use for a notebook's twin
from resume_util import _read_until, env_for, newest_complete_step  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from bench_loader import table as loader_table  # noqa: E402

NOTEBOOKS = ["00_start_here", "01_began", "02_cyclegan", "03_stackgan"]
RESUME_NOTEBOOK = "01_began"
PRECISION_LINE = re.compile(r"^\s*precision\s+(.+)$", re.M)
DEVICE_LINE = re.compile(r"^\s*device\s+(.+)$", re.M)
RATIO = re.compile(r"\d[\d,.]*\s*(?:x|×)(?![a-z0-9])|speed-up|ratio", re.I)


class Budget:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def limit(self, wanted: float, reserve: float = 0.0) -> float:
        return max(0.0, min(wanted, self.left() - reserve))


def run_step(name: str, cmd: list[str], limit: float, logs: Path, env: dict | None = None,
             min_s: float = 20.0) -> dict:
    """Run one command under a time limit; its whole output goes to logs/<name>.txt."""
    rec = {"name": name, "cmd": " ".join(cmd), "limit_s": round(limit)}
    if limit < min_s:
        return {**rec, "status": f"not run: only {max(limit, 0):.0f} s of the budget left", "output": ""}
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=limit)
        out, rc = p.stdout + p.stderr, p.returncode
        status = "ok" if rc == 0 else f"failed (exit {rc})"
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        out += (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        status = f"timed out after {limit:.0f} s"
    (logs / f"{name}.txt").write_text(out)
    return {**rec, "status": status, "seconds": time.monotonic() - t0, "output": out}


def smoke_env(root: Path, **extra) -> dict:
    return env_for(root / "home", root / "work", COLABKIT_SMOKE=1, MPLBACKEND="Agg", **extra)


def notebook_smoke(nb: str, precision: str, root: Path, budget: Budget, logs: Path) -> dict:
    rec = run_step(f"nb-{nb}-{precision}", [sys.executable, str(REPO / "notebooks" / f"{nb}.py")],
                   budget.limit(300, 15), logs,
                   env=smoke_env(root / f"{nb}-{precision}", COLABKIT_PRECISION=precision))
    dev, prec = DEVICE_LINE.search(rec["output"]), PRECISION_LINE.search(rec["output"])
    rec["device"] = dev.group(1).strip() if dev else "?"
    rec["precision"] = prec.group(1).strip() if prec else "?"
    return rec


def newest_checkpoint(home: Path) -> Path | None:
    found = sorted(home.glob("*/train/checkpoints/ckpt-*.pt"))
    return found[-1] if found else None


def kill_and_resume(nb: str, root: Path, budget: Budget, logs: Path) -> dict:
    """An uninterrupted smoke run, a run killed after its first checkpoint and restarted; same end state?"""
    t0, limit = time.monotonic(), budget.limit(300, 15)
    rec = {"name": f"resume-{nb}", "limit_s": round(limit)}
    cmd = [sys.executable, str(REPO / "notebooks" / f"{nb}.py")]
    env_ref = smoke_env(root / "ref", COLABKIT_SAVE_EVERY_STEPS=1)
    env_cut = smoke_env(root / "cut", COLABKIT_SAVE_EVERY_STEPS=1)
    try:
        ref = run_step(f"resume-{nb}-reference", cmd, limit / 2, logs, env=env_ref)
        if ref["status"] != "ok":
            return {**rec, "status": f"reference run {ref['status']}", "seconds": time.monotonic() - t0}
        folder = root / "cut" / "home"
        killed = _kill_after_first_checkpoint(cmd, env_cut, folder, timeout=limit - (time.monotonic() - t0))
        (logs / f"resume-{nb}-killed.txt").write_text(killed)
        rest = run_step(f"resume-{nb}-restarted", cmd, limit - (time.monotonic() - t0), logs, env=env_cut)
        if rest["status"] != "ok":
            return {**rec, "status": f"restarted run {rest['status']}", "seconds": time.monotonic() - t0}
        m = re.search(r"resumed from ckpt-(\d{9})\.pt", rest["output"])
        a, b = newest_checkpoint(root / "ref" / "home"), newest_checkpoint(folder)
        rec.update(resumed_from=int(m.group(1)) if m else None, final=b.name if b else None,
                   device=(DEVICE_LINE.search(ref["output"]) or [None, "?"])[1].strip(),
                   precision=(PRECISION_LINE.search(ref["output"]) or [None, "?"])[1].strip())
        if not (a and b and a.name == b.name):
            return {**rec, "status": f"final checkpoints differ in step: {a} vs {b}", "seconds": time.monotonic() - t0}
        sa, sb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
        try:
            n = assert_identical(sa["state"], sb["state"]) + assert_identical(sa["rng"], sb["rng"])
            rec.update(status="ok", identical=True, tensors=n)
        except AssertionError as e:
            rec.update(status="ok", identical=False, difference=str(e)[:300])
        if not m:
            rec["status"] = "the restarted run did not resume from a checkpoint"
    except Exception as e:   # noqa: BLE001  (the report records what went wrong and goes on)
        rec.update(status=f"error: {type(e).__name__}: {e}"[:300])
    rec["seconds"] = time.monotonic() - t0
    return rec


def _kill_after_first_checkpoint(cmd, env, home: Path, timeout: float) -> str:
    """SIGKILL once a complete checkpoint exists anywhere under home/<run>/train/checkpoints (or
    after `timeout` seconds in all)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    out = _read_until(proc, "[train] ", timeout=max(timeout, 1))
    while proc.poll() is None and time.monotonic() - t0 < timeout:
        if any(newest_complete_step(f) is not None for f in home.glob("*/train/checkpoints")):
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    return out + proc.communicate(timeout=60)[0]


def ratio_lines(text: str, limit: int = 12) -> list[str]:
    """The lines of a benchmark's output that state a ratio, verbatim."""
    lines = [ln.strip() for ln in text.splitlines() if RATIO.search(ln) and not ln.startswith(("usage", "  python"))]
    return lines[:limit]


def machine() -> dict:
    cuda = torch.cuda.is_available()
    try:
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": f"{cpu}, {os.cpu_count()} logical cores", "load": load,
            "gpu": torch.cuda.get_device_name(0) if cuda else None,
            "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version()}


def write_report(path: Path, m: dict, steps: dict, args, gpu_mode: str) -> str:
    flag = " --rehearse-gpu" if gpu_mode == "rehearse" else ""
    L = [f"# Speed report ({m['date']})", "",
         f"Written by `python bench/report.py{flag}`. Every figure is a ratio "
         "against a baseline measured in the same process; absolute numbers depend on the machine and on "
         "whatever else runs on it.", "",
         "| machine | |", "|---|---|",
         f"| CPU | {m['cpu']} |", f"| load average (1/5/15 min) at the start | {m['load']} |",
         f"| GPU | {m['gpu'] or 'none: no GPU available'} |",
         f"| torch | {m['torch']} (CUDA {m['cuda']}), Python {m['python']} |", ""]
    if m["load"] != "?" and float(m["load"].split(" / ")[0]) > (os.cpu_count() or 1):
        L += ["Other processes were running (load above the core count): ratios within one process still "
              "compare like with like, but move by several percent between runs.", ""]

    lo = steps.get("loader")
    L += ["## Data loader: ck.ResumableLoader vs a plain shuffled DataLoader", ""]
    if lo and lo.get("json"):
        L += [f"`bench/bench_loader.py`, best of {lo['json']['rounds']} epochs each, rotated; ratio = "
              "resumable / plain images per second (≥ 0.9 is the goal); interleaved ratio (no workers) = plain / "
              "resumable median time per batch with the loaders advanced one batch each in turn (a random order "
              "for each batch), median over the epochs (lowest–highest); CPU ratio = plain / resumable CPU time "
              "per image, this process and its workers, over all timed epochs. `default` is the loader as the "
              "notebooks build it (all three global generators seeded per batch); `draws_from=...` seeds only "
              "those the data set draws from; `control` is a second plain DataLoader: how far its ratios are "
              "from 1 is the measurement's own error.", "",
              *loader_table(lo["json"]["results"]), ""]
        free = lo["json"].get("free_samples_us_per_batch")
        if free:
            L += ["Each loader's own time per batch of 16 samples that cost nothing, no workers, interleaved "
                  "(median): " + ", ".join(f"{name} {us:.1f} µs" for name, us in free.items()) + ".", ""]
        cost = lo["json"].get("own_cost")
        if cost:
            torch_only = (f"; torch's alone: {cost['main_torch_us_per_batch']:.0f} µs"
                          if "main_torch_us_per_batch" in cost else "")
            L += [f"ResumableLoader's own cost per batch, timed alone: {cost['main_us_per_batch']:.0f} µs in the "
                  f"main process (save, seed and restore the three global generators{torch_only}), "
                  f"{cost['worker_us_per_batch']:.0f} µs in a worker process (seed only).", ""]
    elif lo:
        L += [f"bench_loader.py: {lo['status']}", ""]

    L += ["## Ratios printed by each benchmark", "",
          "| benchmark | status | time | ratios it printed (verbatim) |", "|---|---|---|---|"]
    for key in ("checkpoint", "steps"):
        s = steps.get(key)
        if not s:
            continue
        lines = "<br>".join(f"`{x}`" for x in ratio_lines(s["output"])) or "—"
        L.append(f"| {s['name']} | {s['status']} | {s.get('seconds', 0):.0f} s | {lines} |")
    for sub in steps.get("gpu_sh_logs", []):
        lines = "<br>".join(f"`{x}`" for x in ratio_lines(sub["text"])) or "—"
        L.append(f"| gpu.sh: {sub['name']} | {sub['status']} | | {lines} |")
    L.append("")

    L += ["## On a CUDA GPU", ""]
    if gpu_mode == "off":
        L += ["No GPU available: bench/gpu.sh at the papers' sizes, the notebooks in smoke mode on CUDA in bf16 "
              "and fp16, and the kill-and-resume on CUDA were not run. On a machine with a CUDA GPU, "
              "`python bench/report.py` runs them in the same command (`--budget` seconds, 570 by default).", ""]
    else:
        if gpu_mode == "rehearse":
            L += ["**No GPU available: this is a rehearsal on the CPU** (`--rehearse-gpu`) of the GPU branch: the same "
                  "steps, on the CPU, so the figures below are CPU figures and say nothing about a GPU. "
                  "COLABKIT_PRECISION=bf16/fp16 on the CPU runs the notebooks' autocast and GradScaler code paths.", ""]
        L += ["| notebook (smoke mode) | COLABKIT_PRECISION | device | precision it reported | status | time |",
              "|---|---|---|---|---|---|"]
        for r in steps.get("notebooks", []):
            L.append(f"| {r['name'].split('-')[1]} | {r['name'].rsplit('-', 1)[1]} | {r.get('device', '?')} | "
                     f"{r.get('precision', '?')} | {r['status']} | {r.get('seconds', 0):.0f} s |")
        L.append("")
        skipped = [nb for nb in NOTEBOOKS if nb not in args.notebooks]
        if skipped:
            L += [f"Left out with --notebooks: {', '.join(skipped)}.", ""]
        r = steps.get("resume")
        if r and r.get("identical") is not None:
            same = (f"yes, bit for bit ({r.get('tensors')} tensors: weights, optimisers, scaler, RNG, ...)"
                    if r["identical"] else f"NO: {r.get('difference')}")
            L += [f"Kill-and-resume of {RESUME_NOTEBOOK} (smoke mode, device {r.get('device', '?')}, precision "
                  f"{r.get('precision', '?')}): {r['status']}. SIGKILLed after its first checkpoint, the restart "
                  f"resumed from step {r.get('resumed_from')} and finished at {r.get('final')}; its end state "
                  f"equals the uninterrupted run's: {same} ({r.get('seconds', 0):.0f} s in all).", ""]
        elif r:
            L += [f"Kill-and-resume of {RESUME_NOTEBOOK}: {r['status']}.", ""]
    gl = [g for g in steps.get("gpu_sh_logs", []) if g["text"]]
    if gl:
        L += ["## Everything gpu.sh printed", ""]
        for sub in gl:
            L += [f"### {sub['name']} ({sub['status']})", "", "```", sub["text"].rstrip()[-6000:], "```", ""]
    L += [f"Total time {steps['total_s']:.0f} s of a {args.budget:.0f} s budget. Logs: `{steps['logs']}` "
          "(not committed)."]
    text = "\n".join(L) + "\n"
    path.write_text(text)
    return text


def gpu_sh_logs(folder: Path, status_text: str) -> list[dict]:
    out = []
    for name in ("cyclegan", "began", "stackgan"):
        f = folder / f"{name}.txt"
        if f.exists():
            failed = re.search(rf"!! {name} exited with (\d+)", status_text)
            out.append({"name": name, "text": f.read_text(),
                        "status": f"failed (exit {failed.group(1)})" if failed else "ok"})
        else:
            out.append({"name": name, "text": "", "status": "not run"})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--out", default=str(REPO / "bench" / "REPORT.md"))
    ap.add_argument("--logs", default=str(REPO / "bench-results" / "report"))
    ap.add_argument("--budget", type=float, default=570.0, help="seconds for everything (default 570)")
    ap.add_argument("--rehearse-gpu", action="store_true", help="no GPU: run the GPU branch's steps on the CPU")
    ap.add_argument("--notebooks", nargs="+", default=NOTEBOOKS, choices=NOTEBOOKS,
                    help="which notebooks the GPU branch runs in bf16 and fp16 (default: all)")
    ap.add_argument("--parallel", type=int, default=None, help="notebook runs at a time (GPU 4, CPU 1)")
    args = ap.parse_args()
    budget = Budget(args.budget)
    cuda = torch.cuda.is_available()
    gpu_mode = "gpu" if cuda else ("rehearse" if args.rehearse_gpu else "off")
    logs = Path(args.logs)
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    m = machine()
    print(f"report: {m['cpu']}, GPU {m['gpu'] or 'none'}, torch {m['torch']}; GPU branch: {gpu_mode}; "
          f"budget {args.budget:.0f} s", flush=True)
    steps: dict = {"logs": str(logs)}
    py = sys.executable
    t0 = time.monotonic()

    # Timed benchmarks first, one at a time, with nothing else of ours running.
    lo_json = logs / "loader.json"
    reserve = 300 if cuda else 60   # keep room for gpu.sh and the notebooks
    lo = run_step("loader", [py, "bench/bench_loader.py", "--rounds", "3" if cuda else "5", "--json", str(lo_json)],
                  budget.limit(240, reserve), logs)
    lo["json"] = json.loads(lo_json.read_text()) if lo_json.exists() else None
    steps["loader"] = lo
    print(f"  loader: {lo['status']}", flush=True)
    ck_cmd = [py, "bench/bench_checkpoint.py", "--saves", "3"] + ([] if cuda else ["--device", "cpu"])
    steps["checkpoint"] = run_step("checkpoint", ck_cmd, budget.limit(120 if cuda else 300, reserve - 30), logs)
    print(f"  checkpoint: {steps['checkpoint']['status']}", flush=True)

    gpu_out = logs / "gpu_sh"
    env = dict(os.environ, OUT=str(gpu_out), PYTHON=py)
    if cuda:   # the papers' sizes; limits sized so that the notebooks and the resume still fit
        env.update(GPU_SH_LIMIT_CYCLEGAN="110", GPU_SH_LIMIT_BEGAN="100", GPU_SH_LIMIT_STACKGAN="120",
                   BEGAN_ARGS="--train-seconds 30")
        cmd = ["bash", "bench/gpu.sh"]
    else:
        cmd = ["bash", "bench/gpu.sh", "--smoke"]
    st = run_step("steps", cmd, budget.limit(360, 150 if gpu_mode != "off" else 0), logs, env=env)
    st["name"] = "notebook training steps: " + " ".join(cmd[1:])
    steps["steps"] = st
    steps["gpu_sh_logs"] = gpu_sh_logs(gpu_out, st["output"])
    print(f"  gpu.sh: {st['status']}", flush=True)

    if gpu_mode != "off":
        parallel = args.parallel or (4 if cuda else 1)
        with tempfile.TemporaryDirectory() as tmp, \
                concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
            tmp = Path(tmp)
            # each run's limit is what is left when it starts (minus a margin): the pool cannot outlast the budget
            # the kill-and-resume first: its three runs are sequential, the smoke runs fill the other slots
            resume = pool.submit(kill_and_resume, RESUME_NOTEBOOK, tmp / "resume", budget, logs)
            jobs = [pool.submit(notebook_smoke, nb, p, tmp, budget, logs)
                    for nb in args.notebooks for p in ("bf16", "fp16")]
            steps["notebooks"] = [j.result() for j in jobs]
            steps["resume"] = resume.result()
        for r in steps["notebooks"]:
            print(f"  {r['name']}: {r['status']} ({r.get('precision', '?')})", flush=True)
        print(f"  resume: {steps['resume']['status']}, identical: {steps['resume'].get('identical')}", flush=True)

    steps["total_s"] = time.monotonic() - t0
    text = write_report(Path(args.out), m, steps, args, gpu_mode)
    print(text)
    ok = all(s["status"] == "ok" for s in (steps["loader"], steps["checkpoint"], steps["steps"]))
    if gpu_mode != "off":
        ok = ok and all(r["status"] == "ok" for r in steps["notebooks"]) and steps["resume"].get("identical") is True
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
