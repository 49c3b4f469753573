"""Several processes under torchrun (gloo, on CPU): the same resume guarantee as one process.

A run of 2 processes whose whole process group is SIGKILLed after a checkpoint and started again
(as torchrun would be after a lost machine) ends exactly as an uninterrupted 2-process run: both
processes' networks, optimizers, per-process state (a pool of generated samples, a k_t from their
own batch) and RNG, bit for bit.
"""

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from resume_util import REPO, assert_same, env_for, newest_complete_step, run_to_end

import colabkit as ck

SCRIPT = REPO / "tests" / "scripts" / "tiny_train.py"
TOTAL = 24


def torchrun(n, *args):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", *map(str, args)]


def run_group(cmd, env, timeout=300):
    return run_to_end(cmd, env, REPO, timeout, own_session=True)


def kill_group_after_a_new_checkpoint(cmd, env, folder, delay, timeout=300):
    """Start torchrun in its own session; once `folder` holds a checkpoint newer than before (and
    `delay` more seconds), SIGKILL the agent and every worker at once. Returns whether it was killed
    and what it printed."""
    before = newest_complete_step(folder) or -1
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    t0 = time.monotonic()
    while (newest_complete_step(folder) or -1) <= before and proc.poll() is None and time.monotonic() - t0 < timeout:
        time.sleep(0.01)
    time.sleep(delay)
    killed = proc.poll() is None
    if killed:
        # torchrun starts each worker in a session of its own: kill the agent and every descendant.
        group = descendants(proc.pid) + [proc.pid]
        for pid in group:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    out, _ = proc.communicate(timeout=60)
    return killed, out


def descendants(pid):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def finals(out):
    return (torch.load(out / "final.pt", weights_only=True), torch.load(out / "final-rank1.pt", weights_only=True))


def test_two_processes_killed_together_resume_bit_exact(tmp_path):
    ref_out, out = tmp_path / "ref", tmp_path / "killed"
    ref_out.mkdir()
    out.mkdir()
    run_group(torchrun(2, SCRIPT, ref_out, TOTAL), env_for(tmp_path / "ref-home", tmp_path / "ref-work"))
    ref0, ref1 = finals(ref_out)
    # The two processes really differ where they should: their own noise, pools and RNG.
    assert not torch.equal(ref0["rng"], ref1["rng"])
    assert not all(torch.equal(a, b) for a, b in zip(ref0["pool"], ref1["pool"]))
    assert_same(ref0["G"], ref1["G"])          # …and DDP keeps the networks identical

    env = env_for(tmp_path / "home", tmp_path / "work", COLABKIT_SAVE_EVERY_STEPS=1, TINY_STEP_SLEEP=0.15)
    run_name = "tiny-smoke" if os.environ.get("COLABKIT_SMOKE") else "tiny"   # the root conftest sets smoke
    folder = tmp_path / "home" / run_name / "train" / "checkpoints"
    rng = random.Random(5)
    kills, logs = 0, []
    for _ in range(2):
        killed, log = kill_group_after_a_new_checkpoint(torchrun(2, SCRIPT, out, TOTAL), env, folder,
                                                        delay=rng.uniform(0.0, 0.2))
        kills += killed
        logs.append(log)
    assert kills == 2, logs
    log = run_group(torchrun(2, SCRIPT, out, TOTAL), env)
    assert "resumed from ckpt-" in log, log[-3000:]
    got0, got1 = finals(out)
    assert got0["step"] == got1["step"] == TOTAL
    assert assert_same(ref0, got0) > 20
    assert assert_same(ref1, got1) > 20
    # The checkpoint holds each process's own RNG and State, and the world size.
    newest = max(folder.glob("ckpt-*.pt"))
    payload = torch.load(newest, weights_only=True)
    assert len(payload["ranks"]) == 2 and payload["meta"]["world_size"] == 2
    assert payload["config"]["world_size"] == 2


def test_resuming_with_another_number_of_processes_stops_with_the_reason(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    env = env_for(tmp_path / "home", tmp_path / "work")
    run_group(torchrun(2, SCRIPT, out, 6), env)
    proc = subprocess.run([sys.executable, str(SCRIPT), str(out), "6"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert "world_size: checkpoint 2 → now '<absent>'" in proc.stderr, proc.stderr[-2000:]
    assert "number of processes torchrun started" in proc.stderr


@pytest.mark.parametrize("world", [2])
def test_each_process_loads_its_own_disjoint_slice_of_every_global_batch(world):
    from colabkit.dist import World

    ds = list(range(40))
    seen = []
    loaders = [ck.ResumableLoader(ds, batch_size=4, seed=3, world=World(r, world)) for r in range(world)]
    one = ck.ResumableLoader(ds, batch_size=4 * world, seed=3, world=World(0, 1))
    assert loaders[0].steps_per_epoch == one.steps_per_epoch == 40 // (4 * world)
    for epoch in (0, 1):
        per_rank = [list(ld.epoch_batches(epoch)) for ld in loaders]
        whole = list(one.epoch_batches(epoch))
        for b, batch in enumerate(whole):
            parts = torch.cat([per_rank[r][b] for r in range(world)])
            assert parts.tolist() == batch.tolist()     # the slices of one global batch, in rank order
            seen += parts.tolist()
        # resuming mid-epoch gives the same slices
        assert [t.tolist() for t in loaders[1].epoch_batches(epoch, 2)] == [t.tolist() for t in per_rank[1][2:]]
    assert sorted(seen) == sorted(ds * 2)


def test_began_in_two_processes_gets_the_gradients_of_one_process_with_twice_the_batch(tmp_path):
    """BEGAN has no batch statistics, so DDP's averaged gradient of 2 × 3 samples is the gradient of
    the 6 together, to float64 rounding; k_t (from L(x) and L(G(z)) averaged over the processes) too.
    Two of the notebook's own train_step calls, Adam updates included."""
    script = REPO / "tests" / "scripts" / "ddp_grads.py"
    env = env_for(tmp_path / "home", tmp_path / "work")
    run_group([sys.executable, str(script), str(tmp_path / "one.pt")], env)
    run_group(torchrun(2, script, tmp_path / "two.pt"), env)
    run_group(torchrun(2, script, tmp_path / "unsynced.pt"), dict(env, DDP_GRADS_NO_SYNC="1"))
    one, two, unsynced = (torch.load(tmp_path / f"{n}.pt", weights_only=True) for n in ("one", "two", "unsynced"))

    def worst(a, b):   # the largest difference relative to the tensor's scale, over all tensors
        return max(float((x - y).abs().max() / x.abs().max()) for x, y in zip(a, b))

    for key in ("grad_G", "grad_D"):
        assert worst(one[key], two[key]) < 1e-12, key                  # float64 rounding: ~1e-15 seen
        assert worst(one[key], unsynced[key]) > 1e-3, key              # half a batch's gradient is another
    for key in ("G", "D"):
        assert worst(list(one[key].values()), list(two[key].values())) < 1e-12, key
    assert abs(float(one["k_t"]) - float(two["k_t"])) < 1e-12


TWINS = {   # notebook → (run name in smoke mode, what its last cell prints, its loops; kills land in the last)
    "01_began": ("began-cifar10-gamma0.5-smoke", "play: α =", ("train",)),
    "02_cyclegan": ("cyclegan-horse2zebra-smoke", "figure: ", ("train",)),
    "03_stackgan": ("stackgan-cub-smoke", "StackGAN notebook finished.", ("stage1", "stage2")),
}


@pytest.mark.parametrize("name", sorted(TWINS))
def test_twin_under_torchrun_killed_together_resumes_bit_exact(tmp_path, name):
    """A notebook's script twin, 2 processes, smoke mode: SIGKILLed (the whole group) after a
    checkpoint, twice, and started again, it ends as an uninterrupted 2-process run, bit for bit.
    StackGAN is killed in Stage-II, and Stage-I is not trained again."""
    notebook = REPO / "notebooks" / f"{name}.py"
    run_name, done, loops = TWINS[name]
    extra = dict(COLABKIT_SMOKE=1, COLABKIT_SAVE_EVERY_STEPS=1, MPLBACKEND="Agg")
    log = run_group(torchrun(2, notebook), env_for(tmp_path / "ref-home", tmp_path / "ref-work", **extra))
    assert done in log and f"[{loops[-1]}] finished" in log
    folder = tmp_path / "home" / run_name / loops[-1] / "checkpoints"
    env = env_for(tmp_path / "home", tmp_path / "work", **extra)
    kills = 0
    for delay in (0.0, 0.3):
        killed, log = kill_group_after_a_new_checkpoint(torchrun(2, notebook), env, folder, delay=delay)
        kills += killed
    assert kills == 2, log[-3000:]
    earlier = {lp: sorted(p.name for p in (tmp_path / "home" / run_name / lp / "checkpoints").glob("ckpt-*"))
               for lp in loops[:-1]}
    log = run_group(torchrun(2, notebook), env)
    assert f"[{loops[-1]}] resumed from ckpt-" in log and done in log, log[-3000:]
    for lp in loops[:-1]:   # complete before the kills: restored, not one step trained again
        assert f"[{lp}] finished" not in log, log[-3000:]
        assert sorted(p.name for p in (tmp_path / "home" / run_name / lp / "checkpoints").glob("ckpt-*")) \
            == earlier[lp]

    def final(home, lp):
        newest = max((home / run_name / lp / "checkpoints").glob("ckpt-*.pt"))
        return torch.load(newest, weights_only=True)

    n = 0
    for lp in loops:
        ref, got = final(tmp_path / "ref-home", lp), final(tmp_path / "home", lp)
        assert got["step"] == ref["step"] == got["meta"]["total_steps"]
        assert len(got["ranks"]) == 2
        n += assert_same(ref["state"], got["state"]) + assert_same(ref["rng"], got["rng"])
        n += assert_same(ref["ranks"], got["ranks"])
    assert n > 50
    got = final(tmp_path / "home", loops[-1])
    if name == "01_began":   # k_t is the whole batch's: the same in both processes
        assert torch.equal(got["ranks"][0]["states"]["train"]["k_t"], got["ranks"][1]["states"]["train"]["k_t"])
    elif name == "02_cyclegan":   # each process keeps its own image histories
        pools = [r["states"]["pool_x"]["images"] for r in got["ranks"]]
        assert pools[0] and not all(torch.equal(a, b) for a, b in zip(*pools))
    else:                    # each process drew its own noise: the RNG states differ
        assert not torch.equal(got["ranks"][0]["rng"]["torch"], got["ranks"][1]["rng"]["torch"])
