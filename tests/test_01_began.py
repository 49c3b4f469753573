"""BEGAN notebook: the paper's pieces (from the notebook's own lib cells) and exact resume of the
notebook's script twin killed at random moments during training."""

import copy
import re
import subprocess
import sys

import pytest
import torch
from resume_util import REPO, assert_same, env_for, kill_after_first_checkpoint, run_to_end, run_with_kills

import colabkit as ck
import colabkit.nbcells

NOTEBOOK = REPO / "notebooks" / "01_began.py"
RUN_NAME = "began-cifar10-gamma0.5-smoke"   # the notebook's run name in smoke mode
TOTAL = 60                                  # its smoke TOTAL_STEPS
DONE = "play: α ="                          # printed by the notebook's last cell


@pytest.fixture(scope="module")
def nb():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny networks: threads only add overhead (and contention on shared CI cores)
    yield ck.nbcells.load(NOTEBOOK)
    torch.set_num_threads(threads)


def count(m):
    return sum(p.numel() for p in m.parameters())


def test_paper_architecture_sizes_and_shapes(nb):
    # 32×32, n = 128, h = z = 64: the notebook's default run (numbers also asserted in the notebook)
    G, D = nb.Generator(32, 128, 64), nb.Discriminator(32, 128, 64)
    assert (count(G), count(D)) == (1_421_443, 8_308_547)
    assert count(D.decoder) == count(G)                        # the same design, separate weights
    # 64×64 (the paper's faces): one more scale, the encoder widening to 4n = 512 filters
    D64 = nb.Discriminator(64, 128, 64)
    assert D64.encoder.fc.in_features == 8 * 8 * 4 * 128
    widths = [m.out_channels for m in D64.encoder.convs if isinstance(m, torch.nn.Conv2d)]
    assert widths == [128, 128, 128, 256, 256, 256, 384, 384, 384, 512, 512, 512]
    strides = [m.stride[0] for m in D64.encoder.convs if isinstance(m, torch.nn.Conv2d)]
    assert strides.count(2) == 3
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert D64.encoder(x).shape == (2, 64) and D64(x).shape == x.shape
    # the skip variant: h0 concatenated after each up-sampling
    Gs = nb.Generator(64, 8, 16, skip=True)
    assert [b[0].in_channels for b in Gs.blocks] == [8, 16, 16, 16]
    assert Gs(nb.sample_z(3, 16, "cpu")).shape == (3, 3, 64, 64)
    # grey images (the learning benchmark's digits): one channel in and out, the rest unchanged
    G1, D1 = nb.Generator(16, 8, 8, channels=1), nb.Discriminator(16, 8, 8, channels=1)
    assert G1(nb.sample_z(2, 8, "cpu")).shape == (2, 1, 16, 16)
    assert D1(torch.zeros(2, 1, 16, 16)).shape == (2, 1, 16, 16)
    G3, D3 = nb.Generator(16, 8, 8), nb.Discriminator(16, 8, 8)
    assert count(G3) - count(G1) == 9 * 8 * 2 + 2                       # the last conv: 2 fewer outputs
    assert count(D3) - count(D1) == 2 * (9 * 8 * 2) + 2                 # first conv's inputs, last conv's outputs
    with pytest.raises(ValueError):
        nb.n_scales(48)


def test_controller_and_measure(nb):
    t = torch.tensor
    assert float(nb.update_k(t(0.3), t(0.2), t(0.05), 0.5, 0.001)) == pytest.approx(0.3 + 0.001 * (0.1 - 0.05))
    assert float(nb.update_k(t(0.9999), t(1.0), t(0.0), 0.5, 0.001)) == 1.0
    assert float(nb.update_k(t(0.0001), t(0.0), t(1.0), 0.5, 0.001)) == 0.0
    assert float(nb.M_global(t(0.2), t(0.3), 0.5)) == pytest.approx(0.2 + 0.2)
    z = nb.sample_z(1000, 64, "cpu")
    assert z.min() >= -1 and z.max() <= 1 and z.min() < -0.99 and z.max() > 0.99


def test_train_step_is_the_papers_simultaneous_update(nb):
    """Each network's gradient is exactly that of its own objective, both taken at the same θ."""
    torch.manual_seed(0)
    G, D = nb.Generator(16, 4, 8), nb.Discriminator(16, 4, 8)
    G0, D0 = copy.deepcopy(G), copy.deepcopy(D)
    opt_G = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.5, 0.999))
    k = 0.25
    train = ck.State(k_t=torch.tensor(k), M_sum=torch.zeros(()))
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    prec = ck.Precision("fp32", "cpu")
    torch.manual_seed(1)
    out = nb.train_step(x, G, D, opt_G, opt_D, prec.make_scaler(), train, gamma=0.5, lambda_k=0.001,
                        precision=prec)
    torch.manual_seed(1)
    z_D, z_G = nb.sample_z(4, 8, "cpu"), nb.sample_z(4, 8, "cpu")
    G_zD = G0(z_D).detach()
    L_x, L_zD = (x - D0(x)).abs().mean(), (G_zD - D0(G_zD)).abs().mean()
    G_zG = G0(z_G)
    L_zG = (G_zG - D0(G_zG)).abs().mean()
    grad_D = torch.autograd.grad(L_x - k * L_zD, list(D0.parameters()))
    grad_G = torch.autograd.grad(L_zG, list(G0.parameters()))
    for p, g in zip(D.parameters(), grad_D):
        torch.testing.assert_close(p.grad, g)
    for p, g in zip(G.parameters(), grad_G):
        torch.testing.assert_close(p.grad, g)
    torch.testing.assert_close(out["L_x"], L_x.detach())
    torch.testing.assert_close(out["L_G"], L_zG.detach())
    k_1 = min(max(k + 0.001 * (0.5 * L_x.item() - L_zG.item()), 0.0), 1.0)
    assert float(train.k_t) == pytest.approx(k_1, abs=1e-7)
    torch.testing.assert_close(train.M_sum, out["M_global"])


def test_lr_halving_in_place_keeps_adam_state(nb):
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([w], lr=1e-4)
    w.sum().backward()
    opt.step()
    state = opt.state[w]
    moments = state["exp_avg"].clone()
    train = ck.State(lr=1e-4, M_sum=torch.tensor(3.0), M_best=1.0, stalled=0, halvings=0)
    for _ in range(2):   # two windows with mean 1.0 (no 1 % improvement on 1.0): halve on the second
        train.M_sum = torch.tensor(3.0)
        assert nb.end_of_window(train, [opt], window=3, patience=2, tolerance=0.01) == 1.0
    assert train.lr == 5e-5 and train.halvings == 1 and train.stalled == 0
    assert opt.param_groups[0]["lr"] == 5e-5
    assert opt.state[w] is state and torch.equal(state["exp_avg"], moments)
    train.M_sum = torch.tensor(2.0)   # mean 2/3: a new best
    nb.end_of_window(train, [opt], window=3, patience=2, tolerance=0.01)
    assert train.M_best == pytest.approx(2 / 3) and train.stalled == 0 and train.lr == 5e-5
    assert float(train.M_sum) == 0.0


def test_lr_floor_and_g_lr_scale_survive_halving(nb):
    G, D = nb.Generator(16, 4, 8), nb.Discriminator(16, 4, 8)
    opt_G = nb.make_adam(G, 1e-4, (0.9, 0.999), lr_scale=4.0)
    opt_D = nb.make_adam(D, 1e-4, (0.9, 0.999))
    assert opt_G.param_groups[0]["lr"] == pytest.approx(4e-4) and opt_D.param_groups[0]["lr"] == 1e-4
    assert opt_G.param_groups[0]["betas"] == (0.9, 0.999)
    train = ck.State(lr=1e-4, M_sum=torch.zeros(()), M_best=1.0, stalled=0, halvings=0)
    lrs = []
    for _ in range(4):   # every window a stall (mean 1.0, no new best), patience 1: halve each time…
        train.M_sum = torch.tensor(3.0)
        nb.end_of_window(train, [opt_G, opt_D], window=3, patience=1, tolerance=0.01, floor=3e-5)
        lrs.append(train.lr)
    assert lrs == [5e-5, 3e-5, 3e-5, 3e-5] and train.halvings == 2   # …but never below the floor
    assert opt_D.param_groups[0]["lr"] == 3e-5 and opt_G.param_groups[0]["lr"] == pytest.approx(1.2e-4)
    # the scale travels in the optimiser's state dict, so a resumed run keeps G's faster rate
    back = nb.make_adam(nb.Generator(16, 4, 8), 1e-4, (0.9, 0.999))
    back.load_state_dict(opt_G.state_dict())
    assert back.param_groups[0]["lr_scale"] == 4.0


def test_init_weights(nb):
    torch.manual_seed(0)
    D = nb.init_weights(nb.Discriminator(16, 8, 8), "xavier")
    for m in D.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(m.weight)
            bound = (6 / (fan_in + fan_out)) ** 0.5
            assert m.weight.abs().max() <= bound and m.weight.abs().max() > 0.9 * bound
            assert not m.bias.any()
    torch.manual_seed(0)
    plain = nb.Discriminator(16, 8, 8)
    same = nb.init_weights(copy.deepcopy(plain), "torch")
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), same.parameters()))
    with pytest.raises(ValueError, match="xavier"):
        nb.init_weights(plain, "glorot")


def test_k_watch_warns_once_per_stretch_at_zero(nb):
    train = ck.State(k_max=torch.zeros(()), k_zero_steps=0)

    def window(k_max):
        train.k_max = torch.tensor(k_max)
        return nb.watch_k(train, window=100, warn_after=300)

    assert [window(0.0) for _ in range(2)] == [None, None]
    assert "k_t has been 0 for the last 300 steps" in window(0.0)
    assert window(0.0) is None and train.k_zero_steps == 400          # once per stretch
    assert window(0.01) is None and train.k_zero_steps == 0           # k_t left 0: the stretch ends
    assert float(train.k_max) == 0.0                                  # reset for the next window
    assert [window(0.0) for _ in range(3)][-1] is not None            # a new stretch warns again


QUOTA_DRIVER = r"""
import sys
import colabkit as ck
import colabkit.data
import colabkit.nbcells

def quota(*args, **kwargs):
    raise ck.data.DriveQuotaError("Google Drive: Too many users have viewed or downloaded this file recently")

ck.data.fetch = quota
ns = {"__name__": "__main__"}
for i, (header, source) in enumerate(colabkit.nbcells.cells(sys.argv[1])):
    if "[markdown]" not in header:   # the data cell raises
        colabkit.nbcells.exec_cell(source.replace('DATASET = "cifar10"', 'DATASET = "celeba"', 1), ns, f"cell-{i}")
"""


def test_celeba_drive_quota_stops_with_what_to_do(tmp_path):
    env = env_for(tmp_path / "home", tmp_path / "work", COLABKIT_SMOKE=1, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-c", QUOTA_DRIVER, str(NOTEBOOK)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "Too many users" in proc.stdout                       # colabkit's own explanation, printed
    err = proc.stderr.strip().splitlines()[-1]
    assert err.startswith("RuntimeError: CelebA cannot be downloaded right now"), proc.stderr[-2000:]
    assert str(tmp_path / "home" / "cache") in err and "DATASET = 'cifar10'" in err
    assert "[train]" not in proc.stdout                          # it stopped before training


def _final_checkpoint(home):
    path = home / RUN_NAME / "train" / "checkpoints" / f"ckpt-{TOTAL:09d}.pt"
    return torch.load(path, weights_only=True)


def test_killed_notebook_resumes_exactly(tmp_path):
    """SIGKILL the script twin mid-training several times; the end state equals an uninterrupted run's."""
    cmd = [sys.executable, str(NOTEBOOK)]
    extra = dict(COLABKIT_SMOKE=1, COLABKIT_SAVE_EVERY_STEPS=1, MPLBACKEND="Agg")
    log = run_to_end(cmd, env_for(tmp_path / "ref-home", tmp_path / "ref-work", **extra), REPO)
    assert "[train] finished" in log and DONE in log
    ref = _final_checkpoint(tmp_path / "ref-home")

    res = run_with_kills(cmd, env_for(tmp_path / "home", tmp_path / "work", **extra), REPO, kills=3, seed=7,
                         done_marker=DONE, wait_for="[train] ", min_delay=0.0, max_delay=0.3, steps=(2, 12),
                         progress_folder=tmp_path / "home" / RUN_NAME / "train" / "checkpoints")
    assert res["killed"] >= 2, res["logs"]
    resumed = [m for log in res["logs"] for m in re.finditer(r"resumed from ckpt-(\d{9})\.pt: step ([\d,]+)", log)]
    assert len(resumed) >= 2, "restarts should continue from a checkpoint, not from scratch"
    for m in resumed:   # each restart continues at exactly the step its checkpoint holds
        assert int(m.group(1)) == int(m.group(2).replace(",", "")) > 0
    assert any(int(m.group(1)) < TOTAL for m in resumed), "no kill landed inside training"
    assert DONE in res["logs"][-1]

    got = _final_checkpoint(tmp_path / "home")
    assert got["step"] == ref["step"] == TOTAL
    # BEGAN's own state, named: the controller, the halved lr (in the state and in both optimisers)
    for key in ("k_t", "lr", "M_best", "stalled", "halvings", "z_fixed"):
        assert_same(ref["state"]["train"][key], got["state"]["train"][key], key)
    assert 0.0 < float(got["state"]["train"]["k_t"]) <= 1.0
    assert got["state"]["train"]["lr"] < 1e-4, "the smoke run should have halved the lr"
    for opt in ("opt_G", "opt_D"):
        assert got["state"][opt]["param_groups"][0]["lr"] == got["state"]["train"]["lr"]
    # …and everything else, bit for bit: weights, Adam moments, scaler, RNG
    n = assert_same(ref["state"], got["state"]) + assert_same(ref["rng"], got["rng"])
    assert n > 50


def test_run_begun_in_bf16_resumes_on_a_t4_in_fp16(tmp_path):
    """Colab hands out another GPU after a disconnect: a run begun on an A100 or L4 (bf16, no
    gradient scaler) continues on a T4 (fp16 with a scaler), from its checkpoint, to the end."""
    cmd = [sys.executable, str(NOTEBOOK)]
    common = dict(COLABKIT_SMOKE=1, COLABKIT_SAVE_EVERY_STEPS=1, MPLBACKEND="Agg")
    home = tmp_path / "home"
    folder = home / RUN_NAME / "train" / "checkpoints"
    out = kill_after_first_checkpoint(cmd, env_for(home, tmp_path / "work", COLABKIT_PRECISION="bf16", **common),
                                      REPO, wait_for="[train] ", folder=folder)
    assert "bfloat16 autocast" in out and "[train] finished" not in out, out[-2000:]

    log = run_to_end(cmd, env_for(home, tmp_path / "work", COLABKIT_PRECISION="fp16", **common), REPO)
    assert "float16 autocast + GradScaler" in log
    m = re.search(r"\[train\] resumed from ckpt-(\d{9})\.pt", log)
    assert m and 0 < int(m.group(1)) < TOTAL, log[-3000:]
    assert DONE in log
    final = _final_checkpoint(home)
    assert final["step"] == TOTAL
    assert final["state"]["scaler"]["scale"] > 0   # the T4's scaler ran and is saved from now on
