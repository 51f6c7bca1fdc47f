"""Read IDX files, the format of MNIST and Fashion-MNIST (plain or gzip-compressed).

An IDX file is a header and then the array in C order, everything big-endian::

    bytes 0-1   0x00 0x00
    byte  2     type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
                0x0E float64
    byte  3     number of dimensions D
    then        D sizes as big-endian uint32, then prod(sizes) items of the type
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np

IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Return the array stored in the IDX file ``path`` (gzip is detected from its content).

    Parameters
    ----------
    path : str or path-like
        An IDX file, e.g. ``train-images-idx3-ubyte`` or ``train-images-idx3-ubyte.gz``.

    Returns
    -------
    ndarray
        Shape from the header (e.g. ``(60000, 28, 28)``), dtype from the type code, in native
        byte order.

    Raises
    ------
    ValueError
        If the file is not IDX, is truncated, or has bytes beyond the data; the message names
        ``path``.
    """
    raw = _read_bytes(path)
    dtype, shape, offset = _parse_header(raw, path)
    expected = math.prod(shape) * dtype.itemsize
    actual = len(raw) - offset
    if actual != expected:
        problem = "truncated" if actual < expected else "longer than its header says"
        raise ValueError(
            f"IDX file {os.fspath(path)!r} is {problem}: the header {shape} of {dtype.name} "
            f"needs {expected} data bytes, found {actual}."
        )
    data = np.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=offset)
    return data.reshape(shape).astype(dtype.newbyteorder("="))


def _read_bytes(path) -> bytes:
    """Whole (decompressed) content of ``path``."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(
            f"IDX file {os.fspath(path)!r} is a broken gzip file ({exc}); "
            "it is probably truncated: delete it and fetch it again."
        ) from exc


def _parse_header(raw: bytes, path) -> tuple[np.dtype, tuple[int, ...], int]:
    """Return ``(dtype, shape, data offset)`` from the IDX header in ``raw``."""
    name = os.fspath(path)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_TYPES:
        raise ValueError(
            f"{name!r} is not an IDX file: it must start with 0x00 0x00, a type code in "
            f"{sorted(hex(c) for c in IDX_TYPES)} and the number of dimensions; "
            f"got {raw[:4].hex(' ') or 'an empty file'}."
        )
    ndim = raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise ValueError(
            f"IDX file {name!r} is truncated inside its header: {ndim} dimensions need "
            f"{offset} header bytes, found {len(raw)}."
        )
    shape = struct.unpack(f">{ndim}I", raw[4:offset])
    return IDX_TYPES[raw[2]], shape, offset
