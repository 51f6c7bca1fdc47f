"""Find, download, verify and cache the files of a data set.

A data set is a folder name and a list of files, each with its official URLs and its pinned
sha256 (:class:`DataFile`, :class:`DataSource`). :func:`locate` looks for the files in this order
and takes the first folder that holds every file asked for:

1. the ``data_dir`` argument: ``data_dir/<file>`` or ``data_dir/<dataset>/<file>``;
2. ``$MINIFED_DATA/<dataset>/<file>`` (one sub-folder per data set);
3. the data set's system folders (e.g. ``/usr/share/datasets/fashion-mnist`` from Debian);
4. the cache :func:`cache_dir` ``/<dataset>/<file>``;
5. a download from the official URLs into the cache, unless ``download=False`` or
   ``MINIFED_NO_DOWNLOAD=1``.

Every file is checked against its pinned sha256 wherever it is found (the files are small; the
hash of an unchanged file is remembered within the process). A wrong file is never used: it
raises :class:`ChecksumError`. A download is written to a temporary file next to its target and
renamed only once its hash matches, so an interrupted or corrupted download leaves nothing behind.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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
    repackaging of the same data (e.g. Debian's re-compressed Fashion-MNIST).
    """

    path: str
    urls: tuple[str, ...]
    sha256: tuple[str, ...]


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
        A folder that holds the files, or holds a sub-folder ``source.name`` with them.
    download : bool
        Allow a download into the cache (also disabled by ``MINIFED_NO_DOWNLOAD=1``).
    opener : callable, optional
        ``opener(url)`` returns a readable binary file object; default ``urllib.request.urlopen``.
    files : iterable of str, optional
        Keys of ``source.files`` to locate.

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
        found = {k: folder / source.files[k].path for k in keys}
        missing = [source.files[k].path for k, p in found.items() if not p.is_file()]
        if not missing:
            for key, path in found.items():
                verify(path, source.files[key])
            return found
        tried.append(f"{label}: {folder} (missing {', '.join(missing)})")
    return _download_or_fail(source, keys, tried, download, opener)


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
        target = folder / source.files[key].path
        if target.is_file():
            verify(target, source.files[key])
            found[key] = target
            continue
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
    """Return ``path`` if its sha256 is in ``file.sha256``, else raise :class:`ChecksumError`."""
    path = Path(path)
    stat = path.stat()
    actual = _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if actual not in file.sha256:
        raise ChecksumError(
            f"{path} has sha256 {actual}, expected {' or '.join(file.sha256)}. The file is "
            "corrupted or a different version: delete or replace it."
        )
    return path


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file; ``size`` and ``mtime_ns`` key the memo so an edited file is re-hashed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()
