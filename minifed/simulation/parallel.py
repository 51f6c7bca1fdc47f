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
number of workers nor on which worker runs which client: any two worker counts agree bit for bit.
They also equal :class:`SequentialEngine`'s (``workers=1``), which runs the clients in the
calling process, exactly when that process runs BLAS on one thread like the workers: when
``OPENBLAS_NUM_THREADS=1`` (``OMP_NUM_THREADS=1`` for an OpenMP build, ``MKL_NUM_THREADS=1`` for
MKL) is in the environment before NumPy is first imported. NumPy offers no way to change BLAS
threads afterwards (that takes ``threadpoolctl``); a multi-threaded BLAS rounds large products
differently (measured: ``7e-8`` in ``w`` after 3 rounds of the 2NN at ``B = 50``).

Workers are started with ``spawn`` (a fresh interpreter; ``fork`` after NumPy has started BLAS
threads is fragile) and with ``OPENBLAS_NUM_THREADS=1`` (and the OMP/MKL equivalents) so that two
workers do not fight over two cores. Failures never hang: a client that raises becomes a
:class:`ClientError` (with the remote traceback as ``__cause__`` of the original error), a worker
that dies, or stays silent past the round's time limit (stopped, hung), becomes a
:class:`WorkerError`; either way the workers are stopped and the shared-memory segments unlinked.
Segments left by a run killed with ``SIGKILL`` are removed by the next engine
(:func:`~minifed.simulation.shared.remove_orphans`). Spawned workers import the script's
``__main__``: a script that starts workers outside ``if __name__ == "__main__":``, or an
algorithm class the workers cannot import, is refused with one sentence saying so.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import time
import weakref
from multiprocessing.connection import wait

import numpy as np

from minifed._checks import check_int
from minifed.dataset import FederatedDataset
from minifed.simulation.engine import ClientError
from minifed.simulation.guards import main_objects, refuse_unguarded_main
from minifed.simulation import scheduling
from minifed.simulation.scheduling import adaptive_limit, assign
from minifed.simulation.shared import SharedArrays, remove_orphans
from minifed.simulation.worker import BLAS_ENV, RemoteTraceback, _worker, environment

TICK = 1.0  # seconds: the longest wait between checks of the time limit
__all__ = ["BLAS_ENV", "ProcessEngine", "WorkerError", "assign", "environment"]


class WorkerError(RuntimeError):
    """A worker process died, failed to start, or did not answer within the timeout."""


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
            remove_orphans()  # segments of runs that were killed (SIGKILL): see shared.py
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
        """Stop the workers (politely if idle, else kill: works on stopped ones too), close
        pipes, unlink segments."""
        for j, conn in enumerate(self.conns):
            if j not in self.pending:
                try:
                    conn.send(("stop",))
                except OSError:
                    pass
        for j, proc in enumerate(self.procs):
            if j not in self.pending:
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

    Bit for bit: any two worker counts give the same messages, hence the same history, always
    (workers run BLAS on one thread, and the server update runs in this process either way). They
    equal :class:`SequentialEngine`'s (``run(..., workers=1)``, clients in this process) when this
    process runs BLAS on one thread too, which only environment variables set before NumPy is
    first imported can ensure: ``OPENBLAS_NUM_THREADS=1`` (``OMP_NUM_THREADS=1`` for an OpenMP
    build, ``MKL_NUM_THREADS=1`` for MKL), e.g. ``OPENBLAS_NUM_THREADS=1 python script.py``.
    With a multi-threaded BLAS here, large products round differently: after 3 rounds of the 2NN
    (``B = 50``) the largest difference in ``w`` was ``7e-8``.

    Parameters
    ----------
    data : FederatedDataset
        Its ``X``, ``y`` and ``offsets`` are copied once into shared memory.
    workers : int, optional
        Number of worker processes, ``os.cpu_count()`` by default.
    start_method : {"spawn", "forkserver", "fork"}
        How workers start; ``spawn`` (the default) is the safe choice with threaded BLAS.
    timeout : "auto", float or None
        Seconds the workers get to answer in a round before the engine gives up (a worker that
        dies is detected at once; this is for one that is stopped, e.g. by ``SIGSTOP``, or hung).
        ``"auto"`` (the default) adapts the limit to the round's work (:func:`adaptive_limit`):
        30 minutes for the start and the first round of an algorithm, when nothing is measured
        yet; then 20 times the time the awaited clients should take at the slowest pace seen so
        far (per sample and per client), and at least a minute. ``None`` waits forever. Time
        during which this process is stopped (Ctrl-Z) does not count.

    Raises
    ------
    ClientError
        From :meth:`run_clients`, when a client's update raises; the original error is its
        ``__cause__`` and the worker's traceback text that error's ``__cause__``.
    WorkerError
        When a worker dies, does not answer in time (names the worker and the round), or cannot
        unpickle the algorithm (names the class defined in ``__main__``). After either error
        the engine is closed.
    RuntimeError
        From the constructor, when a script creates workers outside
        ``if __name__ == "__main__":`` (every worker would import the script again).

    Notes
    -----
    Shared-memory segments of earlier runs killed by ``SIGKILL`` are removed when an engine
    starts (see :mod:`minifed.simulation.shared`).

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
        timeout: float | str | None = "auto",
    ):
        self.data = data
        workers = (os.cpu_count() or 1) if workers is None else workers
        self.workers = check_int("workers", workers, minimum=1)
        if not (timeout in ("auto", None) or (isinstance(timeout, int | float) and timeout > 0)):
            raise ValueError(f'timeout must be "auto", None or seconds > 0, got {timeout!r}.')
        self.timeout = timeout
        # per worker, wall and CPU seconds spent on clients in the last round (CPU < wall
        # means the worker waited for a core, e.g. other programs were running)
        self.busy_seconds, self.cpu_seconds = [0.0] * self.workers, [0.0] * self.workers
        self._states: list = []  # new client-state rows of the round being collected
        self._job, self._rates, self._loads = None, None, {}  # see adaptive_limit
        if start_method != "fork":  # spawn and forkserver import __main__ in every worker
            refuse_unguarded_main()
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

    def time_limit(self) -> float | None:
        """Seconds the awaited workers get to answer (``timeout``, or :func:`adaptive_limit`)."""
        if self.timeout != "auto":
            return self.timeout
        loads = [self._loads.get(j, (0, 0)) for j in self._pool.pending]
        return adaptive_limit(self._rates, loads)

    def _set_job(self, job) -> None:
        """Pickle ``(algorithm, protocol, seed)``; workers get it again only when it changes (and
        the pace measured for the adaptive time limit starts again)."""
        job_bytes = pickle.dumps(job)
        if job_bytes != self._pool.job:
            self._pool.job, self._pool.has_job = job_bytes, set()
            self._job, self._rates = job, None

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
        pool, n_S = self._pool, self.data.n_k[S].tolist()
        self.busy_seconds, self.cpu_seconds = [0.0] * self.workers, [0.0] * self.workers
        for j, positions in enumerate(assign(n_S, self.workers)):
            if positions:
                tasks = [(i, int(S[i]), None if states is None else states[i]) for i in positions]
                job = None if j in pool.has_job else pool.job
                try:
                    pool.conns[j].send(("run", int(t), tasks, ref, job, down))
                except OSError as error:
                    raise WorkerError(self._death(j, t)) from error
                pool.has_job.add(j)
                pool.pending.add(j)
                self._loads[j] = (sum(n_S[i] for i in positions), len(positions))

    def _collect(self, t: int) -> None:
        """Wait for the answer of every pending worker; raise on an error, on a dead worker, and
        when the time limit is spent."""
        pool, spent = self._pool, 0.0
        while pool.pending:
            limit = self.time_limit()
            if limit is not None and spent >= limit:
                raise WorkerError(self._late(t, limit))
            waiting = {pool.conns[j]: j for j in pool.pending}
            waiting.update({pool.procs[j].sentinel: j for j in pool.pending})
            start = time.monotonic()
            ready = wait(list(waiting), timeout=None if limit is None else min(limit - spent, TICK))
            spent += min(time.monotonic() - start, TICK)  # were we stopped (Ctrl-Z)? not counted
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
            self._measure(j)
        elif message[0] == "client-error":
            _, k, error, remote = message
            error.__cause__ = RemoteTraceback(remote)
            raise ClientError(k, t, error) from error
        elif message[0] == "init-error":
            raise WorkerError(f"worker {j} failed to start:\n{message[1]}")
        elif message[0] == "job-error":
            raise WorkerError(self._unloadable(t, message[1])) from RemoteTraceback(message[1])
        elif message[0] == "died":
            pool.pending.add(j)  # still unanswered: release() must not wait for it
            raise WorkerError(self._death(j, t))

    def _measure(self, j: int) -> None:
        """Update the slowest pace seen, per sample and per client, from worker ``j``'s answer."""
        n_j, c_j = self._loads.get(j, (0, 0))
        if c_j:
            busy, (r_s, r_c) = self.busy_seconds[j], self._rates or (0.0, 0.0)
            self._rates = (max(r_s, busy / max(n_j, 1)), max(r_c, busy / c_j))

    def _death(self, j: int, t: int) -> str:
        proc = self._pool.procs[j]
        proc.join(timeout=1.0)
        code = proc.exitcode
        how = f"was killed by signal {-code}" if code and code < 0 else f"exited with code {code}"
        return (
            f"worker {j} (pid {proc.pid}) {how} during round {t}; the engine was shut down "
            "(a Python error of the worker, if any, is printed on stderr above)."
        )

    def _late(self, t: int, limit: float) -> str:
        pool = self._pool
        who = " and ".join(f"worker {j} (pid {pool.procs[j].pid})" for j in sorted(pool.pending))
        if self.timeout != "auto":
            why = f"timeout={self.timeout}"
        elif self._rates is None:
            why = "the allowance before anything is measured"
        else:
            factor, floor = scheduling.FACTOR, scheduling.FLOOR
            why = f"{factor:g} x the expected time of the clients, at least {floor:g} s"
        return (
            f"round {t}: {who} gave no answer within {round(limit, 1):g} s ({why}): stopped "
            "(SIGSTOP) or hung? The engine was shut down; ProcessEngine(timeout=seconds) sets "
            "the limit, timeout=None waits forever."
        )

    def _unloadable(self, t: int, remote: str) -> str:
        """The job-error message: name what the workers cannot import."""
        last = remote.strip().splitlines()[-1]
        found = main_objects(self._job)
        named = [f for f in found if repr(f.split(" ", 1)[1]) in last] or found
        if not named:
            return f"round {t}: the workers could not unpickle the algorithm: {last}"
        return (
            f"round {t}: worker processes cannot import {' and '.join(named)}, defined in "
            "__main__ (a notebook, python -c, a package's __main__.py, or under "
            '`if __name__ == "__main__":`): move it into a module, or to the top level of a '
            "script run as `python script.py`, or run with workers=1."
        )

    def close(self) -> None:
        """Stop the workers and unlink the shared memory (safe to call twice)."""
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
