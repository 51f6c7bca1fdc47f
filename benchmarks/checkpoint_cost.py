"""Cost of one checkpoint write late in a long run with many clients.

A history of ``--rounds`` evaluated rounds, each with per-client metrics for ``--clients``
clients (the 10,000-device scale run), saved every 10 rounds. Format 1 (minifed 0.1) stored the
whole history as one NumPy string (UCS-4, four bytes a character) at every checkpoint, so a
write grew with the run; format 2 appends the 10 new rounds to a JSON-lines log and rewrites
only the state file (:mod:`minifed.simulation.checkpoint`).

    python benchmarks/checkpoint_cost.py [--rounds 300] [--clients 10000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from minifed.simulation import History, RunState
from minifed.simulation.checkpoint import Checkpoint


def history(rounds: int, clients: int, rng: np.random.Generator) -> History:
    """``rounds + 1`` records with every metric and one loss and accuracy per client."""
    records = [
        {"round": t, "clients": rng.choice(clients, clients // 10, replace=False).tolist(),
         "bytes_up": 1, "bytes_down": 1, "seconds": 0.1, "train_loss": 0.5,
         "train_accuracy": 0.8, "test_loss": 0.5, "test_accuracy": 0.8,
         "client_loss": rng.random(clients).tolist(),
         "client_accuracy": rng.random(clients).tolist(), "eval_seconds": 0.1}
        for t in range(rounds + 1)
    ]  # fmt: skip
    return History({"algorithm": "fedavg"}, records)


def format_1(path: Path, w, h: History) -> None:
    """The first format: ``w`` and the whole history as one string, every time."""
    np.savez(path, w=w, history=np.array(h.to_json()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--clients", type=int, default=10_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    h, w = history(args.rounds, args.clients, rng), np.zeros(610, np.float32)
    with tempfile.TemporaryDirectory() as folder:
        old, new = Path(folder) / "old.npz", Checkpoint(Path(folder) / "new.npz")
        start = time.perf_counter()
        format_1(old, w, h)
        old_seconds = time.perf_counter() - start
        head = History(h.config, h.rounds[:-10])
        new.save(RunState(w, head), "fingerprint")  # the checkpoints before this one
        start = time.perf_counter()
        new.save(RunState(w, h), "fingerprint")
        new_seconds = time.perf_counter() - start
        new_bytes = new.path.stat().st_size + new.log.stat().st_size - head_size(new, head)
        print(f"history of {args.rounds} rounds x {args.clients} clients, one checkpoint write:")
        print(
            f"  format 1 (whole history): {old.stat().st_size / 1e6:8.1f} MB {old_seconds:6.2f} s"
        )
        print(f"  format 2 (10 new rounds): {new_bytes / 1e6:8.1f} MB {new_seconds:6.2f} s")


def head_size(checkpoint: Checkpoint, head: History) -> int:
    """Bytes of the log lines written before the timed checkpoint."""
    with open(checkpoint.log, "rb") as f:
        return sum(len(f.readline()) for _ in head.rounds)


if __name__ == "__main__":
    main()
