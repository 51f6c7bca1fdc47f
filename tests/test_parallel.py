"""ProcessEngine: same results as the sequential loop, clear errors, nothing left behind."""

import multiprocessing as mp
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
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
from minifed.simulation import scheduling
from minifed.simulation.scheduling import FIRST_ROUND, assign
from minifed.simulation.protocol import check_algorithm
from minifed.simulation.shared import SHM_DIR, SHM_PREFIX, SharedArrays, remove_orphans

ROOT = Path(__file__).resolve().parents[1]

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


# ----- a run never loses its work: killed runs, stopped workers, scripts workers cannot import ---


def python(*args, cwd=None, env=(), timeout=60) -> tuple[subprocess.CompletedProcess, int]:
    """Run ``python *args`` with minifed importable; returns the result and the child's pid."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **dict(env)}
    proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), proc.pid


def segments_of(pid: int) -> list[str]:
    return sorted(p.name for p in SHM_DIR.glob(f"{SHM_PREFIX}{pid}_*"))


@pytest.mark.skipif(not SHM_DIR.is_dir(), reason="segments are listed in /dev/shm on Linux only")
def test_segments_of_a_killed_run_are_removed_by_the_next_engine():
    import fcntl  # POSIX only

    code = (
        "import time, numpy as np\n"
        "from minifed.simulation.shared import SharedArrays\n"
        "shared = SharedArrays.create({'X': np.zeros((1000, 100))})\n"
        "print(shared.shm.name, flush=True)\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)  # fmt: skip
    try:
        name = proc.stdout.readline().strip()
    finally:  # like `timeout -s KILL` or a scheduler: the whole group, resource tracker included
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert name.startswith(f"{SHM_PREFIX}{proc.pid}_") and (SHM_DIR / name).exists()
    mine = SharedArrays.create({"a": np.zeros(3)})  # live: this process holds it
    with ProcessEngine(uneven_federation(), workers=1):
        assert not (SHM_DIR / name).exists()
        assert (SHM_DIR / mine.shm.name).exists()
    mine.close()

    # A pid that looks dead (here the killed run's) but a lock held: a process in another pid
    # namespace sharing /dev/shm (containers). Kept until its lock is released.
    fake = SHM_DIR / f"{SHM_PREFIX}{proc.pid}_0123456789ab"
    fake.write_bytes(b"x")
    try:
        with open(fake, "rb") as held:
            fcntl.flock(held, fcntl.LOCK_SH)
            assert fake.name not in remove_orphans() and fake.exists()
        assert fake.name in remove_orphans() and not fake.exists()
    finally:
        fake.unlink(missing_ok=True)
    assert our_segments() == []


def stop_a_worker_in_round_2(timeout):
    """Round 1 runs; then worker 0 is stopped (SIGSTOP) and round 2 must end, not hang."""
    algorithm = FedAvg(SoftmaxRegression(4, 3), lr=0.1)
    fed = uneven_federation()
    w = algorithm.model.init(np.random.default_rng(0))
    job = (algorithm, check_algorithm(algorithm, w)[0], 0)
    engine = ProcessEngine(fed, workers=2, timeout=timeout)
    pids = engine.pids
    try:
        engine.run_clients(job, w, 1, np.arange(fed.K))
        os.kill(pids[0], signal.SIGSTOP)
        start = time.perf_counter()
        with pytest.raises(WorkerError) as info:
            engine.run_clients(job, w, 2, np.arange(fed.K))
        waited = time.perf_counter() - start
    finally:
        engine.close()  # kills the stopped worker (SIGKILL acts on stopped processes)
    assert_all_released(pids)
    message = str(info.value)
    assert message.startswith("round 2: worker 0 (pid ")  # worker 1 answered
    return message, float(re.search(r"no answer within ([\d.]+) s", message)[1]), waited


def test_a_stopped_worker_ends_the_round_after_the_timeout():
    with pytest.raises(ValueError, match="timeout"):
        ProcessEngine(uneven_federation(), workers=2, timeout=0)
    message, limit, waited = stop_a_worker_in_round_2(timeout=1.0)
    assert "no answer within 1 s (timeout=1.0)" in message
    assert limit <= waited < limit + 3.0


def test_the_default_time_limit_follows_the_measured_pace(monkeypatch):
    monkeypatch.setattr(scheduling, "FLOOR", 0.5)  # the one-minute floor, shortened for the test
    with ProcessEngine(uneven_federation(), workers=2) as engine:
        assert engine.time_limit() == FIRST_ROUND  # starting: nothing measured yet
    message, limit, waited = stop_a_worker_in_round_2(timeout="auto")
    assert "(20 x the expected time of the clients, at least 0.5 s)" in message
    assert 0.5 <= limit < 2.0  # round 1 took milliseconds, 20 x that is about the floor
    assert limit <= waited < limit + 3.0


def fedavg_script(body: str) -> str:
    return textwrap.dedent("""\
        import numpy as np
        from minifed.algorithms import FedAvg
        from minifed.dataset import FederatedDataset
        from minifed.models import SoftmaxRegression
        from minifed.simulation import run

        def data():
            rng = np.random.default_rng(0)
            X, y = rng.normal(size=(40, 4)), rng.integers(0, 3, size=40)
            return FederatedDataset(X, y, np.array_split(np.arange(40), 4), X, y)
        """) + textwrap.dedent(body)


def test_a_script_without_the_main_guard_gets_one_sentence(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(fedavg_script("""\
        print("script body")
        run(FedAvg(SoftmaxRegression(4, 3), lr=0.1), data(), 1, fraction=1.0, workers=2)
        """))  # fmt: skip
    line = next(i for i, text in enumerate(script.read_text().splitlines(), 1) if "run(" in text)
    result, pid = python(str(script), cwd=tmp_path)
    assert result.returncode != 0
    assert result.stdout.count("script body") == 1  # no worker was started to run it again
    assert result.stderr.strip().splitlines()[-1] == (
        f"RuntimeError: train.py, line {line}, starts worker processes from the top level of the "
        "script, and every worker imports train.py again: put the script's code under "
        '`if __name__ == "__main__":` (or run with workers=1).'
    )
    assert segments_of(pid) == []
    # `python -m package` does not import the package's __main__.py in the workers: no guard
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__main__.py").write_text(fedavg_script("""\
        w, history = run(FedAvg(SoftmaxRegression(4, 3), lr=0.1), data(), 1, workers=2)
        print("rounds", len(history))
        """))  # fmt: skip
    result, _ = python("-m", "pkg", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "rounds 2\n"), result.stderr


def test_an_algorithm_class_the_workers_cannot_import_is_named(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(fedavg_script("""\
        class TopLevel(FedAvg):  # the workers import the script: they find this class
            pass

        if __name__ == "__main__":
            class Hidden(FedAvg):  # workers do not run this block: they cannot find it
                pass

            run(TopLevel(SoftmaxRegression(4, 3), lr=0.1), data(), 1, workers=2)
            print("top-level class: fine")
            run(Hidden(SoftmaxRegression(4, 3), lr=0.1), data(), 1, workers=2)
        """))  # fmt: skip
    result, pid = python(str(script), cwd=tmp_path)
    assert result.returncode != 0 and result.stdout == "top-level class: fine\n"
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("minifed.simulation.parallel.WorkerError: round 1: worker processes "
                           "cannot import class Hidden, defined in __main__")  # fmt: skip
    assert "or run with workers=1." in last and "exited with code" not in result.stderr
    assert segments_of(pid) == []


def test_workers_1_and_2_agree_bit_for_bit_when_blas_is_single_threaded_here(tmp_path):
    """The condition the docstrings state: BLAS threads = 1 in the calling process, set before
    NumPy is imported; products of the 2NN's sizes, which a threaded BLAS splits."""
    script = tmp_path / "same.py"
    script.write_text(textwrap.dedent("""\
        import hashlib
        import numpy as np
        from minifed.algorithms import FedAvg
        from minifed.dataset import FederatedDataset
        from minifed.models import MLP
        from minifed.simulation import run

        if __name__ == "__main__":
            rng = np.random.default_rng(0)
            X = rng.normal(size=(400, 784)).astype(np.float32)
            y = rng.integers(0, 10, size=400)
            data = FederatedDataset(X, y, np.array_split(np.arange(400), 4), X, y)
            fedavg = FedAvg(MLP([784, 200, 200, 10]), lr=0.05, batch_size=50)
            for workers in (1, 2):
                w, _ = run(fedavg, data, 2, fraction=1.0, workers=workers, eval_train=False)
                print(hashlib.sha256(w.tobytes()).hexdigest())
        """))  # fmt: skip
    single = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result, _ = python(str(script), env=single)
    hashes = result.stdout.split()
    assert result.returncode == 0 and len(hashes) == 2, result.stderr
    assert hashes[0] == hashes[1]


def test_a_script_edited_while_it_runs_is_not_refused_by_mistake(tmp_path):
    """The guard check reads the script's source; once the file changed, its lines no longer
    match the running code, so the check stands aside rather than refuse a guarded call."""
    script = tmp_path / "edited.py"
    script.write_text(
        textwrap.dedent("""
        import os, time
        from pathlib import Path
        from minifed.simulation.guards import refuse_unguarded_main

        def main():
            path = Path(__file__)
            text = path.read_text()
            path.write_text("\\n" * 40 + text)  # someone edits the script: lines move
            future = time.time() + 10
            os.utime(path, (future, future))
            refuse_unguarded_main()
            print("not refused")

        if __name__ == "__main__":
            main()
    """)
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0 and "not refused" in result.stdout, result.stderr
