"""Execute one notebook for the site: ``python docs/execute.py SRC DST``.

Runs SRC top to bottom in a fresh kernel whose working folder is SRC's own (as in
tests/test_tutorials.py) and writes the executed notebook to DST. Figures are kept: the kernel
draws with the inline backend even when ``MPLBACKEND=Agg`` is set for the rest of the run. On an
error nothing is written and the failing cell's traceback goes to stderr (exit status 1).

:func:`cached_copy` says where the site build keeps a notebook's executed copy, so that other
tools (tests/test_tutorials.py) can reuse an execution of the very same notebook and library.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ANSI = re.compile(r"\x1b\[[0-9;]*m")
ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "docs-cache"
# The kernels run BLAS on one thread. The chapters' products are small (batches of 10 to 50
# rows), which a second thread does not speed up; on a busy machine its spinning made them far
# slower: 8 rounds of the 2NN took 110 s with two threads against 9 s with one (load 6, 2 cores).
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def library_digest() -> bytes:
    """A hash of every ``.py`` file under ``minifed/`` and ``benchmarks/`` (names and bytes)."""
    h = hashlib.sha256()
    for folder in ("minifed", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            h.update(path.relative_to(ROOT).as_posix().encode() + path.read_bytes())
    return h.digest()


def cached_copy(notebook: Path, digest: bytes | None = None) -> Path:
    """Where the site build keeps ``notebook`` executed: ``build/docs-cache/KEY/`` plus the
    notebook's path in the repository, KEY a hash of the notebook and of :func:`library_digest`.
    The file exists only if a build executed this very notebook against this very code."""
    notebook = notebook.resolve()
    key = hashlib.sha256((digest or library_digest()) + notebook.read_bytes()).hexdigest()[:24]
    return CACHE / key / notebook.relative_to(ROOT)


def execute(src: Path, dst: Path, timeout: int = 600) -> None:
    """Execute ``src`` into ``dst``; raise ``CellExecutionError`` if a cell fails."""
    nb = nbformat.read(src, as_version=4)
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # the kernel inherits
    os.environ.setdefault("MINIFED_NO_DOWNLOAD", "1")
    os.environ.update(ONE_BLAS_THREAD)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(src.parent)}},
    )
    client.execute()
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(dst)


def main(argv: list[str]) -> int:
    src, dst = Path(argv[1]), Path(argv[2])
    try:
        execute(src, dst)
    except CellExecutionError as exc:
        print(f"{src} failed:\n{ANSI.sub('', str(exc))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
