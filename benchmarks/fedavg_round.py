"""Seconds per FedAvg round of the 2NN against the GEMM-bound limit of this machine.

Workload (McMahan et al. 2017): MLP [784, 200, 200, 10] with ReLU on Fashion-MNIST (random data
of the same shapes when the files are absent), 100 IID clients of 600, C = 0.1, E = 5, B = 10,
eta = 0.05, float32.

    python benchmarks/fedavg_round.py [--rounds 20] [--workers 1 2]

Round time is the ``seconds`` field of the history, i.e. client updates plus server update of a
round, evaluation excluded (and evaluated only at rounds 0 and T). ``workers=1`` is the in-process
SequentialEngine, ``workers > 1`` the ProcessEngine; both runs must end with the same ``w``.

FLOPs per example, counting only the matrix products (multiply + add = 2 FLOPs):

    forward                 2 (784*200 + 200*200 + 200*10)          = 397,600
    backward, dF/dW_l       2 (784*200 + 200*200 + 200*10)          = 397,600
    backward, dF/dA_{l-1}   2 (200*200 + 200*10)   (none for X)     =  84,000
    total                                                           = 879,200

times E * n_k * m = 5 * 600 * 10 = 30,000 examples = 26.4 GFLOP per round. Bias, ReLU, softmax
and the update ``w -= eta g`` (2 d FLOPs per step, 1.2 GFLOP a round, memory-bound) are not
counted. The GEMM-bound limit is that count over the measured float32 rate of large matmuls.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

import numpy as np

from minifed.algorithms import FedAvg
from minifed.data import load_fashion_mnist
from minifed.dataset import FederatedDataset
from minifed.models.mlp import MLP, matmul
from minifed.partition import iid
from minifed.simulation import ProcessEngine, SequentialEngine, run
from minifed.simulation.parallel import BLAS_ENV, environment

SIZES = [784, 200, 200, 10]
K, C, E, B, ETA, N_K = 100, 0.1, 5, 10, 0.05, 600


def flops_per_example(sizes=SIZES) -> int:
    """Matmul FLOPs of one forward and backward pass (no input gradient for the first layer)."""
    layers = [a * b for a, b in itertools.pairwise(sizes)]
    return 2 * sum(layers) + 2 * sum(layers) + 2 * sum(layers[1:])


def round_flops() -> float:
    m = max(round(C * K), 1)
    return flops_per_example() * E * N_K * m


def gemm_rate(n: int = 2048, seconds: float = 1.5) -> float:
    """Best float32 GFLOP/s of ``(n, n) @ (n, n)`` over repeated products for ``seconds``."""
    rng = np.random.default_rng(0)
    A, Bm = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    out = A @ Bm
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        np.matmul(A, Bm, out=out)
        best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def _gemm_child(queue, barrier):
    barrier.wait()
    queue.put(gemm_rate())


def gemm_rate_processes(processes: int) -> float:
    """Summed GFLOP/s of ``processes`` single-threaded processes multiplying at the same time."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue, barrier = ctx.Queue(), ctx.Barrier(processes)
    with environment(BLAS_ENV):
        procs = [ctx.Process(target=_gemm_child, args=(queue, barrier)) for _ in range(processes)]
        for p in procs:
            p.start()
    rates = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    return sum(rates)


def _best_us(f, repeats: int = 200, rounds: int = 5) -> float:
    """Best mean microseconds of ``f()`` over ``rounds`` batches of ``repeats`` calls."""
    f()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            f()
        best = min(best, (time.perf_counter() - start) / repeats * 1e6)
    return best


def step_parts() -> dict:
    """Microseconds of one local step of the 2NN (B = 10) and of its matmuls and update."""
    rng = np.random.default_rng(0)
    model = MLP(SIZES)
    w, X, y = model.init(rng), rng.random((N_K, 784), dtype=np.float32), rng.integers(0, 10, N_K)
    g, g0 = np.empty_like(w), rng.normal(size=w.shape).astype(np.float32)
    (W1, W2, W3), _ = model._layers(w)
    (gW1, gW2, gW3), _ = model._layers(g)
    b = rng.permutation(N_K)[:B]
    Xb, A, dZ, dZ3 = (
        X[b],
        np.ones((B, 200), np.float32),
        np.ones((B, 200), np.float32),
        np.ones((B, 10), np.float32),
    )

    def step():
        model.loss_and_grad_(w, X[b], y[b], g)
        w.__isub__(np.multiply(ETA, g, out=g))

    def update():
        np.multiply(ETA, g0, out=g)
        w.__isub__(g)

    return {
        "whole step (gather, loss_and_grad_, update)": _best_us(step),
        "forward  X W1      (10x784 @ 784x200)": _best_us(lambda: matmul(Xb, W1)),
        "forward  A1 W2, A2 W3": _best_us(lambda: (matmul(A, W2), matmul(A, W3))),
        "backward X^T dZ1 -> gW1 (784x10 @ 10x200)": _best_us(lambda: matmul(Xb.T, dZ, out=gW1)),
        "backward A1^T dZ2, A2^T dZ3 -> gW2, gW3": _best_us(
            lambda: (matmul(A.T, dZ, out=gW2), matmul(A.T, dZ3, out=gW3))
        ),
        "backward dZ2 W2^T, dZ3 W3^T (transposed B)": _best_us(
            lambda: (matmul(dZ, W2.T), matmul(dZ3, W3.T))
        ),
        "update   w -= eta g (d = 199,210)": _best_us(update),
    }


def print_step_profile(parts: dict) -> None:
    """Where one local step's time goes, and what that means for a round on 2 workers."""
    step = parts.pop("whole step (gather, loss_and_grad_, update)")
    print(f"\none local step, 1 BLAS thread, best of 5 x 200 (us):  {step:7.1f}")
    for name, us in parts.items():
        print(f"  {name:46s} {us:7.1f}  {us / step:5.0%}")
    rest = step - sum(parts.values())
    print(f"  {'rest: bias, ReLU, softmax, gather, Python':46s} {rest:7.1f}  {rest / step:5.0%}")
    steps = E * N_K // B * max(round(C * K), 1)
    print(f"  x {steps} steps a round = {steps * step / 1e6:.2f} core-seconds")


def federation() -> tuple[FederatedDataset, str]:
    """Fashion-MNIST split IID over K clients, or random data of the same shapes."""
    try:
        X, y = load_fashion_mnist("train", download=False)
        source = "Fashion-MNIST"
    except Exception:
        rng = np.random.default_rng(0)
        X, y = rng.random((K * N_K, 784), dtype=np.float32), rng.integers(0, 10, K * N_K)
        source = "random data (Fashion-MNIST not found)"
    X = X.reshape(len(X), -1).astype(np.float32) / (255.0 if X.max() > 1 else 1.0)
    idx = iid(len(y), K, rng=np.random.default_rng(0))
    return FederatedDataset(X, y, idx, name="fashion-mnist"), source


def timed_run(algorithm, data, rounds: int, workers: int, probe=None):
    """Run with evaluation only at rounds 0 and T; return ``(w_T, history, stats)``.

    ``stats["cpu"][t]`` is the CPU time the clients of round ``t`` got over the wall time they
    took (per worker): 1.0 when every worker had a core to itself, 0.5 when other programs took
    half of the machine. ``stats["engine"][t]`` is the round's time not spent on clients by the
    busiest worker (sending, waiting, copying ``M``, the server update); NaN for workers=1.
    ``probe(engine)``, if given, is called after every round.
    """
    if workers == 1:
        engine = SequentialEngine(data)
    else:
        engine = ProcessEngine(data, workers=workers)
    cpu, overhead, clock = [], [], [time.perf_counter(), time.process_time()]

    def record(record, w):
        now = [time.perf_counter(), time.process_time()]
        if workers > 1:
            cpu.append(sum(engine.cpu_seconds) / max(sum(engine.busy_seconds), 1e-9))
            overhead.append(record["seconds"] - max(engine.busy_seconds))
        else:
            cpu.append((now[1] - clock[1]) / (now[0] - clock[0]))
            overhead.append(float("nan"))
        clock[:] = now
        if probe is not None:
            probe(engine)

    with engine:
        w, history = run(
            algorithm, data, rounds, fraction=C, seed=0, eval_every=10**9, engine=engine,
            callbacks=[record],
        )  # fmt: skip
    return w, history, {"cpu": np.array(cpu[1:]), "engine": np.array(overhead[1:])}


def time_rounds(rounds: int, workers: int):
    """``(w_T, seconds of rounds 1..T, stats)`` of the 2NN workload (see :func:`timed_run`)."""
    data, _ = federation()
    algorithm = FedAvg(MLP(SIZES), lr=ETA, epochs=E, batch_size=B)
    w, history, stats = timed_run(algorithm, data, rounds, workers)
    return w, np.array([r["seconds"] for r in history.rounds[1:]]), stats


def _child(queue, fn, args):
    queue.put(fn(*args))


def in_child(fn, *args, one_thread: bool = True):
    """``fn(*args)`` in a fresh spawned process, with 1 BLAS thread or the default number."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with environment(BLAS_ENV if one_thread else {}):
        proc = ctx.Process(target=_child, args=(queue, fn, args))
        proc.start()
    result = queue.get()
    proc.join()
    return result


def row(label: str, *cells: str) -> None:
    print(f"{label:46s} " + " ".join(f"{c:>8s}" for c in cells))


def print_limits(flops: float, cores: int) -> float:
    """Measure the float32 matmul rate both ways, print the GEMM-bound limits, return the first."""
    rate_all, rate_procs = gemm_rate(), gemm_rate_processes(cores)
    limit, limit_p = flops / rate_all / 1e9, flops / rate_procs / 1e9
    row("configuration", "GFLOP/s", "s/round", "x limit", "CPU", "eng ms")
    row("GEMM-bound limit, all cores, 1 process", f"{rate_all:.1f}", f"{limit:.3f}", "1.00")
    row(f"GEMM-bound limit, 1 thread x {cores} processes", f"{rate_procs:.1f}",
        f"{limit_p:.3f}", f"{limit_p / limit:.2f}")  # fmt: skip
    return limit


def print_rounds(flops, limit, rounds, workers, one_thread) -> np.ndarray:
    """Time ``rounds`` rounds in a fresh process, print a row, return ``w_T``."""
    w, seconds, stats = in_child(time_rounds, rounds, workers, one_thread=one_thread)
    med = float(np.median(seconds))
    label = f"workers={workers} ({'Sequential' if workers == 1 else 'Process'}Engine)"
    label += ", median" if one_thread else ", default BLAS thr."
    row(label, f"{flops / med / 1e9:.1f}", f"{med:.3f}", f"{med / limit:.2f}",
        f"{np.median(stats['cpu']):.2f}", f"{np.median(stats['engine']) * 1e3:.1f}")  # fmt: skip
    row("   min / first round (incl. start-up)", "", f"{seconds.min():.3f}", f"{seconds[0]:.3f}")
    return w


LEGEND = """\
CPU = median over rounds of (CPU seconds / wall seconds) of the client work, per worker: below
1.00 the workers waited for a core (other programs were running). eng ms = round time minus
the busiest worker's client time: what the engine and the server update add (median)."""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    help_default = "also time workers=1 with the default number of BLAS threads"
    parser.add_argument("--blas-default", action="store_true", help=help_default)
    args = parser.parse_args(argv)
    cores, flops = os.cpu_count() or 1, round_flops()
    tuned = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP", "MKL"))}
    print(f"cores {cores}; BLAS environment {tuned or 'default'}; load {os.getloadavg()}")
    print(f"FLOPs per example {flops_per_example():,}; per round {flops / 1e9:.2f} GFLOP")
    data, source = federation()
    print(f"data: {source}, {data!r}")
    print("each configuration runs in a fresh process; BLAS 1 thread per process unless said\n")
    limit = print_limits(flops, cores)
    configs = [(w, True) for w in args.workers] + [(1, False)] * args.blas_default
    results = {config: print_rounds(flops, limit, args.rounds, *config) for config in configs}
    first = next(iter(results.values()))
    same = [f"workers={w}{'' if one else ' default threads'}: {np.array_equal(v, first)}"
            for (w, one), v in results.items()]  # fmt: skip
    print(f"\nw_T bit-identical to the first row's: {', '.join(same)}; load {os.getloadavg()}")
    print_step_profile(in_child(step_parts))
    print(LEGEND)


if __name__ == "__main__":
    main()
