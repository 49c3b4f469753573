"""A data loader whose order and augmentation are a function of (seed, epoch, batch index).

So a run resumed at step s draws exactly the batches, crops and flips the uninterrupted run drew
at step s, however many worker processes load them. Each epoch's order is a permutation seeded
by (seed, epoch); each batch is produced with Python's, NumPy's and torch's global generators
seeded by (seed, epoch, batch index), so a dataset may use ordinary random transforms.

Seeding once per batch instead of once per sample, and saving the main process's generators only
when the batch is loaded there (a worker process's generators belong to nobody else), keeps the
loader about as fast as a plain DataLoader (bench/bench_loader.py).
"""

from __future__ import annotations

import ctypes
import random
import struct
import sys
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info
from torch.utils.data._utils.collate import default_collate

from .dist import current

_MASK64 = (1 << 64) - 1
_GOLDEN64 = 0x9E3779B97F4A7C15


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (SeedSequence hashes them well)."""
    return int(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts] + [len(parts)])
               .generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def _splitmix64(x: int) -> int:
    """SplitMix64's output function: a cheap bijective mix of 64 bits, good enough to key generators."""
    x = (x + _GOLDEN64) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def batch_seeds(seed: int, epoch: int, n_batches: int) -> list[int]:
    """The 63-bit seed of every batch of an epoch: the SplitMix64 stream from derive_seed(seed, epoch, -1)."""
    key = derive_seed(seed, epoch, -1)
    return [_splitmix64((key + b * _GOLDEN64) & _MASK64) >> 1 for b in range(n_batches)]


def _seed_globals(seed: int) -> None:
    random.seed(seed)
    rs = np.random.mtrand._rand         # NumPy's global RandomState; its legacy seeding takes 32 bits
    if type(rs._bit_generator) is np.random.MT19937:
        rs.seed(seed >> 31)             # also clears its cached normal deviate
    else:                               # after np.random.set_bit_generator: seed that one, clear the cache
        rs.set_state({**type(rs._bit_generator)(seed >> 31).state, "has_gauss": 0, "gauss": 0.0})
    # The CPU generator only: torch.manual_seed would also queue a lazy CUDA seeding, whose stack
    # capture costs milliseconds.
    torch.default_generator.manual_seed(seed)


class _NumpyGlobal:
    """Save and restore np.random's global RandomState in a few µs (get_state/set_state take ~100 µs each).

    For an MT19937, the state is the bit generator's C struct (624 words and a position), copied
    with ctypes, plus RandomState's cached second normal deviate. That cache cannot be read without
    get_state, so save() probes for it: standard_normal() returns the cached value without touching
    the MT19937 words if there is one, and draws new words if not. Whether the words changed tells
    which. Restoring a cached value (rare: the main process must have drawn an odd number of legacy
    normals) goes through set_state. Any other bit generator, or a layout this check does not
    recognise, takes get_state/set_state.
    """

    SIZE = 624 * 4 + 4                  # struct { uint32_t key[624]; int pos; }

    def __init__(self):
        self.fast = self._layout_is_known()

    def _layout_is_known(self) -> bool:
        try:
            bg = np.random.MT19937(20240601)
            bg.random_raw(7)
            st = bg.state["state"]
            expected = np.asarray(st["key"], dtype=np.uint32).tobytes() + np.int32(st["pos"]).tobytes()
            return ctypes.string_at(bg.ctypes.state_address, self.SIZE) == expected
        except Exception:   # noqa: BLE001  (no ctypes interface, another layout: use the slow path)
            return False

    def save(self):
        rs = np.random.mtrand._rand
        bg = rs._bit_generator
        if not self.fast or type(bg) is not np.random.MT19937:
            return None, rs.get_state(legacy=False)
        addr = bg.ctypes.state_address
        words = ctypes.string_at(addr, self.SIZE)
        value = rs.standard_normal()
        cached = value if ctypes.string_at(addr, self.SIZE) == words else None
        return (addr, words, cached), None

    def restore(self, saved) -> None:
        fast, slow = saved
        rs = np.random.mtrand._rand
        if fast is None:
            rs.set_state(slow)
            return
        addr, words, cached = fast
        if cached is None:
            rs.seed(0)                  # clears the normal-deviate cache; the words are overwritten next
            ctypes.memmove(addr, words, self.SIZE)
        else:
            key = np.frombuffer(words, dtype=np.uint32, count=624)
            pos = int.from_bytes(words[-4:], sys.byteorder, signed=True)
            rs.set_state(("MT19937", key, pos, 1, cached))


class _PythonGlobal:
    """Save and restore the `random` module's generator in about a µs (getstate builds 625 ints).

    On CPython its state is the C struct after the object header (an int index, then 624 words),
    which ctypes copies, plus the instance's gauss_next. The layout is checked against getstate()
    once, on a generator of its own; elsewhere (or if the check fails) getstate/setstate are used.
    """

    SIZE = 4 + 624 * 4

    def __init__(self):
        self.offset = self._layout_offset()

    def _layout_offset(self) -> int | None:
        try:
            import _random
            off = object.__basicsize__                  # PyObject_HEAD
            if sys.implementation.name != "cpython" or _random.Random.__basicsize__ < off + self.SIZE:
                return None
            r = random.Random(20240601)
            r.random()
            words = struct.pack("=i", r.getstate()[1][-1]) + struct.pack("=624I", *r.getstate()[1][:-1])
            if ctypes.string_at(id(r) + off, self.SIZE) != words:
                return None
            other = random.Random(7)
            ctypes.memmove(id(other) + off, words, self.SIZE)
            return off if other.getstate() == r.getstate() else None
        except Exception:   # noqa: BLE001  (another implementation or layout: use the slow path)
            return None

    def save(self):
        inst = random._inst
        if self.offset is None or getattr(random.random, "__self__", None) is not inst:
            return None, random.getstate()
        return ctypes.string_at(id(inst) + self.offset, self.SIZE), inst.gauss_next

    def restore(self, saved) -> None:
        words, other = saved
        if words is None:
            random.setstate(other)
            return
        inst = random._inst
        ctypes.memmove(id(inst) + self.offset, words, self.SIZE)
        inst.gauss_next = other


class _SeededBatches(Dataset):
    """dataset[(indices, seed)]: the collated batch of those samples drawn under that seed.

    In the main process the global generators are left exactly as they were; in a worker process
    they are the worker's own, so they are only seeded.
    """

    def __init__(self, dataset, collate_fn):
        self.dataset = dataset
        self.collate_fn = collate_fn or default_collate
        self.numpy_global, self.python_global = _NumpyGlobal(), _PythonGlobal()

    def __len__(self):
        return len(self.dataset)

    def _load(self, indices, seed):
        _seed_globals(seed)
        return self.collate_fn([self.dataset[i] for i in indices])

    def __getitem__(self, key):
        indices, seed = key
        if get_worker_info() is not None:
            return self._load(indices, seed)
        py_state, torch_state = self.python_global.save(), torch.default_generator.get_state()
        np_state = self.numpy_global.save()
        try:
            return self._load(indices, seed)
        finally:
            self.python_global.restore(py_state)
            torch.default_generator.set_state(torch_state)
            self.numpy_global.restore(np_state)


def _as_is(batch):
    return batch


class _EpochBatches(Sampler):
    """(indices, seed) keys of one epoch's batches, from a given batch onwards (mutable between epochs).

    With several processes (rank r of `world`), batch b of the epoch is the slice r of the b-th
    global batch of world × batch_size samples of the epoch's order, seeded from (batch seed, r).
    """

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool, drop_last: bool,
                 rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.shuffle, self.drop_last = shuffle, drop_last
        self.rank, self.world = rank, world
        self.epoch, self.start = 0, 0

    def order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        g = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
        return torch.randperm(self.n, generator=g).tolist()

    def batches_per_epoch(self) -> int:
        per_step = self.batch_size * self.world
        return self.n // per_step if self.drop_last else -(-self.n // per_step)

    def _rank_seed(self, seed: int) -> int:
        if self.world == 1:
            return seed
        return _splitmix64((seed + (self.rank + 1) * _GOLDEN64) & _MASK64) >> 1

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start

    def __iter__(self):
        order, bs = self.order(self.epoch), self.batch_size
        seeds = batch_seeds(self.seed, self.epoch, self.batches_per_epoch())
        step, first = bs * self.world, bs * self.rank
        for b in range(self.start, self.batches_per_epoch()):
            yield order[b * step + first:b * step + first + bs], self._rank_seed(seeds[b])


class ResumableLoader:
    """Batches for (epoch, batch index) pairs; iterate an epoch with `epoch_batches(epoch, start)`."""

    def __init__(self, dataset, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = True, num_workers: int = 0, pin_memory: bool = False,
                 collate_fn=None, persistent_workers: bool | None = None, world=None):
        world = world or current()   # under torchrun: this process's slice of every batch
        if world.distributed and not drop_last:
            raise ValueError("With several processes every process needs a full batch at every step: "
                             "use drop_last=True (the default).")
        if len(dataset) < batch_size * world.size and drop_last:
            raise ValueError(f"The data set has {len(dataset)} samples, fewer than one batch of {batch_size}"
                             + (f" for each of {world.size} processes" if world.distributed else "")
                             + ": check the data folder, or lower the batch size.")
        self.dataset = dataset
        self.batch_size = batch_size
        self.world = world
        self._sampler = _EpochBatches(len(dataset), batch_size, seed, shuffle, drop_last, world.rank, world.size)
        if persistent_workers is None:
            persistent_workers = num_workers > 0
        # batch_size=None: the sampler yields whole batches' keys and _SeededBatches collates them,
        # so one seeding (and, in the main process, one save and restore) serves a whole batch
        self._loader = DataLoader(_SeededBatches(dataset, collate_fn), sampler=self._sampler, batch_size=None,
                                  num_workers=num_workers, pin_memory=pin_memory, collate_fn=_as_is,
                                  persistent_workers=persistent_workers,
                                  # its own generator: creating an epoch's iterator must not draw
                                  # from the global torch RNG that training uses
                                  generator=torch.Generator().manual_seed(seed))

    @property
    def steps_per_epoch(self) -> int:
        return self._sampler.batches_per_epoch()

    def __len__(self) -> int:
        return self.steps_per_epoch

    def epoch_batches(self, epoch: int, start: int = 0) -> Iterator:
        """The batches of `epoch` from batch `start` on, exactly as an uninterrupted run sees them."""
        self._sampler.epoch, self._sampler.start = epoch, start
        return iter(self._loader)
