"""Find, download, verify, cache and read the files of a data set.

A data set is a folder name and a list of files, each with its official URLs and its pinned
sha256 (:class:`DataFile`, :class:`DataSource`). :func:`locate` looks for the files in this order
and takes the first folder that holds every file asked for:

1. the ``data_dir`` argument: ``data_dir/<file>`` or ``data_dir/<dataset>/<file>``;
2. ``$MINIFED_DATA/<dataset>/<file>`` (one sub-folder per data set);
3. the data set's system folders (e.g. ``/usr/share/datasets/fashion-mnist`` from Debian);
4. the cache :func:`cache_dir` ``/<dataset>/<file>``;
5. a download from the official URLs into the cache, unless ``download=False`` or
   ``MINIFED_NO_DOWNLOAD=1``.

In every folder a file may also be stored gzip-compressed, as ``<file>.gz`` (large text files are
kept that way, e.g. ``gzip -n -9``); the plain file wins when both exist. Every file is checked
against its pinned sha256 wherever it is found (the hash of an unchanged file is remembered within
the process): a ``.gz`` copy is accepted when the hash of its compressed bytes is a known one
(``DataFile.gz_sha256``) or when the hash of its decompressed bytes is the pinned ``sha256``. A
wrong or truncated file is never used: it raises :class:`ChecksumError`. A download is written to
a temporary file next to its target and renamed only once its hash matches, so an interrupted or
corrupted download leaves nothing behind.

:func:`read_text` reads a located file (plain or ``.gz``) and :func:`parse_numbers` turns its rows
into a float array, raising an error that names the file and the line of any malformed row.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import io
import os
import tempfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

CHUNK = 1 << 20
TRUE_WORDS = ("1", "true", "yes", "on")


class DatasetNotFoundError(FileNotFoundError):
    """No folder holds the data set's files and they could not be downloaded."""


class ChecksumError(ValueError):
    """A data file's sha256 differs from the pinned value."""


@dataclass(frozen=True)
class DataFile:
    """One file of a data set: its ``path`` inside the data-set folder, URLs and sha256.

    ``sha256`` lists the accepted hashes, the official file's first; a later entry is a known
    repackaging of the same data (e.g. Debian's re-compressed Fashion-MNIST). The file may also be
    stored as ``path + ".gz"``; ``gz_sha256`` lists known hashes of such compressed copies (a copy
    whose compressed hash is not listed is checked by the hash of its decompressed bytes).
    """

    path: str
    urls: tuple[str, ...]
    sha256: tuple[str, ...]
    gz_sha256: tuple[str, ...] = ()


@dataclass(frozen=True)
class DataSource:
    """A data set: its folder ``name``, its files by key, system folders and an install hint."""

    name: str
    files: dict[str, DataFile]
    system_dirs: tuple[str, ...] = ()
    hint: str = ""


def cache_dir() -> Path:
    """``$MINIFED_CACHE``, else ``$XDG_CACHE_HOME/minifed``, else ``~/.cache/minifed``."""
    if os.environ.get("MINIFED_CACHE"):
        return Path(os.environ["MINIFED_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "minifed"


def locate(
    source: DataSource,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    opener: Callable[[str], BinaryIO] | None = None,
    files: Iterable[str] | None = None,
) -> dict[str, Path]:
    """Return ``{key: path}`` for the files ``files`` (default: all) of the data set ``source``.

    Parameters
    ----------
    source : DataSource
        The data set, e.g. ``minifed.data.DATASETS["mnist"]``.
    data_dir : str or path-like, optional
        A folder that holds the files, or holds a sub-folder ``source.name`` with them (each file
        plain or as ``<file>.gz``).
    download : bool
        Allow a download into the cache (also disabled by ``MINIFED_NO_DOWNLOAD=1``).
    opener : callable, optional
        ``opener(url)`` returns a readable binary file object; default ``urllib.request.urlopen``.
    files : iterable of str, optional
        Keys of ``source.files`` to locate.

    Returns
    -------
    dict of str to Path
        The path of each file as found: ``<file>`` or ``<file>.gz`` (read it with
        :func:`read_text`, which decompresses the latter).

    Raises
    ------
    DatasetNotFoundError
        Listing every place searched and how to get the files.
    ChecksumError
        If a file found or downloaded does not match its pinned sha256.
    """
    keys = list(source.files) if files is None else list(files)
    unknown = [k for k in keys if k not in source.files]
    if unknown:
        raise ValueError(
            f"files has unknown keys {unknown}; {source.name} has {list(source.files)}."
        )
    tried = []
    for label, folder in _candidate_folders(source, data_dir):
        if folder is None:
            tried.append(f"{label}: not set")
            continue
        found = {k: _present(folder, source.files[k]) for k in keys}
        missing = [source.files[k].path for k, p in found.items() if p is None]
        if not missing:
            for key, path in found.items():
                verify(path, source.files[key])
            return found
        tried.append(f"{label}: {folder} (missing {', '.join(missing)})")
    return _download_or_fail(source, keys, tried, download, opener)


def _present(folder: Path, file: DataFile) -> Path | None:
    """``folder/<file>`` if it exists, else ``folder/<file>.gz`` if that exists, else None."""
    names = [file.path] if file.path.endswith(".gz") else [file.path, file.path + ".gz"]
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def _candidate_folders(source: DataSource, data_dir) -> list[tuple[str, Path | None]]:
    """``(label, folder)`` pairs in lookup order; ``folder`` is None for an unset place."""
    places: list[tuple[str, Path | None]] = [("data_dir", None)]
    if data_dir is not None:
        places = [("data_dir", Path(data_dir)), ("data_dir", Path(data_dir) / source.name)]
    env = os.environ.get("MINIFED_DATA")
    places.append(("$MINIFED_DATA", Path(env) / source.name if env else None))
    places += [("system folder", Path(d)) for d in source.system_dirs]
    places.append(("cache", cache_dir() / source.name))
    return places


def _download_or_fail(source, keys, tried, download, opener) -> dict[str, Path]:
    """Download the missing files into the cache, or raise one error that lists ``tried``."""
    if not download or os.environ.get("MINIFED_NO_DOWNLOAD", "").lower() in TRUE_WORDS:
        why = "download=False" if not download else "MINIFED_NO_DOWNLOAD is set"
        tried.append(f"download: off ({why})")
        raise DatasetNotFoundError(_not_found_message(source, tried))
    folder = cache_dir() / source.name
    found, failures = {}, []
    for key in keys:
        present = _present(folder, source.files[key])
        if present is not None:
            found[key] = verify(present, source.files[key])
            continue
        target = folder / source.files[key].path
        errors = _download(source.files[key], target, opener)
        if errors:
            failures += errors
        else:
            found[key] = target
    if failures:
        raise DatasetNotFoundError(_not_found_message(source, tried + failures))
    return found


def _download(file: DataFile, target: Path, opener) -> list[str]:
    """Try each URL of ``file`` until one gives the pinned bytes; return the failures."""
    opener = opener or _urlopen
    target.parent.mkdir(parents=True, exist_ok=True)
    failures, mismatches = [], []
    for url in file.urls:
        try:
            digest = _fetch_to(url, target, opener, file.sha256)
        except (OSError, http.client.HTTPException) as exc:  # URLError, HTTPError, timeouts
            failures.append(f"download: {url} failed ({exc})")
            continue
        if digest is None:
            return []
        mismatches.append(f"{url} gave sha256 {digest}")
    if mismatches:
        raise ChecksumError(
            f"Downloaded {target.name} does not match its pinned sha256 "
            f"{' or '.join(file.sha256)}: {'; '.join(mismatches)}. Nothing was saved."
        )
    return failures


def _fetch_to(url: str, target: Path, opener, accepted: tuple[str, ...]) -> str | None:
    """Stream ``url`` to a temporary file; rename it to ``target`` if its hash is accepted.

    Return ``None`` on success, else the wrong hash (the temporary file is removed).
    """
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            response = opener(url)
            try:
                while chunk := response.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
            finally:
                response.close()
        if h.hexdigest() in accepted:
            os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; a cache may be shared
            os.replace(tmp, target)
            return None
        return h.hexdigest()
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _urlopen(url: str) -> BinaryIO:
    """Default opener: ``urllib.request.urlopen`` with a 60 s timeout."""
    import urllib.request

    return urllib.request.urlopen(url, timeout=60)


def _not_found_message(source: DataSource, tried: list[str]) -> str:
    """One message: what is missing, where we looked, and four ways to fix it."""
    lines = [f"Could not find the {source.name!r} data files. Looked in, in this order:"]
    lines += [f"  - {t}" for t in tried]
    lines += [
        "To fix this, do one of:",
        f"  - set MINIFED_DATA to a folder that holds {source.name}/<the files>;",
        "  - pass data_dir=<folder holding the files>;",
    ]
    if source.hint:
        lines.append(f"  - {source.hint};")
    lines.append(f"  - allow download=True (with network) to fill the cache {cache_dir()}.")
    return "\n".join(lines)


def verify(path: str | os.PathLike, file: DataFile) -> Path:
    """Return ``path`` if its sha256 is in ``file.sha256``, else raise :class:`ChecksumError`.

    A gzip copy ``<file>.gz`` passes when the sha256 of its bytes is in ``file.gz_sha256`` or the
    sha256 of its decompressed bytes is in ``file.sha256``; a truncated one raises too.
    """
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    actual = _sha256(*key)
    if actual in file.sha256:
        return path
    if not _is_gz_copy(path, file):
        raise ChecksumError(
            f"{path} has sha256 {actual}, expected {' or '.join(file.sha256)}. The file is "
            "corrupted or a different version: delete or replace it."
        )
    if actual in file.gz_sha256:
        return path
    try:
        inner = _sha256(*key, gunzip=True)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise ChecksumError(
            f"{path} is not a complete gzip file ({exc}): it is truncated or corrupted; "
            f"delete or replace it (the decompressed {file.path} has sha256 {file.sha256[0]})."
        ) from exc
    if inner not in file.sha256:
        raise ChecksumError(
            f"{path} decompresses to bytes with sha256 {inner}, expected "
            f"{' or '.join(file.sha256)} (the .gz itself has sha256 {actual}). The file is "
            "corrupted or a different version: delete or replace it."
        )
    return path


def _is_gz_copy(path: Path, file: DataFile) -> bool:
    """Whether ``path`` is the gzip form ``<file>.gz`` of a file that is itself not gzip."""
    return path.name.endswith(".gz") and not file.path.endswith(".gz")


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int, gunzip: bool = False) -> str:
    """sha256 of a file (of its decompressed bytes if ``gunzip``); ``size`` and ``mtime_ns`` key
    the memo so an edited file is re-hashed."""
    h = hashlib.sha256()
    with gzip.open(path, "rb") if gunzip else open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def read_text(path: str | os.PathLike, encoding: str = "ascii") -> str:
    """The whole text of a data file, decompressed first when its name ends in ``.gz``.

    Raises a ValueError naming ``path`` for a broken gzip stream, and naming the line for a byte
    that is not ``encoding`` text.
    """
    path = Path(path)
    if path.name.endswith(".gz"):
        try:
            with gzip.open(path, "rb") as f:
                raw = f.read()
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise ValueError(
                f"{path} is not a complete gzip file ({exc}): delete or replace it."
            ) from exc
    else:
        raw = path.read_bytes()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ValueError(
            f"{path}, line {line}: byte {raw[exc.start]:#04x} is not {encoding} text."
        ) from exc


def parse_numbers(
    text: str,
    path: str | os.PathLike,
    *,
    ncols: int,
    usecols: tuple[int, ...] | None = None,
    delimiter: str | None = None,
    first_line: int = 1,
    missing: str | None = None,
) -> np.ndarray:
    """Rows of ``text`` as a float64 array ``(n, len(usecols))`` (all ``ncols`` by default).

    Every non-blank line must hold ``ncols`` fields split by ``delimiter`` (``None``: runs of
    white space, then pass no ``usecols``); the fields in ``usecols`` must be numbers, or
    exactly ``missing`` (e.g. ``"NA"``, needs a ``delimiter``), which becomes NaN.
    ``first_line`` is the file's line number of ``text``'s first line (2 after a header), so
    that errors point into the file. ``numpy.loadtxt`` does the work; only when it fails is the
    text scanned line by line to name the bad line.

    Raises
    ------
    ValueError
        ``"<path>, line <i>: ..."`` for the first line with another number of fields or a field
        that is not a number.
    """
    if missing is not None and delimiter is None:
        raise ValueError("parse_numbers: missing needs a delimiter such as ','.")
    body = text if missing is None else _missing_to_nan(text, missing, delimiter)
    try:
        table = np.loadtxt(io.StringIO(body), delimiter=delimiter, usecols=usecols, ndmin=2)
    except ValueError as exc:
        raise ValueError(
            _first_bad_line(body, path, ncols, usecols, delimiter, first_line)
        ) from exc
    if delimiter is not None:  # loadtxt ignores fields beyond usecols: count the delimiters
        fields_ok = body.count(delimiter) == (ncols - 1) * len(table)
    else:  # loadtxt itself rejects a line whose field count differs from the first line's
        fields_ok = usecols is not None or table.shape[1] == ncols
    if not fields_ok:
        raise ValueError(_first_bad_line(body, path, ncols, usecols, delimiter, first_line))
    return table


def _missing_to_nan(text: str, token: str, delimiter: str) -> str:
    """``text`` with every field that is exactly ``token`` written ``nan``.

    A field sits between a delimiter or a line start and a delimiter or a line end. Plain
    ``str.replace`` is 5x faster here than a regular expression with look-arounds. Matches do not
    overlap, so the inner pattern (``,NA,``) is replaced twice: ``,NA,NA,`` needs a second pass.
    """
    d = delimiter
    text = f"\n{text}\n"  # every field now has a neighbour on both sides
    for left, right, passes in ((d, d, 2), (d, "\r", 1), (d, "\n", 1), ("\n", d, 1)):
        for _ in range(passes):
            text = text.replace(f"{left}{token}{right}", f"{left}nan{right}")
    for right in ("\r", "\n"):  # a line holding only the token
        text = text.replace(f"\n{token}{right}", f"\nnan{right}")
    return text[1:-1]


def _first_bad_line(body, path, ncols, usecols, delimiter, first_line) -> str:
    """The message for the first line of ``body`` that is not ``ncols`` numeric fields."""
    for i, line in enumerate(body.splitlines(), start=first_line):
        if not line.strip():
            continue
        cells = line.split(delimiter)
        if len(cells) != ncols:
            return f"{path}, line {i}: {len(cells)} fields, expected {ncols}: {line[:80]!r}"
        for j in range(ncols) if usecols is None else usecols:
            try:
                float(cells[j])
            except ValueError:
                return f"{path}, line {i}: field {j + 1} is {cells[j]!r}, not a number."
    return f"{path}: could not be read as {ncols} numeric fields per line."
