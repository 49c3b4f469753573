"""StackGAN notebook: the paper's pieces behave (lib cells), and the script twin, killed during Stage-II and
restarted, does not retrain Stage-I, continues Stage-II at its saved step, and ends with the same weights,
optimizer moments, schedulers and RNG, bit for bit, as a run that was never interrupted."""

import random
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from resume_util import (
    REPO,
    _read_until,
    assert_same,
    env_for,
    kill_after_first_checkpoint,
    newest_complete_step,
    run_to_end,
)

import colabkit as ck
from colabkit import nbcells

NOTEBOOK = REPO / "notebooks" / "03_stackgan.py"
RUN = "stackgan-cub-smoke"


@pytest.fixture(scope="module")
def nb():
    return nbcells.load(NOTEBOOK)


# --- the paper's pieces ---------------------------------------------------------------------------

def test_kl_term_is_the_gaussian_kl_and_never_negative(nb):
    mu, logvar = torch.randn(64, 16) * 2, torch.randn(64, 16) * 3
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu, (0.5 * logvar).exp()),
                                            torch.distributions.Normal(0.0, 1.0)).sum(1)
    got = nb.kl_divergence(mu, logvar)
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-5)
    assert (got >= 0).all() and float(nb.kl_divergence(torch.zeros(1, 16), torch.zeros(1, 16))) == 0.0


def test_conditioning_augmentation_samples_mu_plus_sigma_eps(nb):
    ca = nb.CondAugment(32, 8)
    phi, eps = torch.randn(4, 32), torch.randn(4, 8)
    c_hat, mu, logvar = ca(phi, eps)
    assert torch.allclose(c_hat, mu + (0.5 * logvar).exp() * eps)
    assert torch.equal(ca(phi, torch.zeros(4, 8))[0], mu)


class _SpeciesExtractor:
    """A stand-in classifier that reads the species from pixel [0, 0, 0] and is certain of it."""

    name = "species-test"

    def __init__(self, n_species):
        self.n = n_species

    def __call__(self, x):
        species = torch.round((x[:, 0, 0, 0].double() + 1) / 2 * (self.n - 1)).long()
        logits = torch.nn.functional.one_hot(species, self.n).double() * 50.0
        return {"logits": logits, "pool": logits}


def test_inception_score_is_shuffled_before_the_splits_as_the_authors_do(nb):
    # Generated caption by caption through a test set ordered by species: 50 species, 20 samples each.
    # Consecutive splits of 100 would each see 5 species, and the score would be about 5 for perfect images.
    n_species, per = 50, 20
    species = torch.arange(n_species).repeat_interleave(per)
    pos = [0]

    def sample(k):
        s = species[pos[0]:pos[0] + k].double()
        pos[0] += k
        x = torch.zeros(len(s), 3, 2, 2, dtype=torch.float64)
        x[:, 0, 0, 0] = s / (n_species - 1) * 2 - 1
        return x

    ext = _SpeciesExtractor(n_species)
    grouped, _ = ck.metrics.inception_score(sample, ext, splits=10, n=len(species), batch_size=50, progress=False)
    assert grouped == pytest.approx(5.0, rel=1e-6)
    pos[0] = 0
    mean, std = nb.inception_score_as_the_authors(sample, ext, len(species), splits=10, seed=0)
    # A split of 100 samples drawn from 50 equally common species holds about 43 of them.
    assert mean > 30.0 and std > 0
    pos[0] = 0
    assert nb.inception_score_as_the_authors(sample, ext, len(species), splits=10, seed=0) == (mean, std)


def test_bird_crop_is_a_square_of_one_and_a_half_box_sides_clipped_to_the_image(nb):
    # box x=60, y=40, w=40, h=20 in a 200×150 image: side 1.5·40 = 60 centred on (80, 50)
    assert nb.bird_crop_box((60, 40, 40, 20), 200, 150) == (50, 20, 110, 80)
    # near the top-left corner the square is cut by the border
    assert nb.bird_crop_box((0, 5, 40, 30), 200, 150) == (0, 0, 50, 50)


def test_paper_sized_shapes_and_parameter_counts(nb):
    with torch.device("meta"):
        G0, D0 = nb.StageIGenerator(1024, 128, 100, 1024, 64), nb.Discriminator(1024, 64, 64, 128, 4)
        G, D = nb.StageIIGenerator(1024, 128, 128, 4, 64, 256), nb.Discriminator(1024, 256, 64, 128, 4)
        phi, z = torch.empty(3, 1024), torch.empty(3, 100)
        s0 = G0(phi, z)[0]
        img = G(s0, phi)[0]
        assert s0.shape == (3, 3, 64, 64) and img.shape == (3, 3, 256, 256)
        assert D0(s0, phi).shape == D(img, phi).shape == (3,)
    # the generators match the authors' PyTorch port exactly; the discriminators follow the paper
    assert [nb.n_params(m) for m in (G0, D0, G, D)] == [10_301_248, 3_225_473, 26_290_080, 68_770_689]


def test_one_step_of_each_stage_is_finite_and_moves_both_networks(nb):
    torch.manual_seed(0)
    G0, D0 = nb.StageIGenerator(24, 8, 8, 32, 16), nb.Discriminator(24, 16, 8, 8, 4)
    G, D = nb.StageIIGenerator(24, 8, 4, 1, 16, 32), nb.Discriminator(24, 32, 8, 8, 4)
    phi, z = torch.randn(6, 24), torch.randn(6, 8)
    for gen, net_G, net_D, size in ((G0, G0, D0, 16),
                                    (lambda p, zz: nb.stage2_generate(G0.eval(), G, p, zz)[:3], G, D, 32)):
        opt_G, opt_D = torch.optim.Adam(net_G.parameters()), torch.optim.Adam(net_D.parameters())
        before = [p.detach().clone() for p in (*net_G.parameters(), *net_D.parameters())]
        frozen = [p.detach().clone() for p in G0.parameters()]
        v = nb.gan_step(gen, net_D, opt_G, opt_D, torch.amp.GradScaler("cpu", enabled=False),
                        torch.rand(6, 3, size, size) * 2 - 1, phi, z, 2.0)
        nb.check_step(v, 0)
        after = [*net_G.parameters(), *net_D.parameters()]
        assert all(not torch.equal(a, b) for a, b in zip(before, after) if a.dim() > 1)
        assert all(p.requires_grad for p in net_D.parameters())   # D unfrozen again after G's step
    assert all(torch.equal(a, b) for a, b in zip(frozen, G0.parameters()))   # Stage-II leaves Stage-I alone


# --- kill during Stage-II and restart ---------------------------------------------------------------

def _final(home, loop):
    folder = home / RUN / loop / "checkpoints"
    last = sorted(folder.glob("ckpt-*.pt"))[-1]
    return last.name, torch.load(last, weights_only=True)


def test_kill_during_stage2_resumes_without_retraining_stage1_bit_exact(tmp_path):
    cmd = [sys.executable, str(NOTEBOOK)]
    common = dict(COLABKIT_SMOKE=1, COLABKIT_SAVE_EVERY_STEPS=1)
    # The uninterrupted reference runs on the other core while this test kills and restarts its twin.
    ref_home = tmp_path / "ref-home"
    ref = subprocess.Popen(cmd, env=env_for(ref_home, tmp_path / "ref-work", **common), cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    home = tmp_path / "home"
    env = env_for(home, tmp_path / "work", **common)
    stage1_dir, stage2_dir = home / RUN / "stage1" / "checkpoints", home / RUN / "stage2" / "checkpoints"
    rng = random.Random(5)
    logs, expected, stage1_files = [], [], None
    for _ in range(3):
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        out = _read_until(proc, "[stage2] ", timeout=300)
        # Kill once this run has saved at least one Stage-II step of its own, a random moment later
        # (before, during or after the next checkpoint write).
        start, t0 = newest_complete_step(stage2_dir), time.monotonic()
        while newest_complete_step(stage2_dir) == start and proc.poll() is None and time.monotonic() - t0 < 120:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=60)
        logs.append(out + rest)
        assert "[stage2] " in out, logs[-1][-3000:]
        if "[stage2] finished" in logs[-1]:
            break               # this kill came too late: Stage-II was already done
        expected.append(newest_complete_step(stage2_dir))
        files = {p.name: p.read_bytes() for p in stage1_dir.iterdir()}
        assert stage1_files in (None, files), "a restart wrote Stage-I checkpoints: it retrained Stage-I"
        stage1_files = files
    logs.append(run_to_end(cmd, env, REPO, timeout=300))

    assert len(expected) >= 2, "\n----\n".join(log[-2000:] for log in logs)
    s1_total = int(re.search(r"\[stage1\] finished (\d+) steps", logs[0]).group(1))
    for previous, log in zip(expected, logs[1:]):
        # Stage-I: restored as already complete, not one step trained again
        assert re.search(rf"\[stage1\] resumed from ckpt-{s1_total:09d}\.pt: step {s1_total} of {s1_total}\b.*"
                         r"already complete", log), log[:3000]
        assert f"[stage1] all {s1_total} steps done; nothing to train." in log
        assert "[stage1] finished" not in log and "[stage1] no checkpoint" not in log
        # Stage-II: continued at the step it had saved when it was killed
        assert f"[stage2] resumed from ckpt-{previous:09d}.pt: step {previous} of" in log, log[-3000:]
    assert all(expected) and expected == sorted(set(expected)), expected   # each run got further
    print("Stage-II steps saved at the kills:", expected)
    assert {p.name: p.read_bytes() for p in stage1_dir.iterdir()} == stage1_files
    assert "StackGAN notebook finished." in logs[-1]

    ref_out, _ = ref.communicate(timeout=300)
    assert ref.returncode == 0, ref_out[-3000:]
    compared = 0
    for loop in ("stage1", "stage2"):
        (name_ref, a), (name_got, b) = _final(ref_home, loop), _final(home, loop)
        assert name_ref == name_got and a["step"] == b["step"] == a["meta"]["total_steps"]
        compared += assert_same(a["state"], b["state"]) + assert_same(a["rng"], b["rng"])
    assert compared > 100   # weights, BN statistics, Adam moments of four networks, RNG states


def test_run_begun_in_bf16_finishes_in_fp16_after_a_kill_in_stage2(tmp_path):
    """Both mixed-precision paths of the notebook (bf16 autocast; fp16 with a GradScaler, as on a
    T4), and a switch between them at a disconnect: Stage-I done and Stage-II begun in bf16, the
    rest in fp16 from the checkpoints."""
    cmd = [sys.executable, str(NOTEBOOK)]
    common = dict(COLABKIT_SMOKE=1, COLABKIT_SAVE_EVERY_STEPS=1)
    home = tmp_path / "home"
    stage2_dir = home / RUN / "stage2" / "checkpoints"
    out = kill_after_first_checkpoint(cmd, env_for(home, tmp_path / "work", COLABKIT_PRECISION="bf16", **common),
                                      REPO, wait_for="[stage2] ", folder=stage2_dir)
    assert "precision bf16" in out and "[stage2] finished" not in out, out[-3000:]

    log = run_to_end(cmd, env_for(home, tmp_path / "work", COLABKIT_PRECISION="fp16", **common), REPO, timeout=300)
    assert "float16 autocast + GradScaler" in log and "precision fp16" in log
    assert "[stage1] finished" not in log and "nothing to train" in log   # Stage-I was not retrained
    m = re.search(r"\[stage2\] resumed from ckpt-(\d{9})\.pt", log)
    assert m and int(m.group(1)) > 0, log[-3000:]
    assert "StackGAN notebook finished." in log
    for loop, scaler_saved in (("stage1", False), ("stage2", True)):
        name, final = _final(home, loop)
        assert final["step"] == final["meta"]["total_steps"], (loop, name)
        assert bool(final["state"]["scaler"]) == scaler_saved   # Stage-I ended in bf16: no scaler state
