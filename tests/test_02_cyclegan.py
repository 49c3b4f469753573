"""The CycleGAN notebook: its definitions (loaded from the lib cells) and its script twin.

- the fast training step is the plain step's math: same losses, gradients, updated weights and
  image histories from the same state (fp32 on the CPU);
- the networks have the reference implementation's parameter counts and a 70x70 receptive field;
- the unaligned loader and the image history are reproducible and checkpointable;
- the script twin, killed at random moments during training and restarted until it finishes,
  ends with the same checkpoint state and RNG, bit for bit, as a run that was never interrupted
  (in fp32, and in fp16 with the gradient scaler as on a T4);
- the CUDA-graph step (GraphedStep), on a CPU stand-in for CUDA graphs (tests/fakegraph.py),
  replays exactly what the eager fast step computes: alone, with a change of learning rate and a
  resumed optimizer state, and through the whole notebook, killed and restarted.
"""

import copy
import io
import random
import re
import subprocess
import sys

import fakegraph
import pytest
import torch
from resume_util import REPO, assert_same, env_for, run_to_end, run_with_kills

import colabkit as ck
from colabkit import nbcells

NOTEBOOK = REPO / "notebooks" / "02_cyclegan.py"
RUN = "cyclegan-horse2zebra-smoke"
TOTAL = 40          # smoke: 4 epochs of max(8, 10) steps
SMOKE_POOL = 4


@pytest.fixture(scope="module")
def nb():
    return nbcells.load(NOTEBOOK)


def _model(nb, ngf=8, n_blocks=2, pool=2, seed=0):
    torch.manual_seed(seed)
    G_xy, G_yx = (nb.init_weights(nb.ResnetGenerator(ngf, n_blocks)) for _ in range(2))
    D_x, D_y = (nb.init_weights(nb.PatchDiscriminator(ngf)) for _ in range(2))
    opt_G, opt_D = nb.make_optimizers(G_xy, G_yx, D_x, D_y, 2e-4, (0.5, 0.999))
    return nb.CycleGAN(G_xy, G_yx, D_x, D_y, opt_G, opt_D, nb.ImagePool(pool), nb.ImagePool(pool), 10.0, 0.5)


def _params(m):
    for name in ("G_xy", "G_yx", "D_x", "D_y"):
        for pname, p in getattr(m, name).named_parameters():
            yield f"{name}.{pname}", p


def _biases_before_instance_norm(m) -> set:
    """Conv biases that instance norm subtracts right away: their gradient is exactly 0 in exact
    arithmetic, so in floats it is rounding noise, which Adam (dividing by its own size) turns into
    steps of about ±lr. Their values are noise in any implementation; the rest must agree."""
    out = set()
    for name in ("G_xy", "G_yx", "D_x", "D_y"):
        for mname, mod in getattr(m, name).named_modules():
            if isinstance(mod, torch.nn.Sequential):
                for i in range(len(mod) - 1):
                    if (isinstance(mod[i], (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
                            and isinstance(mod[i + 1], torch.nn.InstanceNorm2d)):
                        out.add(f"{name}.{mname}.{i}.bias")
    return out


def test_fast_step_equals_plain_step(nb):
    torch.set_num_threads(1)
    # In float64. The two steps round differently (batch 1 vs 2 kernels), and in fp32 that noise
    # (~1e-7) sometimes decides the sign of a pre-ReLU value that is 0 up to rounding: that pixel's
    # gradient is then passed by one step and dropped by the other, a legitimate subgradient choice
    # that moves a weight gradient by ~1e-3 relative. Whether it happens depends on the PyTorch
    # version's kernels (it does with 2.11 at step 1). In float64 the noise is ~1e-16 and it doesn't.
    base = _model(nb)
    for net in (base.G_xy, base.G_yx, base.D_x, base.D_y):
        net.double()   # in place: the optimizers keep the same parameter objects
    a, b = copy.deepcopy(base), copy.deepcopy(base)
    fs = nb.FastSettings("cpu", None, None)   # no autocast, no scaler, no compile: the CPU path
    dead = _biases_before_instance_norm(a)
    assert len(dead) == 2 * (1 + 2 + 2 * 2 + 2) + 2 * 3   # per G: c7s1, 2 down, 2 per block, 2 up; per D: 3
    g = torch.Generator().manual_seed(1)
    random.seed(5)
    for step in range(6):   # the histories (size 2) fill up, then start swapping at random
        x, y = (torch.rand(1, 3, 32, 32, generator=g, dtype=torch.float64) * 2 - 1 for _ in range(2))
        before = random.getstate()
        la = nb.plain_step(a, x, y)
        after_plain = random.getstate()
        random.setstate(before)
        lb = nb.fast_step(b, x, y, fs)
        assert random.getstate() == after_plain, "the fast step must draw the same random numbers"
        assert set(la) == set(lb) == set(nb.LOSS_NAMES)
        for k in nb.LOSS_NAMES:
            torch.testing.assert_close(lb[k], la[k].float(), rtol=1e-5, atol=1e-6, msg=f"step {step}: {k}")
            assert torch.isfinite(la[k])
        grad_scale = {net: max(float(p.grad.abs().max()) for n, p in _params(a) if n.startswith(net))
                      for net in ("G_xy", "G_yx", "D_x", "D_y")}
        for (name, pa), (_, pb) in zip(_params(a), _params(b)):
            assert pa.grad is not None and pb.grad is not None, name
            if name in dead:
                tiny = 1e-4 * grad_scale[name.split(".")[0]]
                assert pa.grad.abs().max() < tiny and pb.grad.abs().max() < tiny, name
                continue
            scale = float(pa.grad.abs().max())
            torch.testing.assert_close(pb.grad, pa.grad, rtol=1e-4, atol=5e-5 * scale,
                                       msg=f"step {step}: gradient of {name}")
            # Adam moves a weight by up to lr = 2e-4 a step: a wrong step would differ by ~1e-4.
            torch.testing.assert_close(pb, pa, rtol=0, atol=1e-5, msg=f"step {step}: {name}")
    for pool in ("pool_x", "pool_y"):
        ia, ib = getattr(a, pool).images, getattr(b, pool).images
        assert len(ia) == len(ib) == 2
        for u, v in zip(ia, ib):
            torch.testing.assert_close(v, u, rtol=1e-5, atol=1e-5)
    for oa, ob in ((a.opt_G, b.opt_G), (a.opt_D, b.opt_D)):
        for pa, pb in zip((p for grp in oa.param_groups for p in grp["params"]),
                          (p for grp in ob.param_groups for p in grp["params"])):
            assert float(oa.state[pa]["step"]) == float(ob.state[pb]["step"]) == 6


def test_fast_step_really_batches(nb):
    """G_xy runs on batches of two (x and the identity input y), each D on [real; fake]."""
    m = _model(nb)
    calls = {}
    for name in ("G_xy", "G_yx", "D_x", "D_y"):
        getattr(m, name).register_forward_hook(
            lambda mod, inp, out, name=name: calls.setdefault(name, []).append(inp[0].shape[0]))
    x, y = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    nb.fast_step(m, x, y, nb.FastSettings())
    assert calls == {"G_xy": [2, 1], "G_yx": [2, 1], "D_y": [1, 2], "D_x": [1, 2]}
    calls.clear()
    nb.plain_step(m, x, y)
    assert all(set(v) == {1} for v in calls.values()) and sum(map(len, calls.values())) == 12


def test_parameter_counts_match_the_reference(nb):
    with torch.device("meta"):
        G, D = nb.ResnetGenerator(64, 9), nb.PatchDiscriminator(64)
    assert nb.count_params(G) == 11_378_179
    assert nb.count_params(D) == 2_764_737
    assert nb.receptive_field(D) == 70
    norms = [m for m in D.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert len(norms) == 3 and not any(n.affine or n.track_running_stats for n in norms)


def test_unaligned_loader_is_reproducible(nb, tmp_path):
    made = ck.data.standin_unpaired(tmp_path, n_train_a=5, n_train_b=7, n_test_a=1, n_test_b=1, size=40,
                                    archive=False)
    ds = nb.UnalignedPairs(nb.list_images(made["dir"] / "trainA"), nb.list_images(made["dir"] / "trainB"),
                           nb.train_transform(36, 32))
    assert len(ds) == 7   # max(|A|, |B|)
    loader = ck.ResumableLoader(ds, batch_size=1, seed=3)
    whole = list(loader.epoch_batches(1))
    resumed = list(loader.epoch_batches(1, start=4))
    assert len(whole) == 7 and len(resumed) == 3
    for (x1, y1), (x2, y2) in zip(whole[4:], resumed):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    x, y = whole[0]
    assert x.shape == y.shape == (1, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert not torch.equal(whole[0][1], list(loader.epoch_batches(2))[0][1])   # another epoch, other draws


def test_image_pool_state_round_trip(nb):
    random.seed(0)
    pool = nb.ImagePool(3)
    images = [torch.full((1, 3, 4, 4), float(i)) for i in range(40)]
    returned = [float(pool.query(im)[0, 0, 0, 0]) for im in images]
    assert returned[:3] == [0.0, 1.0, 2.0]
    later = returned[3:]
    older = [v for i, v in enumerate(later, start=3) if v != i]
    assert 5 <= len(older) <= 32 and all(v < i for i, v in enumerate(later, start=3) if v != i)
    copy_ = nb.ImagePool()
    copy_.load_state_dict(pool.state_dict())
    state = random.getstate()
    a = [pool.query(im) for im in images[:10]]
    random.setstate(state)
    b = [copy_.query(im) for im in images[:10]]
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def _final(home):
    path = home / RUN / "train" / "checkpoints" / f"ckpt-{TOTAL:09d}.pt"
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_script_twin_resumes_bit_exact_after_kills(tmp_path, precision):
    """fp16 is the T4's path (autocast and a GradScaler, whose state is in the checkpoint), here
    run on the CPU: COLABKIT_PRECISION overrides the GPU-based choice."""
    cmd = [sys.executable, str(NOTEBOOK)]
    common = dict(COLABKIT_SMOKE=1, COLABKIT_PRECISION=precision)
    run_to_end(cmd, env_for(tmp_path / "ref-home", tmp_path / "ref-work", **common), REPO)
    ref = _final(tmp_path / "ref-home")

    env = env_for(tmp_path / "home", tmp_path / "work", COLABKIT_SAVE_EVERY_STEPS=1, **common)
    res = run_with_kills(cmd, env, REPO, kills=4, seed=7, done_marker="[train] finished",
                         wait_for="[train] ", min_delay=0.0, max_delay=0.2, steps=(1, 5),
                         progress_folder=tmp_path / "home" / RUN / "train" / "checkpoints")
    logs = res["logs"]
    assert f"precision: {precision}" in logs[0]
    assert res["killed"] >= 3, [log[-1500:] for log in logs]
    resumes = [re.search(r"resumed from ckpt-(\d{9})\.pt: step ([\d,]+) of 40 \(epoch (\d+), batch (\d+) of 10\)",
                         log) for log in logs[1:]]
    resumes = [r for r in resumes if r]
    assert len(resumes) >= 3, ("restarts must continue from a checkpoint, not from scratch:\n"
                               + "\n----\n".join(log[-1500:] for log in logs))
    steps = [int(r.group(2).replace(",", "")) for r in resumes]
    assert all(int(r.group(1)) == s for r, s in zip(resumes, steps)), "resumed at the saved step"
    assert steps == sorted(steps) and 0 < steps[0] and steps[-1] <= TOTAL
    assert any(int(r.group(4)) != 0 for r in resumes), "at least one kill should land mid-epoch"

    got = _final(tmp_path / "home")
    assert got["step"] == ref["step"] == TOTAL
    assert got["position"] == ref["position"]
    n = assert_same(ref["state"], got["state"])   # networks, Adam moments, schedulers, scaler, both histories
    assert n > 50
    assert_same(ref["rng"], got["rng"])
    for pool in ("pool_x", "pool_y"):
        assert len(got["state"][pool]["images"]) == SMOKE_POOL
    assert got["state"]["sched_G"]["last_epoch"] == got["state"]["sched_D"]["last_epoch"] == 4
    scaler = got["state"]["scaler"]
    if precision == "fp16":   # the scaler did work (it grew or backed off), and that resumed exactly
        assert scaler and (scaler["scale"] != 2.0**16 or scaler["_growth_tracker"] > 0), scaler
    else:
        assert not scaler


def _graph_vs_eager_run(nb, monkeypatch, ignore_lr=False):
    """GraphedStep on the stand-in graphs next to the eager fast_step, from the same state, for
    9 steps: 3 warm-up steps, a recording, a change of learning rate, and a resume that replaces
    the optimizers' state. Returns the two models, the step and the per-step losses."""
    fakegraph.install(monkeypatch)
    torch.set_num_threads(1)
    base = _model(nb)
    for net in (base.G_xy, base.G_yx, base.D_x, base.D_y):
        net.double()
    base.opt_G, base.opt_D = nb.make_optimizers(base.G_xy, base.G_yx, base.D_x, base.D_y, 2e-4, (0.5, 0.999),
                                                fused=True)   # fused Adam keeps its step count on the device
    a, b = copy.deepcopy(base), copy.deepcopy(base)
    fs = nb.FastSettings("cpu", None, None)
    step = nb.GraphedStep(a, fs)
    step.device_type, step.enabled = "cpu", True   # (on a GPU: capturable Adam and no GradScaler)
    if ignore_lr:   # a broken variant, to show that the check below can fail
        make_key = step._make_key
        step._make_key = lambda x, y: make_key(x, y)[:3] + make_key(x, y)[5:]
    g = torch.Generator().manual_seed(2)
    random.seed(7)
    losses = []
    for i in range(9):
        if i == 5:   # the learning-rate schedule moves (once an epoch during the decay)
            for m in (a, b):
                for opt in (m.opt_G, m.opt_D):
                    for group in opt.param_groups:
                        group["lr"] *= 0.5
        if i == 7:   # a resume loads the optimizers' state: new state tensors
            for m in (a, b):
                for opt in (m.opt_G, m.opt_D):
                    opt.load_state_dict(copy.deepcopy(opt.state_dict()))
        x, y = (torch.rand(1, 3, 32, 32, generator=g, dtype=torch.float64) * 2 - 1 for _ in range(2))
        before = random.getstate()
        la = step(x, y)
        after = random.getstate()
        random.setstate(before)
        lb = nb.fast_step(b, x, y, fs)
        assert random.getstate() == after
        losses.append((la, lb))
    return a, b, step, losses


def test_graphed_step_replays_the_eager_step(nb, monkeypatch):
    """The CUDA-graph step's bookkeeping, on a CPU stand-in for CUDA graphs (tests/fakegraph.py)
    that bakes in host values and executes nothing while recording, like the real thing."""
    a, b, step, losses = _graph_vs_eager_run(nb, monkeypatch)
    assert step.enabled and step.warm_steps == 3
    assert step.captures == 3   # first, new lr, resumed state
    assert fakegraph.FakeGraphContext.recorded == 2 * 3   # G and D halves
    for i, (la, lb) in enumerate(losses):
        assert set(la) == set(nb.LOSS_NAMES)
        for k in nb.LOSS_NAMES:
            assert torch.isfinite(la[k]), (i, k)
            torch.testing.assert_close(la[k], lb[k], rtol=1e-12, atol=0, msg=f"step {i}: {k}")
    for (name, pa), (_, pb) in zip(_params(a), _params(b)):
        torch.testing.assert_close(pa, pb, rtol=1e-12, atol=0, msg=name)
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-12, atol=0, msg=f"grad of {name}")
    for oa, ob in ((a.opt_G, b.opt_G), (a.opt_D, b.opt_D)):
        sa, sb = oa.state_dict()["state"], ob.state_dict()["state"]
        assert sa.keys() == sb.keys()
        for k in sa:
            assert float(sa[k]["step"]) == float(sb[k]["step"]) == 9
            for name in ("exp_avg", "exp_avg_sq"):
                torch.testing.assert_close(sa[k][name], sb[k][name], rtol=1e-12, atol=0)
    for pool in ("pool_x", "pool_y"):
        ia, ib = getattr(a, pool).images, getattr(b, pool).images
        assert len(ia) == len(ib) == 2 and all(torch.equal(u, v) for u, v in zip(ia, ib))


def test_graphed_step_stale_learning_rate_is_caught(nb, monkeypatch):
    """Control for the test above: a step that did not record again after the learning rate
    changed keeps updating with the old rate, and the comparison sees it."""
    a, b, step, losses = _graph_vs_eager_run(nb, monkeypatch, ignore_lr=True)
    assert step.captures == 2   # the lr change went unnoticed; only the resume recorded again
    differ = [name for (name, pa), (_, pb) in zip(_params(a), _params(b)) if not torch.allclose(pa, pb, rtol=1e-9)]
    assert differ


def test_graphed_step_falls_back_when_recording_fails(nb, monkeypatch, capsys):
    fakegraph.install(monkeypatch)
    fakegraph.FakeGraphContext.fail = RuntimeError("operation not permitted when stream is capturing")
    torch.set_num_threads(1)
    a = _model(nb)
    b = copy.deepcopy(a)
    fs = nb.FastSettings("cpu", None, None)
    step = nb.GraphedStep(a, fs, warmup=1)
    step.device_type, step.enabled = "cpu", True
    random.seed(3)
    x, y = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    for _ in range(3):
        state = random.getstate()
        la = step(x, y)
        random.setstate(state)
        lb = nb.fast_step(b, x, y, fs)
        assert all(torch.equal(la[k], lb[k]) for k in nb.LOSS_NAMES)
    assert not step.enabled and step.captures == 0
    assert "continuing with the eager fast step" in capsys.readouterr().out
    assert all(torch.equal(pa, pb) for (_, pa), (_, pb) in zip(_params(a), _params(b)))


GRAPHED = REPO / "tests" / "scripts" / "graphed_cyclegan.py"


def test_notebook_trains_the_same_with_the_graphed_step_and_resumes(tmp_path):
    """The whole notebook with its CUDA-graph step on the CPU stand-in (tests/scripts/graphed_cyclegan.py):
    the loop, checkpoints, the lr decay that makes it record again, the grids between replays.
    Uninterrupted, and killed and restarted, it ends bit for bit where the eager fast step ends."""
    common = dict(COLABKIT_SMOKE=1, MPLBACKEND="Agg")
    eager = subprocess.Popen([sys.executable, str(GRAPHED), "eager"], cwd=REPO, text=True,
                             env=env_for(tmp_path / "eager-home", tmp_path / "eager-work", **common),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    cmd = [sys.executable, str(GRAPHED), "graphs"]
    log = run_to_end(cmd, env_for(tmp_path / "home", tmp_path / "work", **common), REPO)
    # 40 steps: 3 eager warm-up steps, then a recording; the lr changes after epochs 2 and 3 of 4
    assert "GRAPHS mode=graphs enabled=True recordings=3 graph contexts=6" in log, log[-3000:]

    res = run_with_kills(cmd, env_for(tmp_path / "k-home", tmp_path / "k-work", COLABKIT_SAVE_EVERY_STEPS=1, **common),
                         REPO, kills=2, seed=3, done_marker="[train] finished", wait_for="[train] ",
                         min_delay=0.0, max_delay=0.2, steps=(1, 8),
                         # from a new checkpoint on: on a loaded machine a delay from the start alone
                         # can end every attempt before its first save
                         progress_folder=tmp_path / "k-home" / RUN / "train" / "checkpoints")
    assert res["killed"] >= 1 and any("[train] resumed from" in log for log in res["logs"][1:])

    eager_log, _ = eager.communicate(timeout=300)
    assert eager.returncode == 0, eager_log[-3000:]
    assert "GRAPHS mode=eager enabled=False recordings=0" in eager_log
    ref = _final(tmp_path / "eager-home")
    for home in ("home", "k-home"):
        got = _final(tmp_path / home)
        assert got["step"] == ref["step"] == TOTAL
        assert assert_same(ref["state"], got["state"]) > 50
        assert_same(ref["rng"], got["rng"])


# --- the authors' released generators ------------------------------------------------------------

def _reference_keys(n_blocks):
    """The reference ResnetGenerator's state-dict keys, written out from its layer list: pad, conv (1), norm,
    relu, two down convs (4, 7), the blocks (10 ...), each pad, conv (1), norm, relu, pad, conv (5), norm;
    two transposed convs, a pad, the last conv, tanh."""
    convs = ["model.1", "model.4", "model.7"]
    convs += [f"model.{10 + i}.conv_block.{j}" for i in range(n_blocks) for j in (1, 5)]
    up = 10 + n_blocks
    convs += [f"model.{up}", f"model.{up + 3}", f"model.{up + 7}"]
    return [f"{c}.{p}" for c in convs for p in ("weight", "bias")]


def _reference_state(G, old_norm_stats=False):
    """G's weights as the authors' files hold them; optionally with old PyTorch's instance-norm entries."""
    sd = {}
    for name, m in G.named_modules():
        ref = name.replace(".block.", ".conv_block.")
        for pname, t in m.named_parameters(recurse=False):
            sd[f"{ref}.{pname}"] = t.detach().clone()
        if old_norm_stats and isinstance(m, torch.nn.InstanceNorm2d):
            sd[f"{ref}.running_mean"] = torch.zeros(m.num_features)
            sd[f"{ref}.running_var"] = torch.ones(m.num_features)
            sd[f"{ref}.num_batches_tracked"] = torch.tensor(0)
    return sd


def _save(obj, path):
    torch.save(obj, path)
    return path


def test_the_reference_layout_is_this_generators_tensors_in_the_same_order(nb):
    with torch.device("meta"):
        G = nb.ResnetGenerator(64, 9)
    ours = list(G.state_dict())
    assert [nb.reference_name(k) for k in ours] == _reference_keys(9)
    shapes = {nb.reference_name(k): tuple(v.shape) for k, v in G.state_dict().items()}
    assert shapes["model.1.weight"] == (64, 3, 7, 7)
    assert shapes["model.10.conv_block.5.weight"] == (256, 256, 3, 3)
    assert shapes["model.19.weight"] == (256, 128, 3, 3)      # transposed conv: (in, out, k, k)
    assert shapes["model.26.weight"] == (3, 64, 7, 7)


@pytest.mark.parametrize("old_norm_stats", [False, True])
def test_a_released_generator_loads_and_gives_the_same_output(nb, tmp_path, old_norm_stats):
    torch.manual_seed(1)
    src = nb.init_weights(nb.ResnetGenerator(8, 2)).eval()
    state = _reference_state(src, old_norm_stats)
    assert list(state)[:3] == (["model.1.weight", "model.1.bias", "model.2.running_mean"] if old_norm_stats
                               else ["model.1.weight", "model.1.bias", "model.4.weight"])
    path = tmp_path / "horse2zebra.pth"
    # Files of that age are also in PyTorch's old (pre-1.6, not zip) format; weights_only reads both.
    torch.save(state, path, _use_new_zipfile_serialization=not old_norm_stats)
    assert path.read_bytes()[:2] == (b"\x80\x02" if old_norm_stats else b"PK")
    torch.manual_seed(2)
    G = nb.load_reference_generator(nb.init_weights(nb.ResnetGenerator(8, 2)), path).eval()
    n_norms = 1 + 2 + 2 * 2 + 2             # first conv, two down, two per block, two up
    assert G.dropped_instance_norm_stats == (3 * n_norms if old_norm_stats else 0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(G(x), src(x))
    # Bytes and an in-memory dict work the same way.
    G2 = nb.load_reference_generator(nb.ResnetGenerator(8, 2), path.read_bytes()).eval()
    G3 = nb.load_reference_generator(nb.ResnetGenerator(8, 2), state).eval()
    with torch.no_grad():
        assert torch.equal(G2(x), src(x)) and torch.equal(G3(x), src(x))


def test_a_wrong_file_says_what_differs(nb, tmp_path):
    torch.manual_seed(0)
    src = nb.init_weights(nb.ResnetGenerator(8, 2))
    good = _reference_state(src)
    fresh = lambda: nb.ResnetGenerator(8, 2)

    def error(source):
        with pytest.raises(nb.PretrainedMismatch) as info:
            nb.load_reference_generator(fresh(), source, what="x.pth")
        return str(info.value)

    msg = error(_save(_reference_state(nb.ResnetGenerator(4, 2)), tmp_path / "narrow.pth"))
    assert "other shapes" in msg and "model.1.weight: file (4, 3, 7, 7), here (8, 3, 7, 7)" in msg
    assert "ngf=8, 2 residual blocks" in msg and "the file: ngf=4, 2 residual blocks" in msg

    missing = {k: v for k, v in good.items() if k != "model.19.bias"}   # the last conv (2 blocks)
    msg = error(_save(missing, tmp_path / "missing.pth"))
    assert "1 tensors are missing (model.19.bias)" in msg

    msg = error(_save(_reference_state(nb.ResnetGenerator(8, 3)), tmp_path / "deeper.pth"))
    assert "not in a ResnetGenerator" in msg and "3 residual blocks" in msg

    msg = error(_save(src.state_dict(), tmp_path / "ours.pth"))     # this notebook's own names
    assert "model.10.block.1.weight" in msg and "this notebook's own layout" in msg

    msg = error(_save([1, 2, 3], tmp_path / "list.pth"))
    assert "holds a list, not a state dict" in msg
    msg = error(_save({"G_xy": good, "step": 3}, tmp_path / "checkpoint.pth"))
    assert "not of tensors" in msg and "G_xy" in msg

    raw = _save(good, tmp_path / "whole.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(raw[: len(raw) // 2])
    msg = error(tmp_path / "cut.pth")
    assert "cannot be read as a PyTorch file" in msg and "truncated" in msg and "x.pth" in msg


def test_a_released_generator_comes_through_fetch_and_the_cache(nb, tmp_path, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    torch.manual_seed(3)
    src = nb.init_weights(nb.ResnetGenerator(8, 2)).eval()
    buf = io.BytesIO()
    torch.save(_reference_state(src, old_norm_stats=True), buf)
    with ck.loopback.serve({"zebra2horse.pth": buf.getvalue()}) as base:
        url = nb.PRETRAINED_URL.replace("http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models", base)
        path = ck.data.fetch(url.format(name="zebra2horse"), "zebra2horse.pth", cache_dir=tmp_path / "drive",
                             dest_dir=tmp_path / "vm1", progress=False)
        with pytest.raises(ck.data.HTTPStatusError, match="404"):
            ck.data.fetch(url.format(name="nothing"), "nothing.pth", dest_dir=tmp_path / "vm1", progress=False)
    G = nb.load_reference_generator(nb.ResnetGenerator(8, 2), path).eval()
    # The next session: the server is gone, the copy on Drive serves.
    again = ck.data.fetch(url.format(name="zebra2horse"), "zebra2horse.pth", cache_dir=tmp_path / "drive",
                          dest_dir=tmp_path / "vm2", progress=False)
    G2 = nb.load_reference_generator(nb.ResnetGenerator(8, 2), again).eval()
    x = torch.rand(1, 3, 24, 24) * 2 - 1
    with torch.no_grad():
        assert torch.equal(G(x), src(x)) and torch.equal(G2(x), src(x))
    assert nb.PRETRAINED["horse2zebra"] == ("horse2zebra", "zebra2horse")
