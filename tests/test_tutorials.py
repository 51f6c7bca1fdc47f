"""Every tutorial notebook (and every solution) runs top to bottom in a fresh kernel.

A notebook that needs a real data set names it in its metadata, ``{"minifed": {"requires":
["mnist"]}}``; without that data the notebook is skipped with the reason (it fails when CI=true).

The site's test (tests/test_site.py, which pytest runs first) executes every notebook for the
pages. Where that build left an executed copy of this very notebook against this very library
code (``docs/execute.py``'s cache key: the notebook's bytes and every ``.py`` under ``minifed/``
and ``benchmarks/``), the copy is checked instead of running the notebook a second time.
"""

import importlib.util
import os
from pathlib import Path

import nbformat
import pytest
from conftest import require_dataset
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
NOTEBOOKS = sorted(p for p in TUTORIALS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


_spec = importlib.util.spec_from_file_location("docs_execute", ROOT / "docs" / "execute.py")
EXECUTE = importlib.util.module_from_spec(_spec)  # docs/execute.py: the site's notebook runner
_spec.loader.exec_module(EXECUTE)


def _site_execution(path: Path) -> Path | None:
    """The site build's executed copy of ``path``, if it made one for the current code
    (``MINIFED_TEST_REEXECUTE=1``: never reuse it)."""
    if os.environ.get("MINIFED_TEST_REEXECUTE") == "1":
        return None
    copy = EXECUTE.cached_copy(path)
    return copy if copy.is_file() else None


def test_tutorials_exist():
    assert len([p for p in NOTEBOOKS if p.parent == TUTORIALS]) >= 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(TUTORIALS)) for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    for name in nb.metadata.get("minifed", {}).get("requires", []):
        require_dataset(name)
    copy = _site_execution(path)
    if copy is not None:
        print(f"checked the site build's execution {copy.relative_to(ROOT)}")
        nb = nbformat.read(copy, as_version=4)
        assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code"), copy
    else:
        monkeypatch.setenv("MPLBACKEND", "Agg")
        for name, value in EXECUTE.ONE_BLAS_THREAD.items():  # see docs/execute.py
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("MINIFED_NO_DOWNLOAD", os.environ.get("MINIFED_NO_DOWNLOAD", "1"))
        client = NotebookClient(
            nb, timeout=600, kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        )  # fmt: skip
        client.execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


def test_notebooks_are_stored_clean():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path} has outputs"
