"""A data loader whose order and augmentation are a function of (seed, epoch, index).

So a run resumed at step s draws exactly the batches, crops and flips the uninterrupted run drew
at step s, however many worker processes load them. Each epoch's order is a permutation seeded
by (seed, epoch); each sample is produced with Python, NumPy and torch generators seeded by
(seed, epoch, position), so a dataset may use ordinary random transforms.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (SeedSequence hashes them well)."""
    return int(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts] + [len(parts)])
               .generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


class _Seeded(Dataset):
    """dataset[(index, seed)]: dataset[index] drawn under that seed; global RNG left as it was."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        index, seed = key
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            random.seed(seed)
            np.random.seed(seed & 0xFFFFFFFF)
            # The CPU generator only: torch.manual_seed would also queue a lazy CUDA seeding, whose
            # stack capture costs milliseconds per sample.
            torch.default_generator.manual_seed(seed)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


class _EpochBatches(Sampler):
    """Batches of (index, seed) keys for one epoch, from a given batch onwards (mutable between epochs)."""

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool, drop_last: bool):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.shuffle, self.drop_last = shuffle, drop_last
        self.epoch, self.start = 0, 0

    def order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        g = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
        return torch.randperm(self.n, generator=g).tolist()

    def batches_per_epoch(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start

    def __iter__(self):
        order = self.order(self.epoch)
        for b in range(self.start, self.batches_per_epoch()):
            positions = range(b * self.batch_size, min((b + 1) * self.batch_size, self.n))
            yield [(order[p], derive_seed(self.seed, self.epoch, p)) for p in positions]


class ResumableLoader:
    """Batches for (epoch, batch index) pairs; iterate an epoch with `epoch_batches(epoch, start)`."""

    def __init__(self, dataset, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = True, num_workers: int = 0, pin_memory: bool = False,
                 collate_fn=None, persistent_workers: bool | None = None):
        if len(dataset) < batch_size and drop_last:
            raise ValueError(f"The data set has {len(dataset)} samples, fewer than one batch of {batch_size}: "
                             "check the data folder, or lower the batch size.")
        self.dataset = dataset
        self.batch_size = batch_size
        self._sampler = _EpochBatches(len(dataset), batch_size, seed, shuffle, drop_last)
        if persistent_workers is None:
            persistent_workers = num_workers > 0
        self._loader = DataLoader(_Seeded(dataset), batch_sampler=self._sampler, num_workers=num_workers,
                                  pin_memory=pin_memory, collate_fn=collate_fn,
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
