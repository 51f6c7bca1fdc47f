"""Every tutorial notebook (and every solution) runs top to bottom in a fresh kernel.

A notebook that needs a real data set names it in its metadata, ``{"minifed": {"requires":
["mnist"]}}``; without that data the notebook is skipped with the reason (it fails when CI=true).
"""

import os
from pathlib import Path

import nbformat
import pytest
from conftest import require_dataset
from nbclient import NotebookClient

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
NOTEBOOKS = sorted(p for p in TUTORIALS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def test_tutorials_exist():
    assert len([p for p in NOTEBOOKS if p.parent == TUTORIALS]) >= 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(TUTORIALS)) for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    for name in nb.metadata.get("minifed", {}).get("requires", []):
        require_dataset(name)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("MINIFED_NO_DOWNLOAD", os.environ.get("MINIFED_NO_DOWNLOAD", "1"))
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


def test_notebooks_are_stored_clean():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path} has outputs"
