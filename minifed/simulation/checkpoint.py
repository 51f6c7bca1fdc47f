"""Checkpoints: everything a run needs to go on, written atomically.

A run's state after round ``t`` is the global ``w``, the algorithm's server state, the state of
every client that has taken part, and the history. Every random choice is derived from
``(seed, purpose, round, client)``, so resuming from ``RunState`` replays exactly what the
uninterrupted run does, bit for bit.

The file is an ``.npz`` (no pickles): ``w``, ``server/<field>``, ``clients/ids`` and
``clients/<field>`` (the touched clients' rows stacked), and the history's JSON as bytes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minifed.simulation.history import History
from minifed.simulation.state import ClientStates


@dataclass
class RunState:
    """The state of a run after its last recorded round."""

    w: np.ndarray
    history: History
    server: dict = field(default_factory=dict)
    clients: ClientStates = field(default_factory=ClientStates)


def save_checkpoint(path, state: RunState) -> Path:
    """Write ``state`` to ``path`` (``.npz``) via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"w": state.w, "history": np.frombuffer(state.history.to_json().encode(), np.uint8)}
    arrays.update({f"server/{f}": np.asarray(v) for f, v in state.server.items()})
    arrays.update({f"clients/{f}": v for f, v in state.clients.to_arrays().items()})
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
    return path


def load_checkpoint(path) -> RunState:
    """Read the :class:`RunState` written by :func:`save_checkpoint`."""
    try:
        with np.load(Path(path), allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
        text = arrays.pop("history")  # UTF-8 bytes; a 0-d string in checkpoints before v2
        history = History.from_dict(
            json.loads(str(text) if text.dtype.kind == "U" else text.tobytes())
        )
    except (OSError, KeyError, ValueError, EOFError) as error:
        message = f"checkpoint {path} is not a readable minifed checkpoint: {error}"
        raise ValueError(message) from error
    server = {k.removeprefix("server/"): v for k, v in arrays.items() if k.startswith("server/")}
    clients = {k.removeprefix("clients/"): v for k, v in arrays.items() if k.startswith("clients/")}
    clients = ClientStates.from_arrays(clients) if clients else ClientStates()
    return RunState(arrays["w"], history, server, clients)
