"""Several NumPy arrays in one shared-memory segment, created once and attached by workers.

The server copies the clients' data in once; worker processes map the same bytes (no copy, no
pickling per round). Segments are named ``/dev/shm/minifed_<pid>_<random>`` so that tests and
users can see that none is left behind.
"""

from __future__ import annotations

import os
import secrets
from multiprocessing.shared_memory import SharedMemory

import numpy as np

SHM_PREFIX = "minifed_"  # every segment we create is /dev/shm/minifed_<pid>_<random>
ALIGN = 64  # bytes: every array in a segment starts on a cache line


class SharedArrays:
    """Named arrays laid out one after another in one ``SharedMemory`` segment.

    ``SharedArrays.create({"X": X, ...})`` copies the arrays in (the owner unlinks the segment);
    ``SharedArrays.attach(shared.ref)`` maps the same bytes in another process (no copy).
    """

    def __init__(self, shm: SharedMemory, layout: dict, owner: bool):
        self.shm, self.layout, self.owner = shm, layout, owner
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
