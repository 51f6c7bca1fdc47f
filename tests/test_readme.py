"""The README's promises: its test command is what CI runs, and its code example runs."""

import re
from pathlib import Path

from conftest import require_dataset

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_ci_runs_exactly_the_readme_test_command():
    quick_start = README.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick_start.strip().splitlines()]
    assert len(commands) == 2 and "minifed demo" in commands[0]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in [line.strip() for line in ci]


def test_readme_code_example_runs(tmp_path, monkeypatch):
    require_dataset("fashion-mnist")
    code = README.split("## In code", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    code = re.sub(r"rounds=\d+", "rounds=1", code)  # the same code, one round
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["history"].rounds[-1]["round"] == 1
    assert (tmp_path / "fedavg.json").exists()
