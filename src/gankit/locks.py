"""Writing where another process may be writing too: exclusive file locks and atomic file replacement.

Two processes that write into one folder (two ``colorize`` runs into one ``--out``, two builds of
one data cache, an import into a folder another import is filling) must never mix their files. A
lock file beside or inside what they write, held with :func:`fcntl.flock`, makes the second one
either wait for the first (:func:`lock_file`, ``wait=True``: caches, where the second process then
uses what the first built) or refuse at once with one line (``wait=False``, :func:`output_lock`:
output folders, where waiting would only overwrite the first run's files). The kernel drops an
flock when its process dies, however it dies, so a killed run never leaves a folder locked.

A finished file appears all at once (:func:`atomic_path`: written under a temporary name, then
:func:`os.replace`\\ d; :func:`atomic_save` for ``torch.save``), so a run interrupted mid-write leaves
the previous file or none, never a torn one that a rerun would take for a finished output.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any

OUTPUT_LOCK = ".gankit.lock"
"""The lock file :func:`output_lock` keeps inside a folder while a command writes into it (removed after)."""


class Busy(ValueError):
    """Another process holds the lock; the message names the folder or file, the holder and what to do."""


def _holder(path: Path) -> str:
    """What the holder wrote into the lock file ("pid 123, gankit colorize"), or "" when unknown."""
    try:
        text = path.read_text().strip()
    except OSError:
        return ""
    return text.splitlines()[0][:200] if text else ""


@contextmanager
def lock_file(
    path: str | Path,
    *,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
    busy: Callable[[str], str] | None = None,
    note: str = "",
    remove: bool = False,
) -> Iterator[None]:
    """Hold an exclusive lock on the lock file ``path`` (created if needed) for the ``with`` block.

    Args:
        wait: when another process holds the lock, wait for it (after calling ``on_wait``);
            otherwise raise :class:`Busy` at once.
        on_wait: called once, with what the holder wrote (see ``note``), before waiting.
        busy: the :class:`Busy` message, given what the holder wrote (default: a generic one).
        note: written into the lock file while held (after the process id), for the other side's messages.
        remove: delete the lock file when done. Safe against a process that opened the old file
            meanwhile: every acquirer checks that the path still names the file it locked.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        f = open(path, "a+")  # noqa: SIM115 -- kept open while the lock is held
        try:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(path)
                if not wait:
                    raise Busy(
                        busy(holder)
                        if busy
                        else f"{path} is locked by another process ({holder or 'unknown'}); wait for it to finish"
                    ) from None
                if on_wait is not None and not waited:
                    on_wait(holder)
                waited = True
                fcntl.flock(f, fcntl.LOCK_EX)
            try:  # the holder before may have removed the file after this process opened it: lock the new one
                same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                f.close()
                continue
        except BaseException:
            f.close()
            raise
        break
    try:
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}" + (f", {note}" if note else "") + "\n")
        f.flush()
    except OSError:  # the note is only for messages
        pass
    try:
        yield
    finally:
        if remove:  # unlinked while still held, so a waiter on the old file notices and retries
            try:
                path.unlink()
            except OSError:
                pass
        else:
            try:
                f.truncate(0)
            except OSError:
                pass
        f.close()  # releases the lock


@contextmanager
def output_lock(folder: str | Path, command: str, option: str = "--out") -> Iterator[None]:
    """Refuse, with one line, a second process writing into ``folder`` at the same time.

    ``folder`` is created if needed (and removed again if it is still empty at the end). The lock
    file :data:`OUTPUT_LOCK` is kept inside it while held and removed after. ``command`` names the
    writer in the other process's message (e.g. "gankit colorize"); ``option`` is the one that
    chooses the folder.
    """
    folder = Path(folder)
    created = not folder.exists()

    def busy(holder: str) -> str:
        who = f" ({holder})" if holder else ""
        return (
            f"{option} {folder}: another process{who} is writing into this folder; "
            f"wait for it to finish, or choose another {option}"
        )

    try:
        with lock_file(folder / OUTPUT_LOCK, wait=False, busy=busy, note=command, remove=True):
            yield
    finally:
        if created:
            try:
                folder.rmdir()  # only when nothing was written (a failed start leaves no empty folder)
            except OSError:
                pass


_scopes: list[ExitStack] = []
_process = ExitStack()
atexit.register(_process.close)


@contextmanager
def holding() -> Iterator[None]:
    """Release, when the block ends, the locks taken inside it with :func:`hold` (``gankit.cli.main``
    wraps each command in one; outside any, :func:`hold` keeps a lock until the process exits)."""
    with ExitStack() as stack:
        _scopes.append(stack)
        try:
            yield
        finally:
            _scopes.pop()


def hold(lock: AbstractContextManager[None]) -> None:
    """Enter ``lock`` (e.g. :func:`output_lock`) until the enclosing :func:`holding` block ends: for a
    command that writes until it returns, where a ``with`` block would have to wrap its whole body."""
    (_scopes[-1] if _scopes else _process).enter_context(lock)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder to write to; renamed over ``path`` when the block ends
    without an error, removed when it raises (Ctrl-C included).

    The temporary name holds the process and thread ids, so two writers of one file (two processes, or
    two threads of one) never write into each other's temporary file: the last rename wins, whole.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{threading.get_native_id()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``
    (see :func:`atomic_path`): a reader sees the old file or the new one, never a torn one."""
    import torch  # here, not at the top: the CLI imports this module before it needs torch

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
