"""ProcessEngine: same results as the sequential loop, clear errors, nothing left behind."""

import multiprocessing as mp
import os
import pickle
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from minifed.algorithms import FedAvg
from minifed.dataset import FederatedDataset
from minifed.models import SoftmaxRegression
from minifed.simulation import (
    ClientError,
    ProcessEngine,
    SequentialEngine,
    WorkerError,
    run,
)
from minifed.simulation.parallel import assign
from minifed.simulation.protocol import check_algorithm
from minifed.simulation.shared import SHM_PREFIX

WALL_CLOCK = ("seconds", "eval_seconds")


def uneven_federation(sizes=(5, 40, 12, 90, 7, 33, 60, 18, 3, 25), d=4, C=3, seed=0, bad=None):
    """Clients of different sizes (so that scheduling by size matters); ``bad`` gets a label
    outside ``range(C)``, which makes its update raise."""
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    y = rng.integers(0, C, size=n)
    X = rng.normal(size=(n, d)) + 2.0 * np.eye(C, d)[y]
    bounds = np.cumsum([0, *sizes])
    if bad is not None:
        y[bounds[bad]] = C + 2
    indices = np.split(np.arange(n), bounds[1:-1])
    return FederatedDataset(X, y, indices, X[:50], y[:50] % C, name="uneven")


def without_wall_clock(history):
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in history.rounds]


def our_segments():
    return sorted(p.name for p in Path("/dev/shm").glob(f"{SHM_PREFIX}{os.getpid()}_*"))


def assert_all_released(pids):
    assert our_segments() == []
    assert mp.active_children() == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # joined and reaped: the pid no longer exists


@pytest.fixture
def algorithm():
    return FedAvg(SoftmaxRegression(4, 3), lr=0.1, epochs=2, batch_size=8)


def test_assign_balances_by_size_and_covers_every_client():
    costs = [5, 40, 12, 90, 7, 33, 60, 18, 3, 25]
    plan = assign(costs, 3)
    assert sorted(i for part in plan for i in part) == list(range(len(costs)))
    loads = [sum(costs[i] for i in part) for part in plan]
    assert max(loads) - min(loads) <= max(costs[i] for i in range(len(costs)) if costs[i] < 90)
    assert assign([1, 1], 4) == [[0], [1], [], []]


def test_workers_give_bit_identical_histories_and_resume_across_worker_counts(algorithm, tmp_path):
    fed = uneven_federation()
    kwargs = dict(fraction=0.5, seed=4, eval_every=2)
    w1, h1 = run(algorithm, fed, 4, workers=1, **kwargs)
    w2, h2 = run(algorithm, fed, 4, workers=2, **kwargs)
    np.testing.assert_array_equal(w1, w2)
    assert without_wall_clock(h1) == without_wall_clock(h2)
    assert h1.config == h2.config  # the worker count is not part of the run's identity
    path = tmp_path / "run.npz"
    run(algorithm, fed, 2, workers=2, checkpoint=path, **kwargs)
    w3, h3 = run(algorithm, fed, 4, workers=1, checkpoint=path, **kwargs)
    np.testing.assert_array_equal(w1, w3)
    assert without_wall_clock(h1) == without_wall_clock(h3)
    assert_all_released([])


def test_one_worker_engine_equals_sequential_engine_and_keeps_row_order(algorithm):
    fed = uneven_federation()
    w = algorithm.model.init(np.random.default_rng(1))
    S = np.array([8, 3, 0, 6, 1])  # unsorted on purpose: row i of M belongs to S[i]
    job = (algorithm, check_algorithm(algorithm, w)[0], 2)
    expected, _ = SequentialEngine(fed).run_clients(job, w, 5, S)
    with ProcessEngine(fed, workers=1) as engine:
        M, states = engine.run_clients(job, w, 5, S)
        np.testing.assert_array_equal(M["M"], expected["M"])
        assert states is None  # FedAvg keeps no client state
        np.testing.assert_array_equal(engine.run_clients(job, w, 5, S[:2])[0]["M"], M["M"][:2])
        pids = engine.pids
    assert_all_released(pids)
    with pytest.raises(RuntimeError, match="closed"):
        engine.run_clients(job, w, 5, S)


def test_a_client_that_raises_is_named_with_its_round_and_traceback(algorithm):
    fed = uneven_federation(bad=3)
    w = algorithm.model.init(np.random.default_rng(1))
    engine = ProcessEngine(fed, workers=2)
    pids = engine.pids
    job = (algorithm, check_algorithm(algorithm, w)[0], 0)
    with pytest.raises(ClientError, match=r"client 3 failed in round 7: IndexError") as info:
        engine.run_clients(job, w, 7, np.arange(fed.K))
    assert (info.value.k, info.value.t) == (3, 7)
    original = info.value.__cause__
    assert isinstance(original, IndexError)
    assert "Traceback" in str(original.__cause__)  # the worker's traceback text
    assert_all_released(pids)  # the engine shut itself down


def slow_federation():
    """Client 0 has 20,000 samples (seconds of work at E = 50), the others a few."""
    return uneven_federation(sizes=(20_000, 6, 6, 6))


def run_slow_round_while(action, delay=0.3):
    """Run a quick round (workers ready), then a slow one during which ``action`` happens."""
    algorithm = FedAvg(SoftmaxRegression(4, 3), lr=0.01, epochs=50, batch_size=8)
    fed = slow_federation()
    engine = ProcessEngine(fed, workers=2)
    w = algorithm.model.init(np.random.default_rng(0))
    job = (algorithm, check_algorithm(algorithm, w)[0], 0)
    engine.run_clients(job, w, 1, np.array([1, 2, 3]))
    timer = threading.Timer(delay, action, args=(engine,))
    timer.start()
    try:
        engine.run_clients(job, w, 2, np.array([0, 1]))
    finally:
        timer.join()
        pids = engine.pids
    return engine, pids


def test_a_worker_killed_mid_round_is_reported_not_awaited():
    pids = []

    def kill_busy_worker(engine):
        pids.extend(engine.pids)
        os.kill(engine.pids[0], signal.SIGKILL)  # worker 0 runs the big client 0

    with pytest.raises(WorkerError, match=r"worker 0 \(pid \d+\) was killed by signal 9"):
        run_slow_round_while(kill_busy_worker)
    assert_all_released(pids)


def test_keyboard_interrupt_shuts_the_pool_down():
    pids = []

    def interrupt(engine):
        pids.extend(engine.pids)
        os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        run_slow_round_while(interrupt)
    assert_all_released(pids)


def test_run_refuses_an_engine_and_workers_together(algorithm):
    fed = uneven_federation()
    with pytest.raises(ValueError, match="engine or workers"):
        run(algorithm, fed, 1, engine=SequentialEngine(fed), workers=2)
    with pytest.raises(ValueError, match="another FederatedDataset"):
        run(algorithm, fed, 1, engine=SequentialEngine(uneven_federation(seed=1)))


def test_an_algorithm_that_does_not_pickle_leaves_nothing_behind():
    class Local(FedAvg):  # a local class cannot be pickled for the workers
        pass

    with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):
        run(Local(SoftmaxRegression(4, 3), lr=0.1), uneven_federation(), 1, workers=2)
    assert_all_released([])


def test_one_engine_serves_several_runs_with_the_seed_of_each(algorithm):
    """The engine holds data only: the seed and the algorithm come from ``run``."""
    fed = uneven_federation()
    other = FedAvg(SoftmaxRegression(4, 3), lr=0.05, epochs=1, batch_size=4)
    with ProcessEngine(fed, workers=2) as engine:
        shared = [run(a, fed, 2, fraction=0.5, seed=s, engine=engine) for a, s in
                  [(algorithm, 5), (other, 6), (algorithm, 7)]]  # fmt: skip
    for (a, s), (w, _) in zip([(algorithm, 5), (other, 6), (algorithm, 7)], shared, strict=True):
        np.testing.assert_array_equal(w, run(a, fed, 2, fraction=0.5, seed=s)[0])
