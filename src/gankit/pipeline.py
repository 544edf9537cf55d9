"""Many files through one generator: decoding and writing in worker threads, the generator on batches.

``gankit translate`` and ``gankit colorize`` of a folder run each file in three steps: ``prepare``
(decode, convert, fit to the generator's input size), the generator, and ``finish`` (bring the output
back to the file's size, encode, write). :func:`run_files` runs ``prepare`` and ``finish`` in a thread
pool (PIL and torch release the GIL while they decode, encode and compute) so they overlap the
generator, which runs in the calling thread, in input order, on batches of consecutive prepared
inputs of one shape. Like the stream storage of training data (:mod:`gankit.data.storage`), it works
ahead in a bounded window: at most ``in_flight`` files are held at once, decoded, in the generator or
being written, which is how the caller keeps the run inside its memory estimate.

Batches depend only on the order and shapes of the inputs, never on timing, and the generator gives
each image of a batch what it gives it alone (eval mode convolutions are per image; checked bit for
bit in ``tests/test_pipeline.py``), so the files are the ones the sequential loop writes
(``workers=0``: everything in the calling thread, one file at a time). A network in train mode
(batch statistics) must be given ``max_batch=1``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor
from tqdm import tqdm

from gankit.data.images import ImageReadError, SkipReport
from gankit.formatting import rate

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Prepared:
    """One file made ready for the generator."""

    x: Tensor
    """The generator's input, (1, C, H, W)."""
    context: Any
    """What ``finish`` needs besides the output (the full-size L, how the image was fitted, ...)."""
    batchable: bool = True
    """False: the generator runs on it alone (tiles, which it runs on one by one)."""


@dataclass
class _Item(Generic[T]):
    index: int
    item: T
    prepared: Prepared


class _Bar:
    """The progress bar (on a terminal only): files done of all, with the images/s since the start."""

    FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"

    def __init__(self, total: int, desc: str) -> None:
        self.start = time.monotonic()
        self.lock = threading.Lock()  # files are done in worker threads too
        quiet = None if total > 1 else True  # None: a bar only on a terminal
        self.bar = tqdm(total=total, desc=desc, unit="image", bar_format=self.FORMAT, disable=quiet, leave=False)

    def done(self, n: int = 1) -> None:
        """``n`` more files done (written or skipped)."""
        with self.lock:
            self.bar.update(n)
            seconds = max(time.monotonic() - self.start, 1e-9)
            self.bar.set_postfix_str(f"{rate(self.bar.n / seconds)} img/s")

    def close(self) -> None:
        self.bar.close()


def run_files(
    items: Sequence[T],
    prepare: Callable[[T], Prepared],
    generate: Callable[[Tensor, list[Any]], Tensor],
    finish: Callable[[T, Tensor, Any], R],
    *,
    report: SkipReport,
    desc: str,
    workers: int = 2,
    in_flight: int = 8,
    max_batch: int = 4,
) -> list[R | None]:
    """Run every item through ``prepare`` -> ``generate`` -> ``finish``; the results in input order.

    Args:
        prepare: item -> :class:`Prepared` (in a worker thread); an :class:`ImageReadError` skips the
            item (counted in ``report``, its result None); any other error stops the run.
        generate: (a batch of prepared inputs along dim 0, their contexts) -> the generator's outputs
            (in the calling thread, in input order).
        finish: (item, its output (1, ...), its context) -> result (in a worker thread).
        workers: threads for ``prepare`` and ``finish``; 0 runs everything in the calling thread,
            one item at a time (the sequential loop).
        in_flight: most items held at once between ``prepare`` and the end of ``finish`` (>= 1).
        max_batch: most inputs per ``generate`` call (1 for a network in train mode).
    """
    results: list[R | None] = [None] * len(items)
    bar = _Bar(len(items), desc)
    try:
        if workers == 0:
            for i, item in enumerate(items):
                try:
                    p = prepare(item)
                except ImageReadError as e:
                    report.add(e)
                else:
                    results[i] = finish(item, generate(p.x, [p.context]), p.context)
                bar.done()
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="gankit-files") as pool:
                _Window(items, prepare, generate, finish, pool, report, bar, in_flight, max_batch).run(results)
    finally:
        bar.close()
    return results


class _Window(Generic[T, R]):
    """The bounded window of :func:`run_files`: prepares ahead, batches, hands outputs to ``finish``.

    Every decision depends on counts only (files prepared, batched, being finished), never on which
    thread is done first, so batches are the same from one run to the next.
    """

    def __init__(
        self,
        items: Sequence[T],
        prepare: Callable[[T], Prepared],
        generate: Callable[[Tensor, list[Any]], Tensor],
        finish: Callable[[T, Tensor, Any], R],
        pool: ThreadPoolExecutor,
        report: SkipReport,
        bar: _Bar,
        in_flight: int,
        max_batch: int,
    ) -> None:
        self.items, self.prepare, self.generate, self.finish = items, prepare, generate, finish
        self.pool, self.report, self.bar = pool, report, bar
        self.in_flight, self.max_batch = max(1, in_flight), max(1, min(max_batch, in_flight))
        self.preparing: deque[tuple[int, Future[Prepared]]] = deque()
        self.batch: list[_Item[T]] = []
        self.finishing: deque[tuple[int, Future[R]]] = deque()
        self.next = 0

    def held(self) -> int:
        return len(self.preparing) + len(self.batch) + len(self.finishing)

    def run(self, results: list[R | None]) -> None:
        try:
            while True:
                while self.next < len(self.items) and self.held() < self.in_flight:
                    self.preparing.append((self.next, self.pool.submit(self.prepare, self.items[self.next])))
                    self.next += 1
                if self.preparing:
                    self._take_prepared()
                elif self.finishing and (self.next < len(self.items) or not self.batch):
                    # the window is full (or only writes are left): wait for the oldest write
                    i, fut = self.finishing.popleft()
                    results[i] = fut.result()
                elif self.batch:  # every file is prepared: run the last batch
                    self._run_batch()
                else:
                    return
        finally:  # stopped early (an error, Ctrl-C): drop what has not started
            for _, fut in (*self.preparing, *self.finishing):
                fut.cancel()

    def _take_prepared(self) -> None:
        i, fut = self.preparing.popleft()
        try:
            p = fut.result()
        except ImageReadError as e:
            self.report.add(e)
            self.bar.done()
            return
        if self.batch and not self._fits(p):
            self._run_batch()
        self.batch.append(_Item(i, self.items[i], p))
        if len(self.batch) >= self.max_batch or not p.batchable:
            self._run_batch()

    def _fits(self, p: Prepared) -> bool:
        """Whether ``p`` can join the current batch (one shape, one device, both batchable)."""
        first = self.batch[0].prepared
        same = first.x.shape[1:] == p.x.shape[1:] and first.x.dtype == p.x.dtype and first.x.device == p.x.device
        return same and first.batchable and p.batchable and len(self.batch) < self.max_batch

    def _run_batch(self) -> None:
        batch, self.batch = self.batch, []
        x = batch[0].prepared.x if len(batch) == 1 else torch.cat([b.prepared.x for b in batch])
        y = self.generate(x, [b.prepared.context for b in batch])
        for j, b in enumerate(batch):
            fut = self.pool.submit(self.finish, b.item, y[j : j + 1], b.prepared.context)
            fut.add_done_callback(lambda _: self.bar.done())
            self.finishing.append((b.index, fut))
