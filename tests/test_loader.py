"""ResumableLoader: order and augmentation are functions of (seed, epoch, index) alone."""

import random

import numpy as np
import torch

import colabkit as ck


class Noisy(torch.utils.data.Dataset):
    """Each item mixes all three RNGs a dataset might use."""

    def __len__(self):
        return 13

    def __getitem__(self, i):
        return torch.tensor([float(i), torch.rand(()).item(), random.random(), float(np.random.rand())])


def epoch(loader, e, start=0):
    return torch.cat(list(loader.epoch_batches(e, start)))


def test_mid_epoch_start_continues_exactly():
    loader = ck.ResumableLoader(Noisy(), batch_size=3, seed=5)
    assert loader.steps_per_epoch == 4            # 13 // 3, last partial batch dropped
    full = epoch(loader, 2)
    tail = epoch(ck.ResumableLoader(Noisy(), batch_size=3, seed=5), 2, start=3)
    assert torch.equal(full[9:], tail)


def test_epochs_and_seeds_differ_but_repeat():
    a = ck.ResumableLoader(Noisy(), batch_size=3, seed=5)
    e0, e1 = epoch(a, 0), epoch(a, 1)
    assert not torch.equal(e0[:, 0], e1[:, 0])    # a new order each epoch
    assert torch.equal(e0, epoch(ck.ResumableLoader(Noisy(), batch_size=3, seed=5), 0))
    assert not torch.equal(e0, epoch(ck.ResumableLoader(Noisy(), batch_size=3, seed=6), 0))
    assert sorted(e0[:, 0].tolist()) == sorted(set(e0[:, 0].tolist()))   # no repeats within an epoch


def test_worker_processes_give_the_same_batches():
    single = epoch(ck.ResumableLoader(Noisy(), batch_size=3, seed=1), 1)
    multi = epoch(ck.ResumableLoader(Noisy(), batch_size=3, seed=1, num_workers=2), 1)
    assert torch.equal(single, multi)


def test_loading_leaves_the_training_rng_alone():
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    epoch(ck.ResumableLoader(Noisy(), batch_size=3, seed=1), 0)
    got = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(expected[0], got[0]) and expected[1:] == got[1:]


def test_too_small_data_set_is_a_clear_error():
    try:
        ck.ResumableLoader(Noisy(), batch_size=64)
    except ValueError as e:
        assert "fewer than one batch" in str(e)
    else:
        raise AssertionError("expected ValueError")
