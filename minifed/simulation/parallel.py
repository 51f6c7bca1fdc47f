"""``ProcessEngine``: the sampled clients of a round run in worker processes.

The clients' data ``X``, ``y`` and ``offsets`` are copied ONCE into a shared-memory segment that
every worker attaches; a second segment holds the round's ``w`` (written by the server) and the
stacks ``M[field]`` of messages (each worker writes its clients' rows). Per round only ``t``, the
broadcast state ``down`` and each worker's list of ``(row i, client k, state row of k)`` travel
through a pipe, plus the pickled ``(algorithm, protocol, seed)`` whenever it changes::

    server                                   worker j (one process per core, BLAS threads = 1)
    shared w[:] = w_t
    send (t, down, [(i, k, state_k), ...]) -> for (i, k, state_k) in its list:
                                                 M[:, i], state_k = client_update(w, X_k, y_k, ...)
    wait for every worker's "done"       <-  send "done" with the new state rows
    return a copy of M[:, :m] and the rows

The workers hold no state between rounds: client state lives in the server process and travels
with the round, so a worker is disposable and the number of workers cannot change the result.

Client ``k`` draws from ``client_rng(seed, t, k)``, so the result does not depend on the
number of workers nor on which worker runs which client: it equals :class:`SequentialEngine`'s,
bit for bit, as long as BLAS also runs single-threaded in the server process (for example
``OPENBLAS_NUM_THREADS=1``). A multi-threaded OpenBLAS may round large products differently
(measured: ``7e-8`` in one 2NN round), and for small batches it is slower anyway.

Workers are started with ``spawn`` (a fresh interpreter; ``fork`` after NumPy has started BLAS
threads is fragile) and with ``OPENBLAS_NUM_THREADS=1`` (and the OMP/MKL equivalents) so that two
workers do not fight over two cores. Failures never hang: a client that raises becomes a
:class:`ClientError` (with the remote traceback as ``__cause__`` of the original error), a worker
that dies becomes a :class:`WorkerError`; either way the workers are stopped and the
shared-memory segments unlinked.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import time
import traceback
import weakref
from contextlib import contextmanager
from multiprocessing.connection import wait

import numpy as np

from minifed._checks import check_int
from minifed.dataset import FederatedDataset
from minifed.simulation.engine import ClientError
from minifed.simulation.protocol import run_client
from minifed.simulation.shared import SharedArrays

BLAS_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class WorkerError(RuntimeError):
    """A worker process died, failed to start, or did not answer within the timeout."""


class RemoteTraceback(Exception):
    """The traceback text of an error raised in a worker (shown as the error's cause)."""

    def __str__(self) -> str:
        return f'\n"""\n{self.args[0]}"""'


# ----- the worker process -----


def _worker(conn, data_ref) -> None:
    """Worker loop: attach the data once, then run the clients of each round it is sent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    try:
        data = SharedArrays.attach(data_ref)
    except BaseException:
        conn.send(("init-error", traceback.format_exc()))
        return
    X, y, offsets = data.arrays["X"], data.arrays["y"], data.arrays["offsets"].tolist()
    conn.send(("ready",))
    buffers, job = None, None
    try:
        while (message := conn.recv())[0] == "run":
            _, t, tasks, round_ref, job_bytes, down = message
            if job_bytes is not None:
                try:
                    job = pickle.loads(job_bytes)
                except Exception:
                    conn.send(("job-error", traceback.format_exc()))
                    continue
            if buffers is None or buffers.ref[0] != round_ref[0]:
                buffers = _reattach(buffers, round_ref)
            conn.send(_run_clients(job, X, y, offsets, buffers.arrays, t, tasks, down))
    except (EOFError, OSError):  # the server is gone: nothing left to do
        pass
    finally:
        for shared in (buffers, data):
            if shared is not None:
                shared.close()


def _reattach(old: SharedArrays | None, ref: tuple) -> SharedArrays:
    if old is not None:
        old.close()
    shared = SharedArrays.attach(ref)
    shared.arrays["w"].flags.writeable = False  # clients read the global model, never write it
    return shared


def _run_clients(job, X, y, offsets, buffers, t, tasks, down) -> tuple:
    """Client updates for each ``(i, k, state_k)`` in ``tasks``, messages written into row ``i``
    of the shared stacks; answers ``("done", wall seconds, CPU seconds, [(i, new state), ...])``."""
    algorithm, protocol, seed = job
    w = buffers["w"]
    start, cpu, states = time.perf_counter(), time.process_time(), []
    for i, k, state_k in tasks:
        a, b = offsets[k], offsets[k + 1]
        try:
            message, state_k = run_client(
                algorithm, protocol, seed, w, X[a:b], y[a:b], t, k, down, state_k
            )
        except Exception as error:
            return ("client-error", k, _picklable(error), traceback.format_exc())
        for f, value in message.items():
            buffers[f"M/{f}"][i] = value
        states.append((i, state_k))
    return ("done", time.perf_counter() - start, time.process_time() - cpu, states)


def _picklable(error: Exception) -> Exception:
    """``error`` itself if it survives pickling, else a RuntimeError with its type and text."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


# ----- scheduling -----


def assign(costs, workers: int) -> list[list[int]]:
    """Split positions ``0..m-1`` among ``workers``: longest first, each to the least loaded.

    Greedy longest-processing-time scheduling, with ``costs[i]`` (here ``n_k``) as the cost of
    position ``i``; ties go to the lower position and the lower worker.

    >>> assign([5, 1, 4, 2, 3], 2)
    [[0, 3, 1], [2, 4]]
    """
    loads, plan = [0] * workers, [[] for _ in range(workers)]
    for i in sorted(range(len(costs)), key=lambda i: -costs[i]):
        j = loads.index(min(loads))
        plan[j].append(i)
        loads[j] += costs[i]
    return plan


@contextmanager
def environment(values: dict):
    """Set environment variables for the duration of the block (spawned children inherit them)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ----- the server side -----


def _round_layout(w: np.ndarray, protocol, m: int) -> dict:
    """The round segment: ``w`` and one ``(m, *shape)`` stack per message field."""
    layout = {"w": (w.shape, w.dtype)}
    layout.update({f"M/{f}": ((m, *shape), dtype) for f, (shape, dtype) in protocol.up.items()})
    return layout


def _fits(buffers: SharedArrays, layout: dict) -> bool:
    """Whether the round segment has the fields of ``layout``, each at least as many rows."""
    arrays = buffers.arrays
    return set(arrays) == set(layout) and all(
        arrays[k].dtype == np.dtype(dtype)
        and arrays[k].shape[1:] == tuple(shape[1:])
        and arrays[k].shape[0] >= shape[0]
        for k, (shape, dtype) in layout.items()
    )


class _Pool:
    """The engine's resources: processes, pipes, segments. Holds no reference to the engine, so
    ``weakref.finalize`` can release them when the engine is collected or at exit."""

    def __init__(self, ctx, data: FederatedDataset, workers: int):
        self.data, self.buffers, self.procs, self.conns = None, None, [], []
        self.pending: set[int] = set()  # workers whose answer is awaited
        self.job, self.has_job = None, set()  # pickled (algorithm, protocol, seed); who has it
        try:
            self.data = SharedArrays.create({"X": data.X, "y": data.y, "offsets": data.offsets})
            with environment(BLAS_ENV):
                for _ in range(workers):
                    self._start(ctx)
        except BaseException:  # e.g. an algorithm that does not pickle: leave nothing behind
            self.release()
            raise

    def _start(self, ctx) -> None:
        here, there = ctx.Pipe()
        args = (there, self.data.ref)
        proc = ctx.Process(target=_worker, args=args, daemon=True)
        self.conns.append(here)
        proc.start()
        there.close()
        self.procs.append(proc)
        self.pending.add(len(self.procs) - 1)  # awaiting its "ready"

    def release(self) -> None:
        """Stop the workers (politely if idle, else terminate), close pipes, unlink segments."""
        for j, conn in enumerate(self.conns):
            if j not in self.pending:
                try:
                    conn.send(("stop",))
                except OSError:
                    pass
        for j, proc in enumerate(self.procs):
            proc.join(timeout=0.05 if j in self.pending else 2.0)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=2.0)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self.conns:
            conn.close()
        self.procs, self.conns, self.pending = [], [], set()
        for shared in (self.buffers, self.data):
            if shared is not None:
                shared.close()


class ProcessEngine:
    """Runs each round's clients in worker processes, data in shared memory.

    Same interface and same results as :class:`~minifed.simulation.SequentialEngine`. Like it,
    the engine holds the data only; the algorithm and the seed come with each round, so one
    engine can serve several runs (the workers get the pickled algorithm when it changes).

    Parameters
    ----------
    data : FederatedDataset
        Its ``X``, ``y`` and ``offsets`` are copied once into shared memory.
    workers : int, optional
        Number of worker processes, ``os.cpu_count()`` by default.
    start_method : {"spawn", "forkserver", "fork"}
        How workers start; ``spawn`` (the default) is the safe choice with threaded BLAS.
    timeout : float, optional
        Seconds to wait for a round's answers before giving up (``None``: wait while the
        workers are alive; a dead worker is detected at once).

    Raises
    ------
    ClientError
        From :meth:`run_clients`, when a client's update raises; the original error is its
        ``__cause__`` and the worker's traceback text that error's ``__cause__``.
    WorkerError
        When a worker dies or does not answer. After either error the engine is closed.

    Examples
    --------
    >>> from minifed.algorithms import FedAvg
    >>> from minifed.models import SoftmaxRegression
    >>> from minifed.simulation import run
    >>> data = FederatedDataset.from_clients([(np.eye(3), [0, 1, 2]), (np.ones((2, 3)), [1, 1])])
    >>> fedavg = FedAvg(SoftmaxRegression(3, 3), lr=0.1)
    >>> with ProcessEngine(data, workers=2) as engine:  # one pool for several runs
    ...     runs = [run(fedavg, data, 2, fraction=1.0, seed=s, engine=engine) for s in (0, 1)]
    >>> [len(history) for w, history in runs]
    [3, 3]
    """

    def __init__(
        self,
        data: FederatedDataset,
        workers: int | None = None,
        *,
        start_method: str = "spawn",
        timeout: float | None = None,
    ):
        self.data = data
        workers = (os.cpu_count() or 1) if workers is None else workers
        self.workers = check_int("workers", workers, minimum=1)
        self.timeout = timeout
        # per worker, wall and CPU seconds spent on clients in the last round (CPU < wall
        # means the worker waited for a core, e.g. other programs were running)
        self.busy_seconds, self.cpu_seconds = [0.0] * self.workers, [0.0] * self.workers
        self._states: list = []  # new client-state rows of the round being collected
        ctx = mp.get_context(start_method)
        self._pool = _Pool(ctx, data, self.workers)
        self._finalizer = weakref.finalize(self, self._pool.release)

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers (empty once the engine is closed)."""
        return [proc.pid for proc in self._pool.procs]

    def run_clients(self, job, w: np.ndarray, t: int, S, down=None, states=None):
        """Client updates of round ``t`` computed by the workers; see
        :meth:`SequentialEngine.run_clients` for the arguments and the result."""
        if not self._finalizer.alive:
            raise RuntimeError("this ProcessEngine is closed; create a new one.")
        S = np.asarray(S, dtype=np.int64)
        try:
            self._collect(t)  # the workers' "ready" on the first call
            self._set_job(job)
            layout = _round_layout(w, job[1], len(S))
            buffers = self._buffers(layout)
            buffers.arrays["w"][...] = w
            self._states = [None] * len(S)
            self._send(t, S, buffers.ref, down or {}, states)
            self._collect(t)
            M = {f: buffers.arrays[f"M/{f}"][: len(S)].copy() for f in job[1].up}
            return M, (None if states is None else self._states)  # buffers are reused
        except BaseException:  # ClientError, WorkerError, KeyboardInterrupt: shut down cleanly
            self.close()
            raise

    def _set_job(self, job) -> None:
        """Pickle ``(algorithm, protocol, seed)``; workers get it again only when it changes."""
        job_bytes = pickle.dumps(job)
        if job_bytes != self._pool.job:
            self._pool.job, self._pool.has_job = job_bytes, set()

    def _buffers(self, layout: dict) -> SharedArrays:
        """The round segment (``w`` and the message stacks), re-created when it does not fit."""
        pool = self._pool
        if pool.buffers is None or not _fits(pool.buffers, layout):
            if pool.buffers is not None:
                pool.buffers.close()
                pool.buffers = None
            pool.buffers = SharedArrays.create(layout)
        return pool.buffers

    def _send(self, t: int, S: np.ndarray, ref: tuple, down: dict, states) -> None:
        pool = self._pool
        self.busy_seconds, self.cpu_seconds = [0.0] * self.workers, [0.0] * self.workers
        for j, positions in enumerate(assign(self.data.n_k[S].tolist(), self.workers)):
            if positions:
                tasks = [(i, int(S[i]), None if states is None else states[i]) for i in positions]
                job = None if j in pool.has_job else pool.job
                try:
                    pool.conns[j].send(("run", int(t), tasks, ref, job, down))
                except OSError as error:
                    raise WorkerError(self._death(j, t)) from error
                pool.has_job.add(j)
                pool.pending.add(j)

    def _collect(self, t: int) -> None:
        """Wait for the answer of every pending worker; raise on an error or a dead worker."""
        pool = self._pool
        while pool.pending:
            waiting = {pool.conns[j]: j for j in pool.pending}
            waiting.update({pool.procs[j].sentinel: j for j in pool.pending})
            ready = wait(list(waiting), timeout=self.timeout)
            if not ready:
                raise WorkerError(f"round {t}: no answer from the workers in {self.timeout} s.")
            for j in sorted({waiting[r] for r in ready}):
                self._receive(j, t)

    def _receive(self, j: int, t: int) -> None:
        pool = self._pool
        conn = pool.conns[j]
        try:
            message = conn.recv() if conn.poll() else ("died",)
        except (EOFError, OSError):
            message = ("died",)
        pool.pending.discard(j)
        if message[0] == "done":
            self.busy_seconds[j], self.cpu_seconds[j], states = message[1:]
            for i, state_i in states:
                self._states[i] = state_i
        elif message[0] == "client-error":
            _, k, error, remote = message
            error.__cause__ = RemoteTraceback(remote)
            raise ClientError(k, t, error) from error
        elif message[0] == "init-error":
            raise WorkerError(f"worker {j} failed to start:\n{message[1]}")
        elif message[0] == "job-error":
            raise WorkerError(
                f"worker {j} could not load the algorithm (a class defined in a notebook or in "
                "the __main__ of a script cannot be imported by worker processes: move it into "
                f"a module, or run with workers=1):\n{message[1]}"
            )
        elif message[0] == "died":
            pool.pending.add(j)  # still unanswered: release() must not wait for it
            raise WorkerError(self._death(j, t))

    def _death(self, j: int, t: int) -> str:
        proc = self._pool.procs[j]
        proc.join(timeout=1.0)
        code = proc.exitcode
        how = f"was killed by signal {-code}" if code and code < 0 else f"exited with code {code}"
        return (
            f"worker {j} (pid {proc.pid}) {how} during round {t}; the engine was shut down "
            "(a Python error of the worker, if any, is printed on stderr above)."
        )

    def close(self) -> None:
        """Stop the workers and unlink the shared memory (safe to call twice)."""
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
