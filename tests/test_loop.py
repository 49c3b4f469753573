"""The resumable loop in-process: config checks, Interrupt, VM age, logging, TensorBoard mirror."""

import pytest
import torch
from resume_util import isolate_colabkit
from torch import nn

import colabkit as ck
import colabkit.loop as loop_mod


@pytest.fixture
def home(tmp_path, monkeypatch):
    isolate_colabkit(monkeypatch, tmp_path / "home", tmp_path / "work")
    return tmp_path


def make(cfg=None, total=10, **kw):
    run = ck.setup("t", cfg or {"seed": 0, "lr": 0.1}, allow_cpu=True, verbose=False)
    net = nn.Linear(2, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    extra = ck.State(k_t=0.0)
    loop = run.loop("train", total_steps=total, state={"net": net, "opt": opt, "extra": extra},
                    progress=False, **kw)
    return run, net, opt, extra, loop


def train(loop, net, opt, extra, stop_after=None):
    for step, _ in loop:
        loss = net(torch.ones(1, 2)).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        extra.k_t += 1
        loop.log(loss=loss)
        if stop_after is not None and step + 1 == stop_after:
            loop.stop()


def test_config_change_is_refused_with_the_keys_listed(home):
    _, net, opt, extra, loop = make({"seed": 0, "lr": 0.1, "batch": 4})
    train(loop, net, opt, extra)
    with pytest.raises(ck.ConfigMismatch) as err:
        make({"seed": 0, "lr": 0.2, "batch": 4})
    assert "lr: checkpoint 0.1 → now 0.2" in str(err.value) and "batch" not in str(err.value)
    *_, ok = make({"seed": 0, "lr": 0.2, "batch": 4}, allow_config_change=["lr"])
    assert ok.step == 10 and ok.done


def test_finished_loop_restores_state_and_runs_no_steps(home, capsys):
    _, net, opt, extra, loop = make()
    train(loop, net, opt, extra)
    w = net.weight.detach().clone()
    _, net2, opt2, extra2, loop2 = make()
    assert torch.equal(net2.weight, w) and extra2.k_t == 10
    assert list(loop2) == []
    assert "nothing to train" in capsys.readouterr().out


def test_interrupt_saves_at_the_step_boundary(home):
    _, net, opt, extra, loop = make(total=10)
    with pytest.raises(ck.Interrupted, match="stopped at step 4"):
        for step, _ in loop:
            extra.k_t += 1
            if step == 3:
                loop._on_sigint(2, None)   # what pressing Interrupt does
    _, _, _, extra2, loop2 = make(total=10)
    assert loop2.step == 4 and extra2.k_t == 4


def test_second_interrupt_stops_at_once(home):
    *_, loop = make(total=10)
    loop._on_sigint(2, None)
    with pytest.raises(KeyboardInterrupt):
        loop._on_sigint(2, None)


def test_periodic_and_final_saves(home, monkeypatch):
    _, net, opt, extra, loop = make(total=10, save_every_steps=4)
    train(loop, net, opt, extra)
    assert [r.step for r in loop.ckpt.records] == [4, 8, 10]
    monkeypatch.setenv("COLABKIT_SAVE_EVERY_STEPS", "1")
    *_, loop2 = make(total=10)
    assert loop2.save_every_steps == 1
    *_, loop3 = make(total=10, save_every_steps=4)   # an argument given wins over the variable
    assert loop3.save_every_steps == 4


def test_time_based_save(home, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(loop_mod.time, "monotonic", lambda: clock[0])
    _, net, opt, extra, loop = make(total=6, save_every_min=10)
    for step, _ in loop:
        clock[0] += 301   # each step "takes" a bit over 5 minutes
    assert [r.step for r in loop.ckpt.records] == [2, 4, 6]


def test_vm_age_warning_in_colab_saves(home, monkeypatch):
    monkeypatch.setattr(loop_mod, "vm_age_hours", lambda: 11.5)
    monkeypatch.setattr("colabkit.flags.in_colab", lambda: True)
    _, net, opt, extra, loop = make(total=5)
    with pytest.warns(UserWarning, match="recycles VMs"):
        train(loop, net, opt, extra)
    assert loop.ckpt.records[0].step == 1       # saved right away, not at the end only
    assert loop.save_every_s <= 300


def test_history_is_batched_and_survives_resume(home):
    _, net, opt, extra, loop = make(total=12, log_every=4)
    train(loop, net, opt, extra, stop_after=8)
    assert loop.step == 8 and not loop.done
    assert [s for s, _ in loop.history["loss"]] == [3, 7]   # one mean per 4 steps
    _, net2, opt2, extra2, loop2 = make(total=12, log_every=4)
    assert [s for s, _ in loop2.history["loss"]] == [3, 7]
    train(loop2, net2, opt2, extra2)
    assert [s for s, _ in loop2.history["loss"]] == [3, 7, 11]


def test_every_and_end_of_epoch(home):
    run = ck.setup("t", {"seed": 0}, allow_cpu=True, verbose=False)
    data = ck.ResumableLoader(torch.utils.data.TensorDataset(torch.arange(10.0)), batch_size=2)
    loop = run.loop("e", total_steps=12, state={}, loader=data, progress=False)
    ends, everys, epochs = [], [], []
    for step, _ in loop:
        ends.append(loop.end_of_epoch)
        everys.append(loop.every(5))
        epochs.append(loop.epoch)
    assert [i for i, e in enumerate(ends) if e] == [4, 9]
    assert [i for i, e in enumerate(everys) if e] == [4, 9, 11]
    assert epochs == [0] * 5 + [1] * 5 + [2] * 2


def test_event_files_mirrored_and_restored_on_a_fresh_vm(home):
    _, net, opt, extra, loop = make(total=8, log_every=2)
    train(loop, net, opt, extra, stop_after=4)
    mirrored = loop.store.sub("tb").list()
    assert mirrored and all(n.startswith("events.out.tfevents") for n in mirrored)
    writes, reads = [], []
    mirror = loop.events.mirror
    mirror.write_bytes = lambda name, data: writes.append(name)
    mirror.read_bytes = lambda name: reads.append(name)
    loop.events.sync()                              # nothing new since the last checkpoint
    assert writes == [] and reads == []             # and Drive is not read back to find that out
    import shutil
    shutil.rmtree(home / "work")                   # the VM is recycled: local disk wiped
    *_, loop2 = make(total=8, log_every=2)
    local = sorted(p.name for p in (home / "work" / "t" / "tb" / "train").iterdir())
    assert set(mirrored) <= set(local)              # old curves back, plus the new writer's file
    assert len(local) == len(mirrored) + 1


def test_tensorboard_helper_outside_a_notebook_prints_the_command(capsys, tmp_path):
    cmd = ck.tensorboard(tmp_path)
    assert cmd == f"tensorboard --logdir {tmp_path} --port 6006"
    assert cmd in capsys.readouterr().out


def test_tensorboard_magic_is_run_and_failures_explained(monkeypatch, tmp_path, capsys):
    calls = []

    class Shell:
        def run_line_magic(self, name, line):
            calls.append((name, line))
            if name == "tensorboard" and fail:
                raise RuntimeError("Reusing TensorBoard on port 6006")

    import IPython
    monkeypatch.setattr(IPython, "get_ipython", lambda: Shell())
    fail = False
    ck.tensorboard(tmp_path, start=True)
    assert calls == [("load_ext", "tensorboard"), ("tensorboard", f"--logdir {tmp_path} --port 6006")]
    fail = True
    ck.tensorboard(tmp_path, start=True, port=6007)
    err = capsys.readouterr().err
    assert "did not start" in err and "/tmp/.tensorboard-info" in err and "port=6008" in err


def test_break_then_save_is_refused(home):
    _, net, opt, extra, loop = make(total=10)
    for step, _ in loop:
        extra.k_t += 1
        if step == 2:
            break
    with pytest.raises(RuntimeError, match="loop.stop"):
        loop.save()
