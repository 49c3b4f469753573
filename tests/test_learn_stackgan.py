"""StackGAN learns what a caption says: the short version of bench/learn_stackgan.py.

The notebook's Stage-I (its lib cells, at the bench's reduced sizes: 16×16, batch 32, its lr, Adam
betas, λ_KL and training step) trains on real digits drawn in the colour and stroke width their
caption names, the captions embedded with the notebook's MiniLM fallback; beside it, the same run
with the captions shuffled against the images. Samples for captions in a phrasing never trained
on, for all 80 digit-colour-width combinations (10 of them never trained on), are read back by
the bench's colour reader. Only the colour is asserted: within the bench's budget the generator
does not learn the digit a caption names (it takes the digit from z; see the bench's table), so
a digit assertion could only pass by chance.
"""

import sys

import torch
from resume_util import REPO

sys.path.insert(0, str(REPO / "bench"))
import learn_stackgan as lsg  # noqa: E402

STEPS = 750
# From `python bench/learn_stackgan.py` (seeds 0, 1, 2; its rows at Stage-I step 750, with this
# test's code path and settings): colour read back for the 10 unseen combinations, working runs
# 81 %, 76 %, 81 %, controls 27 %, 26 %, 26 % (chance is 25 %); for the 70 seen combinations 80 %,
# 76 %, 78 % against 24 %, 23 %, 25 %. The narrowest gap between any working run and any control is
# 49 points (unseen) and 51 (seen); the test asks for half of that.
MARGIN = 0.25


def test_colour_reader_reads_real_coloured_digits_and_is_not_fooled_by_the_wrong_colour():
    test, test_y = lsg.grey_digits("test")
    g = torch.Generator().manual_seed(0)
    for size, width in ((16, 0), (16, 1), (32, 1)):
        colours = torch.randint(0, len(lsg.COLOURS), (len(test_y),), generator=g)
        images = lsg.colourise(test[(size, width)], colours)
        assert images.shape == (len(test_y), 3, size, size)
        assert (lsg.read_colour(images) == colours.numpy()).mean() > 0.99
        shifted = lsg.colourise(test[(size, width)], (colours + 1) % len(lsg.COLOURS))
        assert (lsg.read_colour(shifted) == colours.numpy()).mean() < 0.01
    assert (lsg.read_colour(torch.full((2, 3, 16, 16), -1.0)) == -1).all()     # blank: no colour


def test_captions_hold_out_a_phrasing_and_one_combination_per_digit():
    caps = lsg.all_captions()
    assert len(caps) == len(set(caps)) == 80 * 5
    assert lsg.caption(7, 3, 1, 4) == "a handwritten seven, yellow and thick"
    assert sorted(d for d, _, _ in lsg.UNSEEN) == list(range(10))
    assert {c for _, c, _ in lsg.UNSEEN} == set(range(4)) and {w for _, _, w in lsg.UNSEEN} == {0, 1}


def test_stage1_draws_the_captions_colour_and_the_shuffled_control_does_not():
    emb = lsg.caption_embeddings()
    cfg = lsg.make_config(steps1=STEPS, steps2=0, eval_every=STEPS, seed=0)
    working, control = lsg.run_all([cfg, dict(cfg, control=True)], emb, None, jobs=2)
    w, c = working["rows"][-1], control["rows"][-1]
    assert w["step"] == c["step"] == STEPS and w["stage"] == c["stage"] == 1
    print(f"unseen colour: working {w['unseen']['colour']:.0%}, control {c['unseen']['colour']:.0%}; "
          f"seen: {w['seen']['colour']:.0%} vs {c['seen']['colour']:.0%}")
    assert w["unseen"]["colour"] - c["unseen"]["colour"] > MARGIN
    assert w["seen"]["colour"] - c["seen"]["colour"] > MARGIN
