"""Client updates per second with many tiny clients: Synthetic(1, 1) with 10,000 devices.

FedAvg (E = 1, B = 10, eta = 0.01) of ``SoftmaxRegression(60, 10)`` (610 parameters), 1,000 of
the 10,000 clients per round (C = 0.1). The model is so small that Python overhead per step and
per client, not arithmetic, sets the speed.

    python benchmarks/scale.py [--rounds 5] [--workers 1 2] [--clients 10000]

Each configuration runs in a fresh process (1 BLAS thread per process) so that its peak memory
is its own: the server process, and the largest of its worker processes (shared-memory pages a
process touched count in its RSS, so the data appear in both).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from minifed.algorithms import FedAvg
from minifed.data import fedprox_synthetic
from minifed.dataset import FederatedDataset
from minifed.models import SoftmaxRegression
from minifed.simulation.parallel import BLAS_ENV, environment

from fedavg_round import timed_run  # benchmarks/ is on sys.path when run as a script

C, E, B, ETA = 0.1, 1, 10, 0.01


def generate(K: int, folder: Path) -> tuple[float, int]:
    """Write Synthetic(1, 1) with ``K`` devices to ``folder``; return seconds and rows."""
    start = time.perf_counter()
    X, y, device = fedprox_synthetic(1.0, 1.0, K, rng=np.random.default_rng(0))
    np.save(folder / "X.npy", X)
    np.save(folder / "y.npy", y)
    np.save(folder / "n_k.npy", np.bincount(device, minlength=K))
    return time.perf_counter() - start, len(y)


def load(folder: Path) -> FederatedDataset:
    """The saved devices as a federation (rows are already grouped by device)."""
    X, y, n_k = (np.load(folder / f"{name}.npy") for name in ("X", "y", "n_k"))
    indices = np.split(np.arange(len(y)), np.cumsum(n_k)[:-1])
    return FederatedDataset(X, y, indices, name="synthetic(1,1)")


def measure(folder: Path, rounds: int, workers: int) -> dict:
    """Median client updates per second over ``rounds`` rounds, and peak memory in MB."""
    data = load(folder)
    algorithm = FedAvg(SoftmaxRegression(60, 10), lr=ETA, epochs=E, batch_size=B)
    worker_peak = [0.0]

    def probe(engine):
        for pid in getattr(engine, "pids", []):
            worker_peak[0] = max(worker_peak[0], vm_hwm_mb(pid))

    _, history, stats = timed_run(algorithm, data, rounds, workers, probe)
    seconds = np.array([r["seconds"] for r in history.rounds[1:]])
    m = len(history.rounds[1]["clients"])
    steps = np.mean([np.ceil(data.n_k[r["clients"]] / B).sum() for r in history.rounds[1:]])
    mb = 1024.0  # ru_maxrss is in KiB on Linux
    return {
        "updates_per_s": m / float(np.median(seconds)),
        "seconds": float(np.median(seconds)),
        "steps": float(steps),
        "cpu": float(np.median(stats["cpu"])),
        "engine_ms": float(np.median(stats["engine"])) * 1e3,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / mb,
        "maxrss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / mb,
        "server_mb": vm_hwm_mb(),
        "worker_mb": worker_peak[0],
    }


def vm_hwm_mb(pid="self") -> float:
    """Peak resident memory of one process since its start (Linux ``VmHWM``; nan elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _child(queue, fn, args):
    queue.put(fn(*args))


def in_child(fn, *args):
    """``fn(*args)`` in a fresh spawned process with 1 BLAS thread."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with environment(BLAS_ENV):
        proc = ctx.Process(target=_child, args=(queue, fn, args))
        proc.start()
    result = queue.get()
    proc.join()
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clients", type=int, default=10_000)
    args = parser.parse_args(argv)
    print(f"cores {os.cpu_count()}; load {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seconds, n = in_child(generate, args.clients, folder)  # keeps this process small
        print(f"Synthetic(1,1): K={args.clients} clients, n={n:,} rows ({seconds:.0f} s to make)")
        columns = ("s/round", "steps", "updates/s", "CPU", "eng ms", "server MB", "worker MB")
        columns += ("maxrss MB",)
        print("\nworkers " + " ".join(f"{c:>10s}" for c in (*columns, "+children")))
        for workers in args.workers:
            r = in_child(measure, folder, args.rounds, workers)
            keys = (
                "seconds",
                "steps",
                "updates_per_s",
                "cpu",
                "engine_ms",
                "server_mb",
                "worker_mb",
            )
            values = [f"{r[k]:10.3f}" if k in ("seconds", "cpu") else f"{r[k]:10.0f}" for k in keys]
            values += [f"{r[k]:10.0f}" for k in ("maxrss_mb", "maxrss_children_mb")]
            print(f"{workers:7d} " + " ".join(values))
    print(f"\nsteps = local SGD steps per round (sum of ceil(n_k / B)); load {os.getloadavg()}")
    print("CPU = CPU seconds / wall seconds of the client work per worker (1.00: a core each)")
    print("eng ms = round time minus the busiest worker's client time (engine + server update)")
    print("server / worker MB: peak RSS of the server and of the largest worker (VmHWM, since")
    print("exec). maxrss: getrusage ru_maxrss of the server and of its largest reaped child;")
    print("Linux carries the parent's peak across fork+exec into it, so it overstates workers.")


if __name__ == "__main__":
    main()
