"""Checkpoint files: verified writes, pruning, fallback past bad files, a full disk, fsspec stores."""

import copy
import hashlib

import pytest
import torch
from fakefiles import FakeFile
from torch import nn

import colabkit.store as store_mod
from colabkit.checkpoint import Checkpointer, CheckpointError, capture, ckpt_name, restore
from colabkit.store import LocalStore, StoreError, open_store


def payload(v: float) -> dict:
    return {"state": {"w": torch.full((64,), v)}, "note": f"v={v}"}


def saved_steps(ck: Checkpointer) -> list[int]:
    return ck.steps()


def test_save_writes_verified_file_and_checksum(tmp_path):
    ck = Checkpointer(LocalStore(tmp_path), keep=3)
    rec = ck.save(7, payload(1.0))
    ck.wait()
    data = (tmp_path / ckpt_name(7)).read_bytes()
    recorded = (tmp_path / (ckpt_name(7) + ".sha256")).read_text().split()[0]
    assert hashlib.sha256(data).hexdigest() == recorded
    assert rec.nbytes == len(data) and rec.write_s > 0
    loaded, name = ck.load_latest()
    assert name == ckpt_name(7) and loaded["step"] == 7 and torch.equal(loaded["state"]["w"], torch.ones(64))


def test_snapshot_is_taken_at_save_time_not_when_written(tmp_path):
    ck = Checkpointer(LocalStore(tmp_path))
    w = torch.zeros(1000)
    ck.save(1, {"state": {"w": w}})
    w.add_(5)            # training goes on while the background thread writes
    ck.wait()
    loaded, _ = ck.load_latest()
    assert torch.equal(loaded["state"]["w"], torch.zeros(1000))


def test_prunes_to_keep_newest(tmp_path):
    ck = Checkpointer(LocalStore(tmp_path), keep=2)
    for s in range(1, 6):
        ck.save(s, payload(s))
    ck.wait()
    assert saved_steps(ck) == [4, 5]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ckpt_name(4), ckpt_name(4) + ".sha256", ckpt_name(5), ckpt_name(5) + ".sha256"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_checksum", "garbage"])
def test_bad_newest_checkpoint_is_skipped_with_warning(tmp_path, damage):
    ck = Checkpointer(LocalStore(tmp_path), keep=3)
    for s in (1, 2, 3):
        ck.save(s, payload(float(s)), blocking=True)
    newest = tmp_path / ckpt_name(3)
    data = newest.read_bytes()
    if damage == "truncate":
        newest.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        newest.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    elif damage == "no_checksum":
        (tmp_path / (ckpt_name(3) + ".sha256")).unlink()
    else:   # a file whose checksum matches but is not a checkpoint
        newest.write_bytes(b"not a checkpoint")
        (tmp_path / (ckpt_name(3) + ".sha256")).write_text(hashlib.sha256(b"not a checkpoint").hexdigest())
    with pytest.warns(UserWarning, match=ckpt_name(3)):
        loaded, name = Checkpointer(LocalStore(tmp_path)).load_latest()
    assert name == ckpt_name(2)
    assert torch.equal(loaded["state"]["w"], torch.full((64,), 2.0))


def test_no_valid_checkpoint_is_an_error_not_a_fresh_start(tmp_path):
    ck = Checkpointer(LocalStore(tmp_path))
    ck.save(1, payload(1.0), blocking=True)
    (tmp_path / ckpt_name(1)).write_bytes(b"\0" * 10)
    with pytest.warns(UserWarning), pytest.raises(CheckpointError, match="none is valid"):
        ck.load_latest()
    assert (tmp_path / ckpt_name(1)).exists()   # nothing deleted


def test_empty_store_means_fresh_start(tmp_path):
    assert Checkpointer(LocalStore(tmp_path / "nothing")).load_latest() is None


def test_full_disk_keeps_earlier_checkpoints_and_explains(tmp_path, monkeypatch):
    ck = Checkpointer(LocalStore(tmp_path), keep=2)
    for s in (1, 2):
        ck.save(s, payload(float(s)), blocking=True)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setattr(store_mod, "_open", lambda path, mode: FakeFile(path, mode, room=1000))
    ck.save(3, payload(3.0))            # in the background: the error surfaces in wait()
    with pytest.raises(StoreError, match="No space left") as err:
        ck.wait()
    assert "Earlier checkpoints are untouched" in str(err.value)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before              # no partial file, no temp file, nothing pruned
    monkeypatch.undo()
    loaded, name = ck.load_latest()
    assert name == ckpt_name(2)


def test_a_save_failing_in_the_foreground_raises_there(tmp_path, monkeypatch):
    ck = Checkpointer(LocalStore(tmp_path))
    monkeypatch.setattr(store_mod, "_open", lambda path, mode: FakeFile(path, mode, room=0))
    with pytest.raises(StoreError, match="No space left"):
        ck.save(1, payload(1.0), blocking=True)
    assert list(tmp_path.iterdir()) == []   # the partial temporary file was removed


def test_leftover_temp_files_are_removed_by_the_next_session(tmp_path):
    (tmp_path / ".tmp-deadbeef-ckpt-000000005.pt").write_bytes(b"half")
    ck = Checkpointer(LocalStore(tmp_path))
    assert ck.steps() == []             # never mistaken for a checkpoint
    ck.save(1, payload(1.0), blocking=True)
    assert not list(tmp_path.glob(".tmp-*"))


def test_state_that_cannot_be_loaded_safely_fails_at_the_first_save(tmp_path):
    ck = Checkpointer(LocalStore(tmp_path))
    with pytest.raises(CheckpointError, match="weights_only"):
        ck.save(1, {"state": {"bad": nn.Linear(2, 2)}}, blocking=True)


def test_compiled_module_saved_without_prefix():
    m = nn.Linear(3, 2)
    compiled = torch.compile(m)         # wrapping is lazy: nothing is compiled here
    assert set(capture({"m": compiled})["m"]) == {"weight", "bias"}


def test_fsspec_memory_store_round_trip():
    store = open_store("memory://ckpt-test/run")
    ck = Checkpointer(store.sub("checkpoints"), keep=2)
    for s in (1, 2, 3):
        ck.save(s, payload(float(s)))
    ck.wait()
    assert ck.steps() == [2, 3]
    loaded, name = ck.load_latest()
    assert name == ckpt_name(3) and torch.equal(loaded["state"]["w"], torch.full((64,), 3.0))
    assert store.list("checkpoints") == sorted(
        f"checkpoints/{ckpt_name(s)}{ext}" for s in (2, 3) for ext in ("", ".sha256"))


@pytest.mark.parametrize("saved_fused,now_fused", [(False, True), (True, False)])
def test_optimizer_keeps_this_machines_flags_and_the_checkpoints_moments(saved_fused, now_fused):
    """A run saved with one Adam implementation (say on a T4) resumes with the one chosen now
    (say fused and graph-capturable on an A100): the moments and lr come from the checkpoint."""
    torch.manual_seed(0)
    w0 = torch.randn(50)

    def adam(fused):
        p = nn.Parameter(w0.clone())
        return p, torch.optim.Adam([p], lr=1e-2, betas=(0.5, 0.999), fused=fused or None)

    p, saved_opt = adam(saved_fused)
    for _ in range(3):
        p.grad = torch.sin(p.detach() * 3)
        saved_opt.step()
    saved_opt.param_groups[0]["lr"] = 5e-3   # a scheduler moved it
    saved = copy.deepcopy({"opt": saved_opt.state_dict()})   # as if read from a file

    q, opt = adam(now_fused)
    with torch.no_grad():
        q.copy_(p)
    restore({"opt": opt}, saved, "ckpt")
    group = opt.param_groups[0]
    assert group["fused"] == (now_fused or None) and group["lr"] == 5e-3
    assert float(opt.state[q]["step"]) == 3
    assert torch.equal(opt.state[q]["exp_avg"], saved_opt.state[p]["exp_avg"])
    for _ in range(2):   # both continue alike: same algorithm, another kernel
        p.grad, q.grad = torch.sin(p.detach() * 3), torch.sin(q.detach() * 3)
        saved_opt.step()
        opt.step()
    torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)


def test_plain_load_state_dict_would_adopt_the_saved_flags():
    """Why restore() keeps them: torch's own loading replaces the param groups' flags."""
    p = nn.Parameter(torch.zeros(3))
    saved = torch.optim.Adam([p]).state_dict()
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(3))], fused=True)
    opt.load_state_dict(saved)
    assert not opt.param_groups[0]["fused"]


def test_scaler_of_a_bf16_run_resumes_as_an_fp16_scaler():
    """A run begun on an A100 (bf16: the scaler is disabled, its state empty) resumed on a T4
    (fp16: the scaler is needed) starts the scaler fresh; torch itself would refuse the state."""
    saved = {"scaler": torch.amp.GradScaler("cpu", enabled=False).state_dict()}
    assert saved["scaler"] == {}
    with pytest.raises(RuntimeError, match="empty"):
        torch.amp.GradScaler("cpu").load_state_dict(saved["scaler"])
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    restore({"scaler": scaler}, saved, "ckpt")
    assert scaler.is_enabled() and scaler.get_scale() == 1024.0
    # and the other way round (an fp16 run resumed on bf16): the disabled scaler ignores the state
    fp16_state = {"scaler": torch.amp.GradScaler("cpu").state_dict()}
    off = torch.amp.GradScaler("cpu", enabled=False)
    restore({"scaler": off}, fp16_state, "ckpt")
    assert not off.is_enabled()
