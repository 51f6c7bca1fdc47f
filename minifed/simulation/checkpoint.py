"""Checkpoints: the global parameters and the history so far, written atomically.

Because every random choice is derived from ``(seed, round, client)``, ``(w_t, history)`` is the
whole state of a run: resuming from round ``t`` replays exactly what the uninterrupted run does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from minifed.simulation.history import History


def save_checkpoint(path, w: np.ndarray, history: History) -> Path:
    """Write ``w`` and ``history`` to ``path`` (``.npz``) via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, w=w, history=np.array(history.to_json()))
    os.replace(tmp, path)
    return path


def load_checkpoint(path) -> tuple[np.ndarray, History]:
    """Read ``(w, history)`` written by :func:`save_checkpoint`."""
    try:
        with np.load(Path(path), allow_pickle=False) as f:
            return f["w"], History.from_dict(json.loads(str(f["history"])))
    except (OSError, KeyError, ValueError) as error:
        message = f"checkpoint {path} is not a readable minifed checkpoint: {error}"
        raise ValueError(message) from error
