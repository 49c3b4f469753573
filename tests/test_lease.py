"""One writer per run: a lease file in the loop's folder keeps a second session (a second tab, a copy
of the notebook, another VM) from training the same run while the first one does."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from resume_util import REPO, _read_until, env_for, isolate_colabkit
from torch import nn

import colabkit as ck
from colabkit.checkpoint import ckpt_name
from colabkit.lease import LEASE_NAME, LeaseHeld, LeaseLost

SCRIPT = REPO / "tests" / "scripts" / "tiny_train.py"


def test_a_second_process_on_the_same_run_refuses_to_train(tmp_path):
    env = env_for(tmp_path / "home", tmp_path / "work", TINY_STEP_SLEEP=0.2, COLABKIT_SAVE_EVERY_STEPS=5)
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    out_a.mkdir()
    out_b.mkdir()
    first = subprocess.Popen([sys.executable, str(SCRIPT), str(out_a), "100"], env=env, cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    try:
        log_a = _read_until(first, "[train] ", timeout=300)
        t0 = time.monotonic()
        lease = None
        while lease is None and time.monotonic() - t0 < 60:
            lease = next((tmp_path / "home").glob(f"tiny*/train/{LEASE_NAME}"), None)
            time.sleep(0.05)
        assert lease is not None, log_a
        folder = lease.parent / "checkpoints"
        # The second session, started while the first one trains.
        second = subprocess.run([sys.executable, str(SCRIPT), str(out_b), "100"], env=env, cwd=REPO,
                                capture_output=True, text=True, timeout=300)
        assert first.poll() is None, "the first session should still be training"
        log_b = second.stdout + second.stderr
        assert second.returncode != 0 and "LeaseHeld" in log_b, log_b[-3000:]
        assert f"held by process {first.pid} on " in log_b and "take_over=True" in log_b, log_b[-3000:]
        print(log_b.strip().splitlines()[-1])
        assert not (out_b / "final.pt").exists()
        # The first one goes on undisturbed: Interrupt it, it saves and stops and gives the run back.
        first.send_signal(signal.SIGINT)
        rest, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    log_a += rest
    assert "Interrupt received" in log_a and "checkpoint saved" in log_a, log_a[-3000:]
    assert "removed" not in log_a and "Traceback (most recent call last)" in log_a   # the Interrupted error only
    assert "Interrupted" in log_a.strip().splitlines()[-1]
    assert not lease.exists()                    # released at the end
    names = sorted(p.name for p in folder.iterdir())
    assert all(n.startswith("ckpt-") and n.endswith((".pt", ".sha256")) for n in names), names
    stopped_at = max(int(n[5:14]) for n in names if n.endswith(".pt"))
    # Now the second session may continue the run, from the first one's checkpoint.
    env_fast = env_for(tmp_path / "home", tmp_path / "work")
    third = subprocess.run([sys.executable, str(SCRIPT), str(out_b), "100"], env=env_fast, cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    log_c = third.stdout + third.stderr
    assert third.returncode == 0, log_c[-3000:]
    assert f"resumed from {ckpt_name(stopped_at)}" in log_c and "DONE 100" in log_c
    assert "Taking over" not in log_c           # the first session released it


@pytest.fixture
def home(tmp_path, monkeypatch):
    isolate_colabkit(monkeypatch, tmp_path / "home", tmp_path / "work")
    return tmp_path


def make(total=8, **kw):
    run = ck.setup("t", {"seed": 0}, allow_cpu=True, verbose=False)
    net = nn.Linear(2, 1)
    extra = ck.State(k_t=0.0)
    return run.loop("train", total_steps=total, state={"net": net, "extra": extra}, progress=False,
                    save_every_steps=2, **kw), extra


def lease_path(home):
    return home / "home" / "t" / "train" / LEASE_NAME


def other_session(home, age_s, interval_s=60.0):
    """Write the lease as another session does: whole, by a rename (a reader never sees it half-written)."""
    lease_path(home).parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    tmp = lease_path(home).with_name("other-session.tmp")
    tmp.write_text(json.dumps({
        "owner": "someone-else", "host": "another-vm", "boot": "x", "pid": 4242, "started": now - 7200,
        "heartbeat": now - age_s, "interval_s": interval_s}))
    os.replace(tmp, lease_path(home))


def train(loop, extra):
    for _step, _ in loop:
        extra.k_t += 1


def test_a_fresh_lease_of_another_machine_is_respected_and_can_be_taken_over(home, capsys, monkeypatch):
    other_session(home, age_s=60)
    loop, extra = make()
    with pytest.raises(LeaseHeld) as err:
        train(loop, extra)
    msg = str(err.value)
    print(msg)
    assert "held by process 4242 on another-vm" in msg and "last heartbeat 6" in msg
    assert "older than 5 min" in msg and "renewed every 60 s" in msg
    assert "take_over=True" in msg and "COLABKIT_TAKE_OVER=1" in msg
    assert extra.k_t == 0 and not (home / "home" / "t" / "train" / "checkpoints").exists()
    assert json.loads(lease_path(home).read_text())["owner"] == "someone-else"   # untouched
    loop, extra = make(take_over=True)
    train(loop, extra)
    assert extra.k_t == 8 and "take_over was asked for" in capsys.readouterr().out
    other_session(home, age_s=60)
    monkeypatch.setenv("COLABKIT_TAKE_OVER", "1")
    loop, extra = make(total=10)
    train(loop, extra)
    assert loop.step == 10


def test_a_stale_lease_is_taken_over_with_a_note(home, capsys):
    other_session(home, age_s=3600)
    loop, extra = make()
    train(loop, extra)
    out = capsys.readouterr().out
    assert "Taking over" in out and "another-vm" in out and "heartbeat is 60 min old" in out
    assert extra.k_t == 8 and not lease_path(home).exists()


def test_the_heartbeat_is_renewed_at_each_save(home, monkeypatch):
    clock = [1_000_000.0]
    monkeypatch.setattr("colabkit.lease.time.time", lambda: clock[0])
    loop, extra = make(total=6)
    beats = []
    for _step, _ in loop:
        clock[0] += 100
        loop.wait()
        beats.append(json.loads(lease_path(home).read_text())["heartbeat"])
    assert beats[0] < beats[2] < beats[4]      # saves after steps 2 and 4 renewed it


def test_a_session_whose_lease_was_taken_over_stops_without_saving(home):
    loop, extra = make(total=10)
    with pytest.raises(LeaseLost, match="another-vm"):
        for step, _ in loop:
            extra.k_t += 1
            if step == 4:              # saves at 2 and 4 done; someone takes over before the save at 6
                loop.wait()
                other_session(home, age_s=0)
    names = sorted(p.name for p in (home / "home" / "t" / "train" / "checkpoints").iterdir())
    assert names[-2:] == [ckpt_name(4), ckpt_name(4) + ".sha256"]
    assert json.loads(lease_path(home).read_text())["owner"] == "someone-else"   # not released, not deleted


def test_the_heartbeat_runs_between_saves_and_finds_a_take_over(home, monkeypatch):
    """Saves are 10 minutes apart on Colab; the lease is renewed every minute by a thread of its own,
    so a new VM after a disconnect waits minutes at most, and a take-over is noticed without a save."""
    monkeypatch.setattr("colabkit.lease.HEARTBEAT_S", 0.05)
    run = ck.setup("t", {"seed": 0}, allow_cpu=True, verbose=False)
    extra = ck.State(k_t=0.0)
    loop = run.loop("train", total_steps=1000, state={"net": nn.Linear(2, 1), "extra": extra}, progress=False,
                    save_every_steps=0, save_every_min=60)
    beats = []
    with pytest.raises(LeaseLost, match="another-vm"):
        for step, _ in loop:
            extra.k_t += 1
            time.sleep(0.02)
            if step % 10 == 0:
                beats.append(json.loads(lease_path(home).read_text())["heartbeat"])
            if step == 60:             # no save has happened yet; someone takes over, between two beats
                with loop.lease._lock:   # (a take-over racing a renewal is settled at the next beat instead)
                    other_session(home, age_s=0)
    assert len(set(beats)) >= 4, beats          # renewed between saves, by the heartbeat alone
    assert 60 < extra.k_t < 200                 # noticed within a few beats, not at a save
    assert not (home / "home" / "t" / "train" / "checkpoints").exists()
    assert json.loads(lease_path(home).read_text())["owner"] == "someone-else"


def test_a_renewal_that_finds_the_file_half_written_waits_for_it_instead_of_overwriting(tmp_path):
    """On a store without atomic renames a reader can catch another session's take-over mid-write.
    The renewal must not read that as 'no lease' and write its own over it."""
    from colabkit.lease import Lease
    from colabkit.store import LocalStore

    store = LocalStore(tmp_path)
    lease = Lease(store, interval_s=3600)
    lease.acquire()
    try:
        whole = json.dumps({"owner": "someone-else", "host": "another-vm", "boot": "x", "pid": 4242,
                            "started": time.time(), "heartbeat": time.time(), "interval_s": 60.0})
        (tmp_path / LEASE_NAME).write_text(whole[:17])          # the take-over, caught half-way
        reads = []
        real_read = lease._read

        def read_then_finish():
            got = real_read()
            reads.append(got[1])
            if len(reads) == 1:
                (tmp_path / LEASE_NAME).write_text(whole)        # …and it lands a moment later
            return got

        lease._read = read_then_finish
        with pytest.raises(LeaseLost, match="another-vm"):
            lease.refresh()
        assert reads[:2] == [True, False]
        assert json.loads((tmp_path / LEASE_NAME).read_text())["owner"] == "someone-else"
        # A file that stays unreadable is replaced: the holder keeps its run.
        lease2 = Lease(LocalStore(tmp_path / "b"), interval_s=3600)
        lease2.acquire()
        (tmp_path / "b" / LEASE_NAME).write_text("{not json")
        lease2.refresh()
        assert json.loads((tmp_path / "b" / LEASE_NAME).read_text())["owner"] == lease2.owner
        lease2.release()
    finally:
        lease.release()
