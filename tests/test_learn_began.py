"""BEGAN learns: a short version of bench/learn_began.py. The notebook's own definitions (at the
bench's small-model settings: 16×16, n = 8, h = z = 8, Glorot init, β1 = 0.9, γ = 0.7, D's lr 5e-5,
G_LR_SCALE = 4),
trained on scikit-learn's real digits, beside the same run with k_t frozen at 0 (the control); the
notebook's k_t watch must warn on the control and stay silent on the working run."""

import sys

import pytest
import torch
from resume_util import REPO

pytest.importorskip("sklearn")
sys.path.insert(0, str(REPO / "bench"))

import learn_began  # noqa: E402
from digits import Judge  # noqa: E402

# Exactly the benchmark's configuration "CAL" (bench/learn_began.py --seeds 0 1 2 --steps 600
# --eval-every 300 --eval-n 300 --window 200 --warn-after 400 --gamma 0.7 --g-lr-scale 4, the other
# settings its defaults); this test runs its seed 0. γ and G's lr are pinned to the small-model
# setting the margins below were measured with (the benchmark's own default is now γ 0.9, G 16×).
SETTINGS = dict(steps=600, eval_every=600, eval_n=300, window=200, warn_after=400, gamma=0.7, g_lr_scale=4.0,
                seed=0)


@pytest.fixture(scope="module")
def runs():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny networks: a second thread only adds overhead on shared cores
    try:
        judge = Judge(16)
        cfg = learn_began.make_config(**SETTINGS)
        return {c: learn_began.train_began(dict(cfg, control=c), judge, log=lambda *_: None) for c in (False, True)}
    finally:
        torch.set_num_threads(threads)


def test_working_run_beats_the_k_frozen_control(runs):
    work, ctrl = runs[False]["rows"][-1], runs[True]["rows"][-1]
    # Where the margins come from: the benchmark at this length, seeds 0, 1, 2 (step 600):
    #   diversity  working 0.036 / 0.049 / 0.025, control 0.009 / 0.008 / 0.012:
    #              working / control = 4.0, 6.1, 2.1 per seed → we demand 1.5
    #   k_t        working 0.053 / 0.077 / 0.074 (the controller is active), control 0 by construction
    #              → we demand 0.025, half the lowest seed's
    # At 600 steps the working runs still cover only 1–2 digits (the controls 1), and both can be
    # 88–100 % confident, so the classifier's figures do not separate them yet; they do only in the
    # longer benchmark (3,000 steps: 8 classes against 2).
    assert work["diversity"] >= 1.5 * ctrl["diversity"], (work, ctrl)
    assert work["k_t"] > 0.025 and ctrl["k_t"] == 0.0, (work, ctrl)


def test_k_watch_warns_only_when_k_sits_at_zero(runs):
    assert runs[True]["warnings"], "k_t frozen at 0 must trigger the notebook's warning"
    step, msg = runs[True]["warnings"][0]
    assert step == SETTINGS["warn_after"] and "k_t has been 0" in msg and "G_LR_SCALE" in msg
    assert len(runs[True]["warnings"]) == 1                 # once per stretch, not every window
    assert runs[False]["warnings"] == []
