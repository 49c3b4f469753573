"""StackGAN learns what a caption says: the short version of bench/learn_stackgan.py.

The notebook's Stage-I (its lib cells, at the bench's reduced sizes: 16×16, batch 32, its lr, Adam
betas, λ_KL and training step) trains on real digits drawn in the colour and stroke width their
caption names, the captions embedded with the notebook's MiniLM fallback and standardised as the
notebook does it (`embedding_stats`); beside it, the same run with the captions shuffled against
the images. Samples for captions in a phrasing never trained on, for all 80 digit-colour-width
combinations (10 of them never trained on), are read back by the bench's colour reader and digit
judge. Asserted: the colour (unseen and seen combinations) and the digit of the seen combinations.
The digit of the 10 unseen combinations is learned too, but its gap over the control is narrow in
the bench (5 points at the worst seed pair), so it is printed, not asserted.
"""

import sys

import torch
from resume_util import REPO

sys.path.insert(0, str(REPO / "bench"))
import learn_stackgan as lsg  # noqa: E402

STEPS = 1500
# From `python bench/learn_stackgan.py --jobs 1` (seeds 0, 1, 2; its rows at Stage-I step 1500, with
# this test's code path and settings): colour read back for the 10 unseen combinations, working runs
# 100 %, 100 %, 100 %, controls 37 %, 22 %, 27 % (chance is 25 %); for the 70 seen combinations
# 100 %, 100 %, 100 % against 38 %, 18 %, 20 %. Digit read back for the seen combinations, working
# 40 %, 37 %, 37 %, controls 10 %, 11 %, 9 % (chance is 10 %). The narrowest gap between any working
# run and any control is 63 points (unseen colour), 62 (seen colour) and 26 (seen digit); the test
# asks for half of that.
COLOUR_MARGIN = 0.31
DIGIT_MARGIN = 0.13


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


def test_stage1_draws_the_captions_colour_and_digit_and_the_shuffled_control_does_not():
    emb = lsg.caption_embeddings()
    judge = lsg.Judge(16)
    cfg = lsg.make_config(steps1=STEPS, steps2=0, eval_every=STEPS, seed=0)
    working, control = lsg.run_all([cfg, dict(cfg, control=True)], emb, judge, jobs=2)
    w, c = working["rows"][-1], control["rows"][-1]
    assert w["step"] == c["step"] == STEPS and w["stage"] == c["stage"] == 1
    print(f"colour: unseen working {w['unseen']['colour']:.0%}, control {c['unseen']['colour']:.0%}; "
          f"seen {w['seen']['colour']:.0%} vs {c['seen']['colour']:.0%}. Digit: seen {w['seen']['digit']:.0%} vs "
          f"{c['seen']['digit']:.0%}; unseen (not asserted) {w['unseen']['digit']:.0%} vs {c['unseen']['digit']:.0%}")
    assert w["unseen"]["colour"] - c["unseen"]["colour"] > COLOUR_MARGIN
    assert w["seen"]["colour"] - c["seen"]["colour"] > COLOUR_MARGIN
    assert w["seen"]["digit"] - c["seen"]["digit"] > DIGIT_MARGIN


def test_embeddings_are_standardised_with_the_training_captions_statistics():
    emb = lsg.caption_embeddings()
    x = lsg.prepare_embeddings(emb, lsg.make_config())
    train = x[lsg.training_captions_mask()]
    assert torch.allclose(train.mean(0), torch.zeros(lsg.EMB_DIM), atol=1e-4)
    live = emb[lsg.training_captions_mask()].std(0) > 1e-6          # MiniLM has coordinates that never vary
    assert 0 < (~live).sum() < 10 and torch.allclose(train.std(0, unbiased=False)[live], torch.ones(int(live.sum())),
                                                      atol=1e-3)
    assert train[:, ~live].abs().max() < 1e-2                       # floored, not blown up
    assert torch.equal(lsg.prepare_embeddings(emb, lsg.make_config(emb_norm="none")), emb)
