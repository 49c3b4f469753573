"""The CycleGAN notebook learns an unpaired translation: a short version of bench/learn_cyclegan.py.

The notebook's own definitions (lib cells) at ngf = ndf = 8, 2 residual blocks, 32×32, batch 4,
train for 120 steps on two unpaired digit domains (X: grey digits; Y: the same digits dilated,
moved 4 pixels up-right, blue on cream), once as the notebook sets them (λ_cyc = 10, identity
0.5 λ) and once with λ_cyc = 0 (which also removes the identity term), from the same weights and
batches. Scored on 200 held-out test pairs, which training never sees as pairs.

Where the margins come from: `python bench/learn_cyclegan.py --seeds 0 1 2 3 4 --steps 120
--every 20 --eval-n 200` (this very setting; seed 0 is the one tested here). At step 120:

    figure                                    working − control, per seed 0..4   smallest
    class G(x): judge reads x's label          0.60  0.52  0.71  0.56  0.61         0.52
    class F(G(x)): the round trip              0.40  0.50  0.52  0.34  0.38         0.34
    L1 G(x) to the true y, control / working   2.76  2.98  2.70  2.74  3.08         2.70
    working L1 G(x)                            0.054 0.060 0.060 0.062 0.065  (per-pixel oracle 0.139)

The asserted margins are about half the smallest gap seen (0.3, 0.15, a ratio of 1.8), and the
working run must beat the best per-pixel colour map, which cannot move ink (seen: 0.065 at worst
against 0.139). Before step ~100 the class gap is not yet stable across seeds (at step 80 it was
0.04 to 0.54), which is why the test runs 120 steps and not fewer.
"""

import sys
import time

import pytest
import torch
from resume_util import REPO

sys.path.insert(0, str(REPO / "bench"))
import digits  # noqa: E402
import learn_cyclegan as lc  # noqa: E402

STEPS, BATCH, EVAL_N, SEED = 120, 4, 200, 0


@pytest.fixture(scope="module")
def setting():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # on a shared 2-core machine more threads made the step far slower
    try:
        yield lc.load_notebook(), lc.Domains(), digits.Judge(lc.JUDGE_SIZE), lc.StyleJudge(lc.JUDGE_SIZE)
    finally:
        torch.set_num_threads(threads)


def _run(setting, lambda_cyc):
    nb, dom, judge, style_judge = setting
    _, history, _ = lc.train(nb, dom, judge, style_judge, seed=SEED, steps=STEPS, every=STEPS,
                             lambda_cyc=lambda_cyc, batch=BATCH, eval_n=EVAL_N, log=lambda s: None)
    return history[-1][1]


def test_cycle_consistency_learns_the_translation_and_the_control_does_not(setting):
    t0 = time.perf_counter()
    nb, dom, judge, style_judge = setting
    base = lc.baselines(dom, judge, style_judge)
    work, ctrl = _run(setting, 10.0), _run(setting, 0.0)
    report = f"working {work}\ncontrol {ctrl}\n({time.perf_counter() - t0:.0f} s)"
    print(report)
    assert style_judge.accuracy > 0.95 and judge.accuracy > 0.95, report
    # both runs learn the Y style (the adversarial part works in the control too: a fair control)
    assert max(work["L1 G(x)"], ctrl["L1 G(x)"]) < 0.5 * base["identity"]["L1 G(x)"], report
    # the content survives only with the cycle loss
    assert work["class G(x)"] - ctrl["class G(x)"] >= 0.3, report
    assert work["class FG(x)"] - ctrl["class FG(x)"] >= 0.15, report
    assert ctrl["L1 G(x)"] >= 1.8 * work["L1 G(x)"], report
    # and the working run learned the spatial part, which no per-pixel map can do
    assert work["L1 G(x)"] < base["per-pixel oracle"]["L1 G(x)"], report
