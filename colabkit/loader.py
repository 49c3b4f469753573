"""A data loader whose order and augmentation are a function of (seed, epoch, batch index).

So a run resumed at step s draws exactly the batches, crops and flips the uninterrupted run drew
at step s, however many worker processes load them. Each epoch's order is a permutation seeded
by (seed, epoch); each batch is produced with Python's, NumPy's and torch's global generators
seeded by (seed, epoch, batch index), so a dataset may use ordinary random transforms.

Seeding once per batch instead of once per sample, saving the main process's generators only
when the batch is loaded there (a worker process's generators belong to nobody else), and, with
no worker processes, making the batches in a plain loop instead of through DataLoader's per-batch
machinery keep the loader about as fast as a plain DataLoader (bench/bench_loader.py). A data set
that draws from fewer generators can say which (`draws_from`, e.g. ("torch",)): only those are
seeded, saved and restored, and a draw from any other raises, since it would not be replayed.
"""

from __future__ import annotations

import ctypes
import pickle
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


def _seed_numpy(seed: int) -> None:
    rs = np.random.mtrand._rand         # NumPy's global RandomState; its legacy seeding takes 32 bits
    if type(rs._bit_generator) is np.random.MT19937:
        rs.seed(seed >> 31)             # also clears its cached normal deviate
    else:                               # after np.random.set_bit_generator: seed that one, clear the cache
        rs.set_state({**type(rs._bit_generator)(seed >> 31).state, "has_gauss": 0, "gauss": 0.0})


def _seed_globals(seed: int) -> None:
    """Seed all three global generators from a batch's seed (what a worker does for each batch)."""
    random.seed(seed)
    _seed_numpy(seed)
    torch.default_generator.manual_seed(seed)


GENERATORS = ("torch", "numpy", "python")


class _TorchGlobal:
    """torch's global CPU generator. Only the CPU one: torch.manual_seed would also queue a lazy CUDA
    seeding, whose stack capture costs milliseconds."""

    name, label = "torch", "torch's global generator (torch.rand, torchvision's random transforms)"

    def seed(self, seed: int) -> None:
        torch.default_generator.manual_seed(seed)

    def save(self):
        return torch.default_generator.get_state()

    def restore(self, saved) -> None:
        torch.default_generator.set_state(saved)

    def snapshot(self):
        return torch.default_generator.get_state().numpy().tobytes()

    def changed(self, snap) -> bool:
        return self.snapshot() != snap


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
    name, label = "numpy", "NumPy's global generator (np.random.*)"

    def __init__(self):
        self.fast = self._layout_is_known()

    seed = staticmethod(_seed_numpy)

    def snapshot(self):
        """Enough of the state to tell a draw: the MT19937 words (a draw that only takes a cached
        normal deviate leaves them as they were, so it shows at the next draw), else all of it."""
        rs = np.random.mtrand._rand
        bg = rs._bit_generator
        if self.fast and type(bg) is np.random.MT19937:
            return ctypes.string_at(bg.ctypes.state_address, self.SIZE)
        return pickle.dumps(rs.get_state(legacy=False))

    def changed(self, snap) -> bool:
        return self.snapshot() != snap

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
    name, label = "python", "Python's global generator (the random module)"

    def __init__(self):
        self.offset = self._layout_offset()

    def seed(self, seed: int) -> None:
        random.seed(seed)

    def snapshot(self):
        inst = random._inst
        if self.offset is None or getattr(random.random, "__self__", None) is not inst:
            return random.getstate()
        return ctypes.string_at(id(inst) + self.offset, self.SIZE), inst.gauss_next

    def changed(self, snap) -> bool:
        return self.snapshot() != snap

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


def _draws_from(dataset, draws_from) -> tuple[str, ...]:
    """The generators to seed: the loader's `draws_from`, else the data set's, else all three."""
    if draws_from is None:
        draws_from = getattr(dataset, "draws_from", None)
    if draws_from is None:
        return GENERATORS
    try:
        names = (draws_from,) if isinstance(draws_from, str) else tuple(draws_from)
    except TypeError:
        names = (draws_from,)
    unknown = [n for n in names if n not in GENERATORS]
    if unknown:
        raise ValueError(f"draws_from={draws_from!r}: {unknown} unknown; name the global generators the data set "
                         f"and collate_fn draw from, among {GENERATORS}, or leave it out to seed all three.")
    return tuple(n for n in GENERATORS if n in names)


class _SeededBatches(Dataset):
    """dataset[(indices, seed)]: the collated batch of those samples drawn under that seed.

    The generators the data set draws from are seeded; in the main process they are saved before
    and restored after, so they are left exactly as they were; in a worker process they are the
    worker's own, so they are only seeded. The others are only watched: a draw from one of them
    would not be replayed after a resume (and in the main process it would disturb training's), so
    it raises.
    """

    def __init__(self, dataset, collate_fn, draws_from=GENERATORS):
        self.dataset = dataset
        self.collate_fn = collate_fn or default_collate
        self.numpy_global, self.python_global = _NumpyGlobal(), _PythonGlobal()
        every = (_TorchGlobal(), self.numpy_global, self.python_global)
        self.used = tuple(g for g in every if g.name in draws_from)
        self.unused = tuple(g for g in every if g.name not in draws_from)
        self.draws_from = tuple(g.name for g in self.used)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        indices, seed = key
        watched = [(g, g.snapshot()) for g in self.unused] if self.unused else ()
        if get_worker_info() is not None:
            for g in self.used:
                g.seed(seed)
            batch = self.collate_fn([self.dataset[i] for i in indices])
        else:
            saved = [g.save() for g in self.used]
            try:
                for g in self.used:
                    g.seed(seed)
                batch = self.collate_fn([self.dataset[i] for i in indices])
            finally:
                for g, state in zip(self.used, saved):
                    g.restore(state)
        for g, snap in watched:
            if g.changed(snap):
                raise RuntimeError(
                    f"The data set (or collate_fn) drew from {g.label}, which draws_from={self.draws_from} "
                    "leaves unseeded: those draws would differ after a resume. Add "
                    f"{g.name!r} to draws_from (the loader's argument or the data set's attribute), or "
                    "leave draws_from out to seed all three generators.")
        return batch


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
        return self.keys(self.epoch, self.start)

    def keys(self, epoch: int, start: int):
        order, bs = self.order(epoch), self.batch_size
        seeds = batch_seeds(self.seed, epoch, self.batches_per_epoch())
        step, first = bs * self.world, bs * self.rank
        for b in range(start, self.batches_per_epoch()):
            yield order[b * step + first:b * step + first + bs], self._rank_seed(seeds[b])


def _in_process(batches: _SeededBatches, keys) -> Iterator:
    for key in keys:
        yield batches[key]


class ResumableLoader:
    """Batches for (epoch, batch index) pairs; iterate an epoch with `epoch_batches(epoch, start)`.

    `draws_from`: the global generators the data set (and collate_fn) draws from, among "torch",
    "numpy" and "python"; by default the data set's own `draws_from` attribute if it has one, else
    all three. Only those are seeded for each batch (and saved and restored around it in the main
    process), which is cheaper; a draw from one left out raises instead of going unreplayed.

    `world`: the processes training together (default: what torchrun says, see colabkit.dist).
    `batch_size` is per process; each takes its own slice of every global batch of
    batch_size × processes samples, so a step still sees every sample of the epoch once.
    """

    def __init__(self, dataset, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = True, num_workers: int = 0, pin_memory: bool = False,
                 collate_fn=None, persistent_workers: bool | None = None, draws_from=None, world=None):
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
        self._batches = _SeededBatches(dataset, collate_fn, _draws_from(dataset, draws_from))
        if persistent_workers is None:
            persistent_workers = num_workers > 0
        self._loader = None
        if num_workers == 0 and not pin_memory:
            # No worker processes: epoch_batches makes each batch in a plain loop over the sampler's
            # keys, the same batches DataLoader would hand over, without its per-batch machinery.
            if persistent_workers:
                raise ValueError("persistent_workers=True needs num_workers > 0: set num_workers, "
                                 "or leave persistent_workers out.")
            return
        # batch_size=None: the sampler yields whole batches' keys and _SeededBatches collates them,
        # so one seeding (and, in the main process, one save and restore) serves a whole batch
        self._loader = DataLoader(self._batches, sampler=self._sampler, batch_size=None,
                                  num_workers=num_workers, pin_memory=pin_memory, collate_fn=_as_is,
                                  persistent_workers=persistent_workers,
                                  # its own generator: creating an epoch's iterator must not draw
                                  # from the global torch RNG that training uses
                                  generator=torch.Generator().manual_seed(seed))

    @property
    def draws_from(self) -> tuple[str, ...]:
        """The global generators seeded for each batch."""
        return self._batches.draws_from

    @property
    def steps_per_epoch(self) -> int:
        return self._sampler.batches_per_epoch()

    def __len__(self) -> int:
        return self.steps_per_epoch

    def epoch_batches(self, epoch: int, start: int = 0) -> Iterator:
        """The batches of `epoch` from batch `start` on, exactly as an uninterrupted run sees them."""
        if self._loader is None:
            return _in_process(self._batches, self._sampler.keys(epoch, start))
        self._sampler.epoch, self._sampler.start = epoch, start
        return iter(self._loader)
