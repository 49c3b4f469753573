"""Exact resume: a run killed at random moments (some inside a checkpoint write) and restarted until
done ends with the same weights, optimizer moments, scheduler, extra state and RNG, bit for bit, as a
run that was never interrupted. The same for the Interrupt (SIGINT) path."""

import signal
import subprocess
import sys

import torch
from resume_util import REPO, _read_until, assert_same, env_for, run_to_end, run_with_kills

SCRIPT = REPO / "tests" / "scripts" / "tiny_train.py"
TOTAL = 60


def _reference(tmp_path):
    out = tmp_path / "ref"
    out.mkdir()
    run_to_end([sys.executable, str(SCRIPT), str(out), str(TOTAL)],
               env_for(tmp_path / "ref-home", tmp_path / "ref-work"), REPO)
    return torch.load(out / "final.pt", weights_only=True)


def test_sigkill_at_random_moments_resumes_bit_exact(tmp_path):
    ref = _reference(tmp_path)
    out = tmp_path / "killed"
    out.mkdir()
    # A checkpoint every step and a slowed step: kills land before, during and after writes.
    env = env_for(tmp_path / "home", tmp_path / "work", COLABKIT_SAVE_EVERY_STEPS=1, TINY_STEP_SLEEP=0.01,
                  TINY_SLOW_WRITE=0.03)
    res = run_with_kills([sys.executable, str(SCRIPT), str(out), str(TOTAL)], env, REPO, kills=6, seed=1,
                         done_marker="DONE", wait_for="[train] ", min_delay=0.0, max_delay=0.1, steps=(1, 6),
                         progress_folder=tmp_path / "home" / "tiny-smoke" / "train" / "checkpoints")
    assert res["killed"] >= 4, res["logs"]
    resumed = [log for log in res["logs"] if "resumed from ckpt-" in log]
    assert len(resumed) >= 4, "restarts should continue from a checkpoint, not from scratch"
    inside_write = [log for log in res["logs"] if "unfinished checkpoint write" in log]
    assert inside_write, "no kill landed inside a checkpoint write"
    got = torch.load(out / "final.pt", weights_only=True)
    assert got["step"] == TOTAL
    n = assert_same(ref, got)
    assert n > 20   # weights, Adam moments, pool tensors and the RNG state were all compared
    # Only `keep` checkpoints survive pruning, each with its checksum.
    (folder,) = (tmp_path / "home").glob("tiny*/train/checkpoints")   # "tiny-smoke" under the root conftest
    ckpts = sorted(p.name for p in folder.iterdir())
    assert [c for c in ckpts if c.endswith(".pt")][-1] == f"ckpt-{TOTAL:09d}.pt"
    assert len([c for c in ckpts if c.endswith(".pt")]) == 3
    assert all(c.endswith((".pt", ".sha256")) for c in ckpts), ckpts


def test_interrupt_saves_at_step_boundary_and_resumes_bit_exact(tmp_path):
    ref = _reference(tmp_path)
    out = tmp_path / "int"
    out.mkdir()
    env = env_for(tmp_path / "home", tmp_path / "work", TINY_STEP_SLEEP=0.02)   # no periodic saves
    res = run_with_kills([sys.executable, str(SCRIPT), str(out), str(TOTAL)], env, REPO, kills=2, seed=2,
                         done_marker="DONE", wait_for="[train] ", min_delay=0.2, max_delay=0.5,
                         sig=signal.SIGINT)
    assert res["killed"] == 2
    first = res["logs"][0]
    assert "Interrupt received" in first and "checkpoint saved" in first, first[-2000:]
    assert "resumed from ckpt-" in res["logs"][1]
    got = torch.load(out / "final.pt", weights_only=True)
    assert_same(ref, got)


def test_sigkill_during_pruning_resumes_from_the_newest_and_finishes_bit_exact(tmp_path):
    ref = _reference(tmp_path)
    out = tmp_path / "pruned"
    out.mkdir()
    env = env_for(tmp_path / "home", tmp_path / "work", COLABKIT_SAVE_EVERY_STEPS=1, TINY_SLOW_PRUNE=5)
    cmd = [sys.executable, str(SCRIPT), str(out), str(TOTAL)]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    log = _read_until(proc, "PRUNED ", timeout=300)
    proc.send_signal(signal.SIGKILL)              # between the old checksum's removal and its payload's
    log += proc.communicate(timeout=60)[0]
    assert "PRUNED ckpt-000000001.pt.sha256" in log, log[-3000:]
    (folder,) = (tmp_path / "home").glob("tiny*/train/checkpoints")
    names = sorted(p.name for p in folder.iterdir())
    # the half-pruned oldest (a payload without checksum), and the three newest, complete
    assert names == ["ckpt-000000001.pt"] + [f"ckpt-{s:09d}.pt{e}" for s in (2, 3, 4) for e in ("", ".sha256")]
    env.pop("TINY_SLOW_PRUNE")
    log2 = run_to_end(cmd, env, REPO)
    assert "resumed from ckpt-000000004.pt" in log2, log2[-3000:]
    assert_same(ref, torch.load(out / "final.pt", weights_only=True))
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"ckpt-{s:09d}.pt{e}" for s in (TOTAL - 2, TOTAL - 1, TOTAL) for e in ("", ".sha256")]
