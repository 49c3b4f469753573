"""ResumableLoader: order and augmentation are functions of (seed, epoch, batch index) alone."""

import random

import numpy as np
import pytest
import torch

import colabkit as ck
import colabkit.loader as loader_mod


class Noisy(torch.utils.data.Dataset):
    """Each item mixes all three RNGs a dataset might use."""

    def __len__(self):
        return 13

    def __getitem__(self, i):
        return torch.tensor([float(i), torch.rand(()).item(), random.random(), float(np.random.rand())])


class Normals(Noisy):
    """Draws normal deviates too: each generator's cached second deviate is part of its state."""

    def __getitem__(self, i):
        return torch.tensor([float(i), torch.randn(()).item(), random.gauss(0, 1), float(np.random.randn()),
                             float(np.random.standard_normal(2)[1])])   # an odd count


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
    draws = e0[:, 1:].reshape(4, 3, 3)
    assert all(not torch.equal(draws[i], draws[j]) for i in range(4) for j in range(i))   # each batch its own


def test_worker_processes_give_the_same_batches():
    single = epoch(ck.ResumableLoader(Noisy(), batch_size=3, seed=1), 1)
    multi = epoch(ck.ResumableLoader(Noisy(), batch_size=3, seed=1, num_workers=2), 1)
    assert torch.equal(single, multi)


def draws():
    """What training code would draw next from each global generator, normal-deviate caches included."""
    return (torch.rand(3), torch.randn(3), random.random(), random.gauss(0, 1), np.random.rand(),
            np.random.randn(3), np.random.standard_normal())


def same(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b, strict=True))


def seed_all(odd_normals: bool):
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)   # with a PCG64 underneath, seed() keeps the cached deviate: clear it too
    np.random.set_state({**np.random.get_state(legacy=False), "has_gauss": 0, "gauss": 0.0})
    if odd_normals:   # leave a cached second deviate in NumPy's and Python's generators
        np.random.randn()
        random.gauss(0, 1)


@pytest.fixture(params=["fast", "slow", "pcg64"])
def numpy_path(request, monkeypatch):
    """The ways the main process's generators are kept: ctypes copies; get/set_state for NumPy and
    getstate/setstate for Python; NumPy's global RandomState on another bit generator."""
    if request.param == "slow":
        monkeypatch.setattr(loader_mod._NumpyGlobal, "_layout_is_known", lambda self: False)
        monkeypatch.setattr(loader_mod._PythonGlobal, "_layout_offset", lambda self: None)
    if request.param == "pcg64":
        original = np.random.mtrand._rand._bit_generator
        np.random.set_bit_generator(np.random.PCG64(0))
        yield request.param
        np.random.set_bit_generator(original)
    else:
        yield request.param


def test_the_fast_paths_are_taken_here():
    # else the ctypes copies are never exercised on this machine
    assert loader_mod._NumpyGlobal().fast and loader_mod._PythonGlobal().offset is not None


@pytest.mark.parametrize("odd_normals", [False, True])
def test_loading_leaves_the_training_rng_alone(numpy_path, odd_normals):
    seed_all(odd_normals)
    expected = draws()
    seed_all(odd_normals)
    batches = epoch(ck.ResumableLoader(Normals(), batch_size=3, seed=1), 0)
    assert same(expected, draws())
    torch.manual_seed(7)     # other main-process states, other caches: the same batches
    random.seed(7)
    np.random.seed(7)
    np.random.randn()
    assert torch.equal(batches, epoch(ck.ResumableLoader(Normals(), batch_size=3, seed=1), 0))


def test_workers_and_a_partial_last_batch_match_the_main_process():
    kw = dict(batch_size=3, seed=2, drop_last=False)
    single = list(ck.ResumableLoader(Normals(), **kw).epoch_batches(3))
    multi = list(ck.ResumableLoader(Normals(), num_workers=2, **kw).epoch_batches(3))
    assert [len(b) for b in single] == [3, 3, 3, 3, 1]
    assert all(torch.equal(a, b) for a, b in zip(single, multi, strict=True))
    tail = list(ck.ResumableLoader(Normals(), **kw).epoch_batches(3, start=4))
    assert len(tail) == 1 and torch.equal(tail[0], single[4])


def test_collate_fn_runs_under_the_batch_seed():
    def collate(samples):   # a random collate step (mixup-like) is replayed too
        return torch.stack(samples) * torch.rand(())

    a = epoch(ck.ResumableLoader(Noisy(), batch_size=3, seed=4, collate_fn=collate), 1)
    b = epoch(ck.ResumableLoader(Noisy(), batch_size=3, seed=4, collate_fn=collate), 1)
    assert torch.equal(a, b)


def test_too_small_data_set_is_a_clear_error():
    try:
        ck.ResumableLoader(Noisy(), batch_size=64)
    except ValueError as e:
        assert "fewer than one batch" in str(e)
    else:
        raise AssertionError("expected ValueError")


class TorchOnly(Noisy):
    """Draws from torch's generator alone, like notebook 00's ImageFolderGAN."""

    def __getitem__(self, i):
        return torch.tensor([float(i), torch.rand(()).item(), torch.randn(()).item()])


class DeclaresTorch(Noisy):
    draws_from = ("torch",)    # but draws from all three


def test_draws_from_seeds_only_those_and_leaves_the_rest_alone(numpy_path):
    full = epoch(ck.ResumableLoader(TorchOnly(), batch_size=3, seed=3), 1)
    seed_all(odd_normals=True)
    expected = draws()
    seed_all(odd_normals=True)
    lean = ck.ResumableLoader(TorchOnly(), batch_size=3, seed=3, draws_from=("torch",))
    assert lean.draws_from == ("torch",)
    assert torch.equal(full, epoch(lean, 1))    # torch is seeded as before: the same batches
    assert same(expected, draws())


@pytest.mark.parametrize("workers", [0, 2])
def test_a_draw_from_a_generator_left_out_raises(workers):
    loader = ck.ResumableLoader(DeclaresTorch(), batch_size=3, seed=0, num_workers=workers)
    assert loader.draws_from == ("torch",)     # the data set's attribute
    with pytest.raises(RuntimeError, match="NumPy's global generator.*Add 'numpy' to draws_from"):
        next(iter(loader.epoch_batches(0)))
    with pytest.raises(RuntimeError, match="Python's global generator.*Add 'python' to draws_from"):
        next(iter(ck.ResumableLoader(DeclaresTorch(), batch_size=3, num_workers=workers,
                                     draws_from=("torch", "numpy")).epoch_batches(0)))
    with pytest.raises(RuntimeError, match="torch's global generator.*Add 'torch' to draws_from"):
        next(iter(ck.ResumableLoader(DeclaresTorch(), batch_size=3, num_workers=workers,
                                     draws_from=("numpy", "python")).epoch_batches(0)))
    # all three, as the default: the loader's argument overrides the data set's attribute
    assert len(epoch(ck.ResumableLoader(DeclaresTorch(), batch_size=3, num_workers=workers,
                                        draws_from=("python", "numpy", "torch")), 0)) == 12


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match=r"\['jax'\] unknown"):
        ck.ResumableLoader(Noisy(), batch_size=3, draws_from=("torch", "jax"))
    with pytest.raises(ValueError, match=r"\[3\] unknown"):
        ck.ResumableLoader(Noisy(), batch_size=3, draws_from=3)
    assert ck.ResumableLoader(Noisy(), batch_size=3, draws_from="numpy").draws_from == ("numpy",)
    with pytest.raises(ValueError, match="persistent_workers=True needs num_workers > 0"):
        ck.ResumableLoader(Noisy(), batch_size=3, persistent_workers=True)


@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true but no accelerator")
def test_the_in_process_loop_gives_what_dataloader_gives():
    # pin_memory=True takes DataLoader even without workers (it pins, where there is an accelerator)
    kw = dict(batch_size=3, seed=8, drop_last=False)
    direct = ck.ResumableLoader(Normals(), **kw)
    via = ck.ResumableLoader(Normals(), pin_memory=True, **kw)
    assert direct._loader is None and via._loader is not None
    for e, start in [(0, 0), (5, 2)]:
        a, b = list(direct.epoch_batches(e, start)), list(via.epoch_batches(e, start))
        assert len(a) == len(b) == 5 - start and all(torch.equal(x, y) for x, y in zip(a, b))
    first, second = direct.epoch_batches(1), direct.epoch_batches(2)     # each keeps its own epoch
    assert torch.equal(next(first), next(direct.epoch_batches(1)))
    assert not torch.equal(next(second), next(direct.epoch_batches(1)))
