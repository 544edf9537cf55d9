"""The stream of training batches, step after step, whatever the storage backend.

For ``memory`` and ``mmap`` storage a batch is gathered when it is needed (an index into RAM or into
the page cache costs microseconds). For ``stream`` storage the uint8 items of the coming steps are
decoded by DataLoader worker processes while the current step trains, and only the cheap part of
the batch (crop, flip, normalization, Lab) runs in the training process. Which items a step gets,
and its augmentation, come from :class:`~gankit.data.base.EpochSampler` and depend only on
(seed, step), so the batches are the same with any backend and after any resume.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .base import Batch, EpochSampler, TrainSet
from .errors import DataError
from .storage import StreamStore

PREFETCH_STEPS = 2
"""Steps each stream worker decodes ahead."""


class _StepItems(Dataset):
    """Item ``step`` is the uint8 pixels of that step's batch (decoded in a worker process)."""

    def __init__(self, store: StreamStore, sampler: EpochSampler) -> None:
        self.store, self.sampler = store, sampler

    def __len__(self) -> int:  # unused: the loader is driven by an explicit range of steps
        return 1 << 62

    def __getitem__(self, step: int) -> Tensor | str:
        try:
            return self.store.decode_items(self.sampler.indices(step))
        except DataError as e:  # sent back as text, raised in the training process as one line
            return str(e)


def _worker_init(_: int) -> None:
    # Ctrl-C reaches the whole process group. The training process finishes its step, saves a
    # checkpoint and closes the loader, which stops the workers; until then they keep serving
    # (torch's worker loop would otherwise end quietly on the KeyboardInterrupt).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def batches(
    ds: TrainSet, sampler: EpochSampler, *, start: int, stop: int, device: torch.device, augment: bool
) -> Iterator[Batch]:
    """The batches of steps ``start`` .. ``stop - 1`` on ``device``; close the generator to stop workers.

    ``augment`` gives each step its augmentation generator (random crops and flips of paired data).
    """
    store = ds.store
    if not isinstance(store, StreamStore):  # memory and mmap: a batch is an index away
        for step in range(start, stop):
            gen = sampler.augment_generator(step) if augment else None
            yield ds.batch(sampler.indices(step), device=device, generator=gen)
        return
    loader = DataLoader(
        _StepItems(store, sampler),
        batch_size=None,
        sampler=range(start, stop),
        num_workers=store.workers,
        prefetch_factor=PREFETCH_STEPS,
        pin_memory=torch.device(device).type == "cuda",
        worker_init_fn=_worker_init,
        generator=torch.Generator(),  # the workers' seed must not be drawn from the global RNG (G's noise)
    )
    it = iter(loader)
    try:
        for step in range(start, stop):
            pixels = next(it)
            if isinstance(pixels, str):
                raise DataError(pixels)
            gen = sampler.augment_generator(step) if augment else None
            yield ds.from_pixels(pixels, sampler.indices(step), device=device, generator=gen)
    finally:
        del it  # shuts the worker processes down
