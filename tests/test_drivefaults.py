"""Drive faults in the middle of a run: Drive drops (ENOTCONN, EIO, a vanished mount) and comes back
or not, Drive full, and an Interrupt pressed twice while a checkpoint is being written.

Each fault is injected into the store's file operations for paths under the run's home (the VM's
local disk, where the fallback copies go, keeps working), and each test checks what a learner is
told and that no training step is lost.
"""

import errno
import hashlib
import os
import signal
import threading
import time

import pytest
import torch
from fakefiles import FakeFile
from resume_util import isolate_colabkit
from torch import nn

import colabkit as ck
import colabkit.store as store_mod
from colabkit.checkpoint import Checkpointer, DriveUnavailable, ckpt_name
from colabkit.store import LocalStore, StoreError


@pytest.fixture
def home(tmp_path, monkeypatch):
    (tmp_path / "drive").mkdir()   # the mounted Drive
    isolate_colabkit(monkeypatch, tmp_path / "drive" / "colabkit", tmp_path / "work")
    return tmp_path


class Drive:
    """Fault switch for every file the store opens under `root` (reads of finished files still work)."""

    def __init__(self, root, err=errno.ENOTCONN, text="Transport endpoint is not connected"):
        self.root, self.err, self.text = str(root), err, text
        self.down = False
        self.refused = 0

    def open(self, path, mode):
        if self.down and str(path).startswith(self.root):
            self.refused += 1
            raise OSError(self.err, self.text)
        return open(path, mode)


def make(total=12, **kw):
    run = ck.setup("t", {"seed": 0, "lr": 0.1}, allow_cpu=True, verbose=False)
    torch.manual_seed(0)
    net = nn.Linear(2, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    extra = ck.State(k_t=0.0)
    loop = run.loop("train", total_steps=total, state={"net": net, "opt": opt, "extra": extra},
                    progress=False, save_every_steps=2, **kw)
    loop.ckpt.retry_base_s = 0.0   # retry at every save point (the back-off itself is tested below)
    return run, net, opt, extra, loop


def step_fn(net, opt, extra, step):
    x = torch.tensor([[1.0, float(step)]])
    loss = net(x).pow(2).sum() * 1e-3
    opt.zero_grad()
    loss.backward()
    opt.step()
    extra.k_t += 1


def reference(total=12):
    torch.manual_seed(0)
    net = nn.Linear(2, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    extra = ck.State(k_t=0.0)
    for s in range(total):
        step_fn(net, opt, extra, s)
    return net.weight.detach().clone()


def drive_ckpts(home):
    return sorted(p.name for p in (home / "drive" / "colabkit" / "t" / "train" / "checkpoints").glob("ckpt-*"))


def local_ckpts(home):
    folder = home / "work" / "t" / "unsynced" / "train"
    return sorted(p.name for p in folder.glob("ckpt-*")) if folder.is_dir() else []


def test_drive_drops_for_a_while_training_goes_on_and_drive_takes_it_back(home, monkeypatch, capsys):
    drive = Drive(home / "drive")
    monkeypatch.setattr(store_mod, "_open", drive.open)
    _, net, opt, extra, loop = make(total=12)
    with pytest.warns(UserWarning) as caught:
        for step, _ in loop:
            step_fn(net, opt, extra, step)
            if step == 2:
                loop.wait()                # (the step-2 save is on Drive)
                drive.down = True          # the saves at steps 4 and 6 fail
            if step == 6:
                loop.wait()                # the step-6 save has been written (in the background)
                assert local_ckpts(home) == [ckpt_name(6), ckpt_name(6) + ".sha256"]   # newest, on the VM
                drive.down = False         # back before the save at step 8
    msgs = [str(w.message) for w in caught if "failed" in str(w.message)]
    assert len(msgs) == 1, msgs        # warned once, not at each failing save
    assert "Transport endpoint is not connected" in msgs[0] and "Training goes on" in msgs[0]
    assert "force_remount=True" in msgs[0] and str(home / "work" / "t" / "unsynced" / "train") in msgs[0]
    out = capsys.readouterr().out
    assert "The store works again: ckpt-000000008.pt" in out
    assert drive.refused > 0 and loop.step == 12 and extra.k_t == 12
    assert drive_ckpts(home)[-2:] == [ckpt_name(12), ckpt_name(12) + ".sha256"]
    assert local_ckpts(home) == []     # the local copies went once Drive held a newer checkpoint
    assert torch.equal(net.weight.detach(), reference(12))
    *_, again = make(total=12)
    assert again.step == 12


def test_drive_never_comes_back_the_end_raises_and_names_the_local_copy(home, monkeypatch, capsys):
    drive = Drive(home / "drive", err=errno.EIO, text="Input/output error")
    monkeypatch.setattr(store_mod, "_open", drive.open)
    _, net, opt, extra, loop = make(total=12)
    with pytest.warns(UserWarning, match="Input/output error"), pytest.raises(DriveUnavailable) as err:
        for step, _ in loop:
            step_fn(net, opt, extra, step)
            if step == 2:
                loop.wait()
                drive.down = True
    assert extra.k_t == 12             # every step was trained; only the end raised
    msg = str(err.value)
    local = home / "work" / "t" / "unsynced" / "train"
    assert f"{local}/{ckpt_name(12)}" in msg and "ckpt-000000002.pt" in msg and "run this cell again" in msg
    print(msg)
    assert drive_ckpts(home)[-2:] == [ckpt_name(2), ckpt_name(2) + ".sha256"]
    assert local_ckpts(home) == [ckpt_name(12), ckpt_name(12) + ".sha256"]
    # Nothing is lost: Drive is mounted again and the cell is run again.
    drive.down = False
    capsys.readouterr()
    _, net2, _, extra2, again = make(total=12)
    assert again.step == 12 and extra2.k_t == 12 and torch.equal(net2.weight.detach(), reference(12))
    assert "now saved in" in capsys.readouterr().out
    assert drive_ckpts(home)[-2:] == [ckpt_name(12), ckpt_name(12) + ".sha256"] and local_ckpts(home) == []


def test_interrupt_while_drive_is_down_says_where_the_state_is(home, monkeypatch):
    drive = Drive(home / "drive")
    monkeypatch.setattr(store_mod, "_open", drive.open)
    _, net, opt, extra, loop = make(total=12)
    with pytest.warns(UserWarning), pytest.raises(DriveUnavailable, match="Interrupted at step 5"):
        for step, _ in loop:
            step_fn(net, opt, extra, step)
            if step == 2:
                loop.wait()
                drive.down = True
            if step == 4:
                loop._on_sigint(signal.SIGINT, None)
    assert local_ckpts(home) == [ckpt_name(5), ckpt_name(5) + ".sha256"]


def test_a_vanished_mount_is_not_recreated_on_the_vms_disk(home, capsys):
    mount = home / "drive"
    _, net, opt, extra, loop = make(total=12)
    with pytest.warns(UserWarning, match="has vanished"):
        for step, _ in loop:
            step_fn(net, opt, extra, step)
            if step == 2:
                loop.wait()
                os.rename(mount, home / "drive-unmounted")   # the mount point is empty now
            if step == 6:
                loop.wait()
                assert not mount.exists()      # nothing written under the empty mount point
                os.rename(home / "drive-unmounted", mount)  # mounted again
    assert "The store works again" in capsys.readouterr().out
    assert drive_ckpts(home)[-2:] == [ckpt_name(12), ckpt_name(12) + ".sha256"]
    assert torch.equal(net.weight.detach(), reference(12))


def test_retries_back_off_and_the_final_save_always_tries(tmp_path, monkeypatch):
    drive = Drive(tmp_path / "drive")
    monkeypatch.setattr(store_mod, "_open", drive.open)
    clock = [0.0]
    monkeypatch.setattr("colabkit.checkpoint.time.monotonic", lambda: clock[0])
    ckpt = Checkpointer(LocalStore(tmp_path / "drive"), local=LocalStore(tmp_path / "local"),
                        retry_base_s=30, retry_max_s=120)
    drive.down = True
    attempts = []
    for step in range(1, 9):
        before = drive.refused
        with pytest.warns(UserWarning) if step == 1 else _nothing():
            ckpt.save(step, {"w": torch.zeros(3)})
            ckpt.wait()
        attempts.append(drive.refused > before)
        clock[0] += 20            # a save every 20 s
    # tries at t=0 (fails), then not before +30 s, +60 s, +120 s, +120 s ...
    assert attempts == [True, False, True, False, False, True, False, False]
    before = drive.refused
    ckpt.save(9, {"w": torch.zeros(3)}, blocking=True)
    assert drive.refused > before and ckpt.unsynced.step == 9


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# --- Drive full --------------------------------------------------------------------------------

def test_drive_full_warns_with_numbers_prunes_nothing_and_training_goes_on(home, monkeypatch, capsys):
    free = {"bytes": None}
    real_free = LocalStore.free_bytes

    def free_bytes(self):
        if free["bytes"] is not None and str(self.root).startswith(str(home / "drive")):
            return free["bytes"]
        return real_free(self)

    monkeypatch.setattr(LocalStore, "free_bytes", free_bytes)
    _, net, opt, extra, loop = make(total=12, keep=2)
    with pytest.warns(UserWarning) as caught:
        for step, _ in loop:
            step_fn(net, opt, extra, step)
            if step == 3:
                loop.wait()
                before = {n: (home / "drive/colabkit/t/train/checkpoints" / n).read_bytes()
                          for n in drive_ckpts(home)}
                assert sorted(before) == [ckpt_name(2), ckpt_name(2) + ".sha256"]
                free["bytes"] = 300_000   # Drive (nearly) full: less than a checkpoint and the margin
            if step == 7:
                loop.wait()
                after = {n: (home / "drive/colabkit/t/train/checkpoints" / n).read_bytes()
                         for n in drive_ckpts(home)}
                assert after == before     # nothing pruned for checkpoints that were never written
                assert local_ckpts(home) == [ckpt_name(6), ckpt_name(6) + ".sha256"]
                free["bytes"] = None       # the learner emptied the trash
    msgs = [str(w.message) for w in caught if "full" in str(w.message)]
    assert len(msgs) == 1, msgs
    msg = msgs[0]
    size = loop.ckpt.records[-1].nbytes
    assert f"needs {(size + 2**20) / 2**20:,.1f} MB and only 293 kB is free" in msg
    assert "keep=1" in msg and "now keep=2" in msg and "Drive trash" in msg and "Training goes on" in msg
    assert "The store works again: ckpt-000000008.pt" in capsys.readouterr().out
    assert drive_ckpts(home) == [ckpt_name(s) + e for s in (10, 12) for e in ("", ".sha256")]
    assert torch.equal(net.weight.detach(), reference(12))


def test_a_write_that_runs_out_of_space_keeps_the_snapshot_locally(tmp_path, monkeypatch):
    ckpt = Checkpointer(LocalStore(tmp_path / "drive"), keep=2, local=LocalStore(tmp_path / "local"))
    for s in (1, 2):
        ckpt.save(s, {"w": torch.full((64,), float(s))}, blocking=True)
    before = {p.name: p.read_bytes() for p in (tmp_path / "drive").iterdir()}
    real = store_mod._open
    monkeypatch.setattr(store_mod, "_open", lambda path, mode: FakeFile(path, mode, room=10)
                        if "drive" in str(path) else real(path, mode))
    with pytest.warns(UserWarning, match="No space left"):
        ckpt.save(3, {"w": torch.full((64,), 3.0)}, blocking=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "drive").iterdir()} == before
    assert ckpt.unsynced.step == 3
    data = (tmp_path / "local" / ckpt_name(3)).read_bytes()
    assert hashlib.sha256(data).hexdigest() == (tmp_path / "local" / (ckpt_name(3) + ".sha256")).read_text().split()[0]


# --- Interrupt pressed twice while a checkpoint is being written --------------------------------

def slow_drive(monkeypatch, home, delay, started=None, when=""):
    real = store_mod._open

    def opener(path, mode):
        if str(path).startswith(str(home / "drive")) and "checkpoints" in str(path):
            if started is not None and when in str(path):
                started.set()
            return FakeFile(path, mode, delay=delay)
        return real(path, mode)

    monkeypatch.setattr(store_mod, "_open", opener)


def test_interrupt_twice_during_a_background_write_then_run_again(home, monkeypatch):
    """The cell ends at once; the write under way finishes; running the cell again (same kernel)
    resumes from it, instead of reading the folder while it is written and deleting its temp file."""
    _, net, opt, extra, loop = make(total=12)
    slow_drive(monkeypatch, home, delay=0.4)
    with pytest.raises(KeyboardInterrupt):
        for step, _ in loop:
            step_fn(net, opt, extra, step)
            if step == 4:                  # the save of step 4 is being written in the background
                loop._on_sigint(signal.SIGINT, None)
                loop._on_sigint(signal.SIGINT, None)
    assert loop.ckpt.writing
    _, net2, opt2, extra2, again = make(total=12)
    assert again.step == 4 and extra2.k_t == 4
    for step, _ in again:
        step_fn(net2, opt2, extra2, step)
    assert torch.equal(net2.weight.detach(), reference(12))
    names = os.listdir(home / "drive/colabkit/t/train/checkpoints")
    assert all(n.endswith((".pt", ".sha256")) for n in names), names


def test_interrupt_pressed_again_during_the_interrupt_save(home, monkeypatch):
    """The second press ends the wait, not the write: the checkpoint the first press asked for is
    complete, and the next run continues from it."""
    _, net, opt, extra, loop = make(total=12)
    started = threading.Event()
    slow_drive(monkeypatch, home, delay=0.5, started=started, when=ckpt_name(5))

    def press_again():
        started.wait(30)
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)   # a real second press, into the loop's handler

    with pytest.raises(KeyboardInterrupt) as err:
        for step, _ in loop:
            step_fn(net, opt, extra, step)
            if step == 4:                  # steps 0-4 done; step 4 is not a save point
                loop._on_sigint(signal.SIGINT, None)
                threading.Thread(target=press_again, daemon=True).start()
    assert not isinstance(err.value, ck.Interrupted)   # the second press, not the clean stop
    _, net2, opt2, extra2, again = make(total=12)
    assert again.step == 5 and extra2.k_t == 5


def test_drive_restored_after_a_failed_interrupt_leaves_nothing_behind(home, monkeypatch):
    drive = Drive(home / "drive")
    monkeypatch.setattr(store_mod, "_open", drive.open)
    _, net, opt, extra, loop = make(total=12)
    with pytest.warns(UserWarning), pytest.raises(DriveUnavailable):
        for step, _ in loop:
            drive.down = True              # from the first step on: no checkpoint on Drive at all
            step_fn(net, opt, extra, step)
            if step == 6:
                loop._on_sigint(signal.SIGINT, None)
    assert drive_ckpts(home) == []
    drive.down = False
    _, net2, opt2, extra2, again = make(total=12)
    assert again.step == 7
    for step, _ in again:
        step_fn(net2, opt2, extra2, step)
    assert torch.equal(net2.weight.detach(), reference(12))


def test_store_errors_explain_eio_and_enotconn(tmp_path, monkeypatch):
    for err, words in ((errno.EIO, "Input/output error"), (errno.ENOTCONN, "Transport endpoint")):
        monkeypatch.setattr(store_mod, "_open", lambda p, m, e=err: (_ for _ in ()).throw(OSError(e, "x")))
        with pytest.raises(StoreError, match=words) as info:
            LocalStore(tmp_path).write_bytes("a", b"1")
        assert "force_remount=True" in str(info.value)


# --- put_file: the store's streaming write, used by the archive cache -------------------------------

@pytest.mark.parametrize("where", ["local", "memory"])
def test_put_file_streams_a_file_in_whole(tmp_path, where):
    src = tmp_path / "archive.tar.gz"
    src.write_bytes(os.urandom(3 * store_mod._CHUNK + 123))
    store = (LocalStore(tmp_path / "drive" / "cache") if where == "local"
             else ck.open_store(f"memory://put-file-{os.getpid()}-{time.monotonic_ns()}"))
    sizes = []
    store.put_file("archive.tar.gz", src, on_chunk=sizes.append)
    assert store.read_bytes("archive.tar.gz") == src.read_bytes()
    assert store.list() == ["archive.tar.gz"] and store.clean_temp() == []     # no temporary file left
    assert sum(sizes) == src.stat().st_size and len(sizes) == 4                # read chunk by chunk


def test_put_file_that_runs_out_of_space_leaves_nothing(tmp_path, monkeypatch):
    src = tmp_path / "archive.zip"
    src.write_bytes(b"z" * (2 * store_mod._CHUNK))
    store = LocalStore(tmp_path / "drive")
    store.write_bytes("archive.zip", b"the copy that was there")
    real = store_mod._open
    monkeypatch.setattr(store_mod, "_open", lambda path, mode: FakeFile(path, mode, room=store_mod._CHUNK + 5)
                        if "drive" in str(path) else real(path, mode))
    with pytest.raises(StoreError, match="No space left"):
        store.put_file("archive.zip", src)
    assert sorted(p.name for p in (tmp_path / "drive").iterdir()) == ["archive.zip"]
    assert store.read_bytes("archive.zip") == b"the copy that was there"
