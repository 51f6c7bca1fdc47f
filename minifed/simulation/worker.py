"""The worker process of :class:`~minifed.simulation.ProcessEngine`: attach the data once, then
run the clients of each round it is sent, writing their messages into shared memory.

A worker holds nothing between rounds but the pickled ``(algorithm, protocol, seed)`` it was last
sent: the clients' state travels with each round, so the worker is disposable.
"""

from __future__ import annotations

import os
import pickle
import signal
import time
import traceback
from contextlib import contextmanager

from minifed.simulation.protocol import run_client
from minifed.simulation.shared import SharedArrays

BLAS_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class RemoteTraceback(Exception):
    """The traceback text of an error raised in a worker (shown as the error's cause)."""

    def __str__(self) -> str:
        return f'\n"""\n{self.args[0]}"""'


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
