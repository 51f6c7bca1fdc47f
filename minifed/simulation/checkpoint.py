"""Checkpoints: everything a run needs to go on, written so that no crash can corrupt them.

A run's state after round ``t`` is the global ``w``, the algorithm's server state, the state of
every client that has taken part, and the history. Every random choice is derived from
``(seed, purpose, round, client)``, so resuming from this state replays exactly what the
uninterrupted run does, bit for bit.

Two files, so that the cost of a checkpoint does not grow with the run:

- ``path`` (an ``.npz``, no pickles), rewritten atomically (temporary file, then rename): ``w``,
  ``server/<field>``, ``clients/ids`` and ``clients/<field>`` (the touched clients' rows
  stacked), the run's config, the number ``R`` of rounds recorded, and a fingerprint of the data;
- ``path.rounds.jsonl``: the history, one JSON line per round, only appended to. Lines after the
  first ``R`` (written after the last checkpoint, or cut short by a crash) are dropped on resume.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minifed.simulation.history import History, json_safe
from minifed.simulation.state import ClientStates

FORMAT = 2  # 1: w and the whole history as one string (minifed 0.1); 2: this module


@dataclass
class RunState:
    """The state of a run after its last recorded round."""

    w: np.ndarray
    history: History
    server: dict = field(default_factory=dict)
    clients: ClientStates = field(default_factory=ClientStates)


def fingerprint(data) -> str:
    """A BLAKE2 digest of a federation's arrays (clients' ``X``, ``y``, sizes, test set and its
    split by client): a checkpoint made on other data with the same name and sizes is then
    recognised."""
    digest = hashlib.blake2b(digest_size=16)
    arrays = [data.X, data.y, data.offsets, data.X_test, data.y_test]
    if getattr(data, "test_offsets", None) is not None:  # per-client test sets
        arrays.append(data.test_offsets)
    for a in arrays:
        a = np.ascontiguousarray(a if a is not None else np.empty(0))
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.data)
    return digest.hexdigest()


class Checkpoint:
    """The checkpoint files of one run: :meth:`save` after rounds, :meth:`load` to resume."""

    def __init__(self, path):
        self.path = Path(path)
        self.log = self.path.with_name(self.path.name + ".rounds.jsonl")
        self.written = 0  # history rounds already in the log

    def exists(self) -> bool:
        return self.path.exists()

    def save(self, state: RunState, data_fingerprint: str) -> Path:
        """Append the new rounds to the log, then replace the state file atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rounds = state.history.rounds
        with open(self.log, "ab" if self.written else "wb") as f:
            for record in rounds[self.written :]:
                f.write(json.dumps(json_safe(record), allow_nan=False).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        self.written = len(rounds)
        meta = {"format": FORMAT, "rounds": self.written, "fingerprint": data_fingerprint,
                "config": state.history.config, "stopped": state.history.stopped}  # fmt: skip
        arrays = {"w": state.w, "meta": _text(json.dumps(json_safe(meta)))}
        arrays.update({f"server/{f}": np.asarray(v) for f, v in state.server.items()})
        arrays.update({f"clients/{f}": v for f, v in state.clients.to_arrays().items()})
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        return self.path

    def load(self) -> tuple[RunState, str | None]:
        """``(state, data fingerprint)``; the fingerprint is ``None`` in a format-1 file."""
        arrays = self._arrays()
        if "history" in arrays:  # format 1: the whole history as one string (or its bytes)
            text = arrays["history"]
            text = str(text) if text.dtype.kind == "U" else text.tobytes().decode()
            return RunState(arrays["w"], History.from_dict(json.loads(text))), None
        meta = json.loads(arrays.pop("meta").tobytes())
        history = History(meta["config"], self._rounds(meta["rounds"]), meta["stopped"])
        server = {k[7:]: v for k, v in arrays.items() if k.startswith("server/")}
        clients = {k[8:]: v for k, v in arrays.items() if k.startswith("clients/")}
        clients = ClientStates.from_arrays(clients) if clients else ClientStates()
        return RunState(arrays["w"], history, server, clients), meta["fingerprint"]

    def _arrays(self) -> dict:
        try:
            with np.load(self.path, allow_pickle=False) as f:
                arrays = {name: f[name] for name in f.files}
            if "w" not in arrays or not ({"meta", "history"} & set(arrays)):
                raise KeyError("w")
            return arrays
        except Exception as error:  # empty, truncated, another kind of file
            what = "is empty" if self.path.stat().st_size == 0 else "is damaged or not one"
            raise CheckpointError(
                f"checkpoint {self.path} {what} of minifed's checkpoints; delete it, or give "
                "another --checkpoint path, to start afresh."
            ) from error

    def _rounds(self, R: int) -> list[dict]:
        """The first ``R`` lines of the log; later ones are cut off the file."""
        rounds, end = [], 0
        try:
            with open(self.log, "rb") as f:
                for _ in range(R):
                    line = f.readline()
                    rounds.append(json.loads(line))
                    end += len(line)
        except (OSError, ValueError) as error:
            raise CheckpointError(
                f"checkpoint {self.path} records {R} rounds, but its history {self.log} holds "
                f"only {len(rounds)} readable ones; delete both files to start afresh."
            ) from error
        os.truncate(self.log, end)
        self.written = R
        return rounds


def load_checkpoint(path) -> RunState:
    """The :class:`RunState` saved at ``path`` (to inspect a checkpoint; ``run`` resumes it)."""
    return Checkpoint(path).load()[0]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, or made by another run or on other data."""


def _text(s: str) -> np.ndarray:
    return np.frombuffer(s.encode(), dtype=np.uint8)
