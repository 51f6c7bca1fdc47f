"""Several NumPy arrays in one shared-memory segment, created once and attached by workers.

The server copies the clients' data in once; worker processes map the same bytes (no copy, no
pickling per round). Segments are named ``/dev/shm/minifed_<pid>_<random>`` so that tests and
users can see that none is left behind.

A segment outlives its process unless unlinked. A run that ends normally, raises or is
interrupted unlinks its segments; so does Python's resource tracker when the run alone is killed.
But ``SIGKILL`` to the whole process group or cgroup, tracker included (``timeout -s KILL``, a
batch scheduler, an OOM kill of the group) leaves them in ``/dev/shm``, that is in RAM, until
reboot.
:func:`remove_orphans` (called when a ``ProcessEngine`` starts) removes those of dead processes.
A segment counts as dead when both

- its owner is gone: no process has the ``<pid>`` of its name (``os.kill(pid, 0)``), and
- no process holds its lock: the owner keeps a shared ``flock`` on the segment, which the kernel
  drops when the owner dies, however it dies.

Either test alone can be wrong. The pid can be reused by an unrelated process: then the segment
stays until that process ends (a late clean-up, never a wrong one). And a run in another pid
namespace that shares ``/dev/shm`` (containers started with ``--ipc=host``, pods) has pids that
look dead from here: its lock protects it. The pid test in turn covers the instant between
creating a segment and locking it, and segments of older minifed versions, which had no lock.
Linux only: elsewhere segments are not files that can be listed (on Windows none outlive their
processes anyway).
"""

from __future__ import annotations

import os
import secrets
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

SHM_PREFIX = "minifed_"  # every segment we create is /dev/shm/minifed_<pid>_<random>
SHM_DIR = Path("/dev/shm")  # where Linux lists POSIX shared memory
ALIGN = 64  # bytes: every array in a segment starts on a cache line


class SharedArrays:
    """Named arrays laid out one after another in one ``SharedMemory`` segment.

    ``SharedArrays.create({"X": X, ...})`` copies the arrays in (the owner unlinks the segment);
    ``SharedArrays.attach(shared.ref)`` maps the same bytes in another process (no copy).
    """

    def __init__(self, shm: SharedMemory, layout: dict, owner: bool):
        self.shm, self.layout, self.owner = shm, layout, owner
        self.lock = _lock(shm.name) if owner else None  # says "alive" to remove_orphans
        self.arrays = {
            name: np.ndarray(shape, dtype, buffer=shm.buf, offset=start)
            for name, (start, shape, dtype) in layout.items()
        }

    @classmethod
    def create(cls, arrays: dict) -> SharedArrays:
        """A new segment holding ``arrays`` (name -> array, or name -> ``(shape, dtype)``)."""
        specs = {
            k: (a.shape, a.dtype) if isinstance(a, np.ndarray) else a for k, a in arrays.items()
        }
        layout, size = {}, 0
        for name, (shape, dtype) in specs.items():
            dtype = np.dtype(dtype)
            layout[name] = (size, tuple(shape), dtype.str)
            size += -(-int(np.prod(shape)) * dtype.itemsize // ALIGN) * ALIGN
        name = f"{SHM_PREFIX}{os.getpid()}_{secrets.token_hex(6)}"
        shared = cls(SharedMemory(name, create=True, size=max(size, 1)), layout, owner=True)
        for key, a in arrays.items():
            if isinstance(a, np.ndarray):
                shared.arrays[key][...] = a
        return shared

    @classmethod
    def attach(cls, ref: tuple) -> SharedArrays:
        """Map the segment described by ``ref = (name, layout)`` of an existing one."""
        name, layout = ref
        return cls(SharedMemory(name), layout, owner=False)

    @property
    def ref(self) -> tuple:
        """What another process needs to attach: ``(segment name, layout)``."""
        return self.shm.name, self.layout

    def close(self) -> None:
        """Drop the views, unmap the segment and, for the owner, unlink it."""
        self.arrays = {}
        try:
            self.shm.close()
        except BufferError:  # a view is still alive somewhere: the mapping goes with it
            pass
        if self.owner:
            try:
                self.shm.unlink()
            except FileNotFoundError:
                pass
            self.owner = False
        if self.lock is not None:
            os.close(self.lock)  # closing the file drops the flock
            self.lock = None


def _lock(name: str) -> int | None:
    """Open ``/dev/shm/<name>`` and hold a shared flock on it; returns the descriptor."""
    if fcntl is None:
        return None
    try:
        fd = os.open(SHM_DIR / name.lstrip("/"), os.O_RDONLY)
    except OSError:  # not Linux: no /dev/shm to clean either
        return None
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def remove_orphans() -> list[str]:
    """Unlink the segments of minifed processes that died without unlinking them (see above);
    returns their names. Segments of live processes, or of other users, are left alone."""
    removed = []
    for path in sorted(SHM_DIR.glob(f"{SHM_PREFIX}*")):
        if _owner_alive(path.name) or _in_use(path):
            continue
        try:
            path.unlink()
            removed.append(path.name)
        except OSError:  # removed meanwhile by another run, or not ours to remove
            pass
    return removed


def _owner_alive(name: str) -> bool:
    """Whether the process of ``minifed_<pid>_...`` exists (True when the name says no pid)."""
    pid = name[len(SHM_PREFIX) :].split("_")[0]
    if not pid.isdigit() or int(pid) <= 0:
        return True
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, under another user
        pass
    return True


def _in_use(path: Path) -> bool:
    """Whether some process holds the segment's flock (True when that cannot be checked)."""
    if fcntl is None:
        return True
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:  # BlockingIOError: its owner (or a fork of it) holds the lock
        return True
    finally:
        os.close(fd)  # also drops our lock
