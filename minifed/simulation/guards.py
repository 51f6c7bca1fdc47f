"""The two ways a script can hide code from spawned workers, each refused in one sentence.

Spawned workers import the script's ``__main__`` again (as ``__mp_main__``): a script that starts
workers outside ``if __name__ == "__main__":`` would start them again in every worker, and a
class defined in a notebook or under that guard cannot be found by a worker at all.
"""

from __future__ import annotations

import ast
import inspect
import io
import os
import pickle
import sys
import types
from pathlib import Path


def refuse_unguarded_main() -> None:
    """Raise if the running script is creating workers from its top level, outside
    ``if __name__ == "__main__":``: each spawned worker imports the script again (as
    ``__mp_main__``), which would start workers of its own and fail with a long traceback."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    spec = getattr(getattr(main, "__spec__", None), "name", None) or ""
    if path is None or spec == "__main__" or spec.endswith(".__main__"):
        return  # a notebook, python -c, python -m package: workers do not import it
    frame = inspect.currentframe()
    while frame is not None and not (
        frame.f_globals is vars(main) and frame.f_code.co_name == "<module>"
    ):
        frame = frame.f_back
    if frame is None:
        return
    line = frame.f_lineno
    started = _process_start()
    if started is None or Path(path).stat().st_mtime > started + 2.0:  # btime has 1 s steps
        return  # the script changed since it started (its lines moved), or cannot tell
    try:
        tree = ast.parse(Path(path).read_text(), path)
    except (OSError, SyntaxError, ValueError):
        return  # cannot tell: let multiprocessing speak
    for node in ast.walk(tree):
        test = ast.unparse(node.test) if isinstance(node, ast.If) else ""
        if "__name__" in test and "__main__" in test and node.lineno <= line <= node.end_lineno:
            return
    name = Path(path).name
    raise RuntimeError(
        f"{name}, line {line}, starts worker processes from the top level of the script, and "
        f"every worker imports {name} again: put the script's code under "
        '`if __name__ == "__main__":` (or run with workers=1).'
    )


def _process_start() -> float | None:
    """When this process started (seconds since the epoch), from Linux's ``/proc``; ``None``
    elsewhere."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(line for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))  # fmt: skip
        return int(boot.split()[1]) + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def main_objects(job) -> list[str]:
    """The classes and functions in ``job`` that are defined in ``__main__``: pickled by name,
    they are found by a worker only if its ``__main__`` defines them too (top level of a
    script), never when they come from a notebook, ``python -c`` or an ``if __name__`` block."""
    found = []

    class Finder(pickle.Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, type | types.FunctionType) and obj.__module__ == "__main__":
                kind = "class" if isinstance(obj, type) else "function"
                found.append(f"{kind} {obj.__qualname__}")
            return NotImplemented

    Finder(io.BytesIO()).dump(job)
    return list(dict.fromkeys(found))
