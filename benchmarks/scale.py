"""Client updates per second with many tiny clients: Synthetic(1, 1) with 10,000 devices.

FedAvg (E = 1, B = 10, eta = 0.01) of ``SoftmaxRegression(60, 10)`` (610 parameters), 1,000 of
the 10,000 clients per round (C = 0.1). The model is so small that Python overhead per step and
per client, not arithmetic, sets the speed.

    python benchmarks/scale.py [--rounds 5] [--workers 1 2] [--clients 10000] [--no-federation]

Every step runs in a fresh process (1 BLAS thread per process) so that its peak memory is its own
(Linux ``VmHWM``: the most resident memory the process ever had). The data steps: generating and
saving the devices, and ``load_federation("synthetic", "natural", K)`` (generation, 20% of every
device held out, ``FederatedDataset``: the command line's path). Then, per worker count, loading
the saved devices into a ``FederatedDataset`` and the rounds: the peak of the server process and
of the largest worker (shared-memory pages a process touched count in its RSS, so the data
appear in both). The last line is the largest of all these peaks.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from minifed.algorithms import FedAvg
from minifed.data import fedprox_synthetic
from minifed.dataset import FederatedDataset
from minifed.federations import load_federation
from minifed.models import SoftmaxRegression
from minifed.simulation.history import json_safe
from minifed.simulation.parallel import BLAS_ENV, environment

from fedavg_round import timed_run  # benchmarks/ is on sys.path when run as a script

C, E, B, ETA = 0.1, 1, 10, 0.01


def generate(K: int, folder: Path) -> dict:
    """Write Synthetic(1, 1) with ``K`` devices to ``folder``; its seconds, rows and peak MB."""
    start = time.perf_counter()
    X, y, device = fedprox_synthetic(1.0, 1.0, K, rng=np.random.default_rng(0))
    np.save(folder / "X.npy", X)
    np.save(folder / "y.npy", y)
    np.save(folder / "n_k.npy", np.bincount(device, minlength=K))
    return {"seconds": time.perf_counter() - start, "n": len(y), "peak_mb": vm_hwm_mb()}


def federation(K: int) -> dict:
    """Seconds and peak MB of ``load_federation("synthetic", "natural", K)``."""
    start = time.perf_counter()
    data = load_federation("synthetic", "natural", K, rng=np.random.default_rng(0))
    return {"seconds": time.perf_counter() - start, "n": data.n, "peak_mb": vm_hwm_mb()}


def load(folder: Path) -> FederatedDataset:
    """The saved devices as a federation (rows are already grouped by device: no copy)."""
    X, y, n_k = (np.load(folder / f"{name}.npy") for name in ("X", "y", "n_k"))
    indices = np.split(np.arange(len(y)), np.cumsum(n_k)[:-1])
    return FederatedDataset(X, y, indices, name="synthetic(1,1)", copy=False)


def measure(folder: Path, rounds: int, workers: int) -> dict:
    """Median client updates per second over ``rounds`` rounds, and peak memory in MB."""
    start = time.perf_counter()
    data = load(folder)
    load_seconds, load_mb = time.perf_counter() - start, vm_hwm_mb()
    algorithm = FedAvg(SoftmaxRegression(60, 10), lr=ETA, epochs=E, batch_size=B)
    worker_peak = [0.0]

    def probe(engine):
        for pid in getattr(engine, "pids", []):
            worker_peak[0] = max(worker_peak[0], vm_hwm_mb(pid))

    _, history, stats = timed_run(algorithm, data, rounds, workers, probe)
    seconds = np.array([r["seconds"] for r in history.rounds[1:]])
    m = len(history.rounds[1]["clients"])
    steps = np.mean([np.ceil(data.n_k[r["clients"]] / B).sum() for r in history.rounds[1:]])
    return {
        "updates_per_s": m / float(np.median(seconds)),
        "seconds": float(np.median(seconds)),
        "steps": float(steps),
        "cpu": float(np.median(stats["cpu"])),
        "engine_ms": float(np.median(stats["engine"])) * 1e3,
        "load_s": load_seconds,
        "load_mb": load_mb,
        "server_mb": vm_hwm_mb(),
        "worker_mb": worker_peak[0],
        "record_kb": len(json.dumps(json_safe(history.rounds[-1]))) / 1e3,  # evaluated round
    }


def vm_hwm_mb(pid="self") -> float:
    """Peak resident memory of one process since its start, in MB (Linux ``VmHWM``).

    Elsewhere: ``getrusage``'s ``ru_maxrss`` for this process (bytes on macOS), and nan for
    another process.
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    if pid == "self":
        unit = 1024.0**2 if sys.platform == "darwin" else 1024.0
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / unit
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


COLUMNS = {  # column -> (key of measure()'s result, format)
    "load s": ("load_s", "10.1f"),
    "s/round": ("seconds", "10.3f"),
    "steps": ("steps", "10.0f"),
    "updates/s": ("updates_per_s", "10.0f"),
    "CPU": ("cpu", "10.3f"),
    "eng ms": ("engine_ms", "10.0f"),
    "load MB": ("load_mb", "10.0f"),
    "server MB": ("server_mb", "10.0f"),
    "worker MB": ("worker_mb", "10.0f"),
    "record KB": ("record_kb", "10.0f"),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--no-federation", action="store_true", help="skip load_federation")
    args = parser.parse_args(argv)
    print(f"cores {os.cpu_count()}; load {os.getloadavg()}")
    peaks = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        steps = {"fedprox_synthetic + np.save": in_child(generate, args.clients, folder)}
        if not args.no_federation:
            steps["load_federation(natural)"] = in_child(federation, args.clients)
        print(f"\nSynthetic(1,1), K={args.clients} clients: data steps, each in a fresh process")
        print(f"{'step':30s} {'rows':>10s} {'seconds':>10s} {'peak MB':>10s}")
        for name, r in steps.items():
            print(f"{name:30s} {r['n']:10,d} {r['seconds']:10.1f} {r['peak_mb']:10.0f}")
            peaks.append(r["peak_mb"])
        print("\nworkers " + " ".join(f"{c:>10s}" for c in COLUMNS))
        for workers in args.workers:
            r = in_child(measure, folder, args.rounds, workers)
            print(f"{workers:7d} " + " ".join(format(r[k], f) for k, f in COLUMNS.values()))
            peaks += [r["server_mb"], r["worker_mb"]]
    print("\nload s / load MB = np.load + FederatedDataset: seconds, and peak MB just after it")
    print(f"steps = local SGD steps per round (sum of ceil(n_k / B)); load {os.getloadavg()}")
    print("CPU = CPU seconds / wall seconds of the client work per worker (1.00: a core each)")
    print("eng ms = round time minus the busiest worker's client time (engine + server update)")
    print("server / worker MB: peak RSS (VmHWM) of the server and of the largest worker process")
    print("record KB = JSON of one evaluated round with its per-client metrics; run(...,")
    print("  client_metrics_every=N) keeps those every N rounds, the other metrics every round")
    print(f"peak memory of the benchmark (largest single process): {np.nanmax(peaks):.0f} MB")


if __name__ == "__main__":
    main()
