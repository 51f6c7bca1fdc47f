"""``History``: what a run records, round by round, and its JSON form."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


class History:
    """The record of a run: its configuration and one entry per round.

    Every entry has ``round``, ``clients`` (the sampled ids), ``bytes_up``, ``bytes_down`` (bytes
    of the arrays actually sent in that round) and ``seconds`` (wall time of that round). On
    evaluation rounds it also has ``train_loss`` (the objective ``F(w)``), ``train_accuracy``,
    ``test_loss``, ``test_accuracy``, ``client_loss`` and ``client_accuracy`` (one per client),
    and, when every client has its own test set (``FederatedDataset.from_silos``),
    ``client_test_loss`` and ``client_test_accuracy``; elsewhere these are ``None``.
    """

    def __init__(self, config: dict | None = None, rounds: list[dict] | None = None, stopped=None):
        self.config = dict(config or {})
        self.rounds = list(rounds or [])
        self.stopped = stopped  # None, "target" or "callback": why the run ended early

    def __len__(self) -> int:
        return len(self.rounds)

    def __eq__(self, other) -> bool:
        return isinstance(other, History) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        last = next((r for r in reversed(self.rounds) if r.get("test_accuracy") is not None), None)
        acc = f", last test accuracy {last['test_accuracy']:.4f}" if last else ""
        return f"History({self.config.get('algorithm', '?')}, {len(self)} rounds{acc})"

    def metric(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(rounds, values)`` of a metric over the rounds where it was recorded."""
        pairs = [(r["round"], r[name]) for r in self.rounds if r.get(name) is not None]
        if not pairs and self.rounds and name not in self.rounds[0]:
            raise KeyError(f"no metric {name!r}; the history has {sorted(self.rounds[0])}.")
        t, v = zip(*pairs, strict=True) if pairs else ((), ())
        return np.asarray(t, dtype=np.int64), np.asarray(v, dtype=np.float64)

    def cumulative(self, name: str) -> np.ndarray:
        """Running total of a per-round quantity, e.g. ``bytes_up`` or ``seconds``."""
        return np.cumsum([r[name] for r in self.rounds], dtype=np.float64)

    def rounds_to(self, target: float, metric: str = "test_accuracy") -> int | None:
        """The first round whose ``metric`` reached ``target`` (``None`` if it never did)."""
        for r in self.rounds:
            if r.get(metric) is not None and r[metric] >= target:
                return int(r["round"])
        return None

    def to_dict(self) -> dict:
        return {"config": self.config, "stopped": self.stopped, "rounds": self.rounds}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        for key in ("config", "rounds"):
            if key not in d:
                raise ValueError(f"not a minifed history: the key {key!r} is missing.")
        return cls(d["config"], d["rounds"], d.get("stopped"))

    def to_json(self) -> str:
        return json.dumps(json_safe(self.to_dict()), indent=1, allow_nan=False)

    def save(self, path) -> Path:
        """Write the history as JSON (floats round-trip exactly)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path) -> History:
        return cls.from_dict(json.loads(Path(path).read_text()))


def json_safe(x):
    """NumPy scalars and arrays to Python values; non-finite floats to None."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple | np.ndarray):
        return [json_safe(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
