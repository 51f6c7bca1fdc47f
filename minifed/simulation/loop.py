"""The round loop: sample, run the clients, update the server, evaluate, record.

    w_0, server state <- model.init(rng(seed)), algorithm.init_state(w_0)
    for t = 0, 1, ..., T - 1:                 (the history records it as round r = t + 1)
        S_t            <- m = max(round(C K), 1) clients drawn without replacement
                          (sampling="poisson": each client with probability C)
        M, state_S     <- [client_update(w_t, X_k, y_k, rng(seed, r, k), down, state_k)
                           for k in S_t]                              (an engine runs these)
        w_{t+1}, state <- server_update(w_t, M, n_{S_t}, rng(seed, r), state)
        every eval_every rounds: F(w_{t+1}), test loss and accuracy, per-client metrics

Record ``r`` of the history therefore describes ``w_r``, the model after ``r`` rounds (record 0
evaluates ``w_0``), as in tutorials/notation.md.

The loop owns all state (``RunState``: ``w``, the server state, the clients' rows, the history),
so the algorithm object holds settings only, workers stay stateless, and a checkpoint holds
everything needed to resume bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from minifed._checks import check_int
from minifed.algorithms.base import Algorithm
from minifed.dataset import FederatedDataset
from minifed.seeding import server_rng
from minifed.simulation.checkpoint import Checkpoint, RunState, fingerprint
from minifed.simulation.engine import SequentialEngine, empty_messages
from minifed.simulation.evaluate import evaluate
from minifed.simulation.history import History, json_safe
from minifed.simulation.parallel import ProcessEngine
from minifed.simulation.progress import Progress
from minifed.simulation.protocol import run_server
from minifed.simulation.sampling import sample_clients
from minifed.simulation.start import (
    METRICS,
    PER_CLIENT,
    PER_CLIENT_TEST,
    check_run,
    check_sampling,
    start,
)
from minifed.simulation.state import as_arrays


class DivergenceError(FloatingPointError):
    """The model or the loss became NaN or inf. ``round`` says when; ``history`` keeps the rounds
    before it and ``w`` the last finite parameters."""

    def __init__(self, message: str, round: int, history: History, w: np.ndarray):
        super().__init__(message)
        self.round, self.history, self.w = round, history, w


def run(
    algorithm: Algorithm,
    data: FederatedDataset,
    rounds: int,
    *,
    fraction: float = 0.1,
    seed: int = 0,
    sampling: str | None = None,
    availability=None,
    w0: np.ndarray | None = None,
    eval_every: int = 1,
    eval_train: bool = True,
    client_metrics_every: int = 1,
    target_accuracy: float | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 10,
    progress: bool | str | None = None,
    callbacks: Sequence[Callable[[dict, np.ndarray], bool | None]] = (),
    engine=None,
    workers: int = 1,
) -> tuple[np.ndarray, History]:
    """Simulate ``rounds`` rounds of ``algorithm`` on ``data``; return ``(w_T, history)``.

    Parameters
    ----------
    fraction : float
        Client fraction ``C`` in (0, 1]; ``m = max(round(C K), 1)`` clients per round (with
        ``sampling="poisson"``, each client's probability ``q`` of taking part).
    seed : int
        The one seed of the run: ``w_0``, every sample ``S_t``, every client's and the server's
        randomness are derived from it (:mod:`minifed.seeding`), so the same seed gives the same
        history.
    sampling : {"uniform", "size", "poisson"}, optional
        How ``S_t`` is drawn: ``m`` clients uniformly, or with probability proportional to
        ``n_k``; or ``"poisson"``: each client independently with probability ``q = fraction``
        (``|S_t|`` varies, may be 0). Default: the scheme the algorithm requires
        (``requires_sampling``, ``"poisson"`` for DP-FedAvg, which refuses any other), else
        ``"uniform"``.
    availability : sequence of K probabilities, optional
        Client ``k`` is online in a round with probability ``availability[k]``; only online
        clients can be sampled. A round without clients leaves ``w`` unchanged, unless the
        algorithm declares ``runs_empty_rounds = True``: then its server update runs with ``M``
        of zero rows (DP-FedAvg adds its noise and counts the round in its accountant, as its
        privacy analysis assumes a release in every round).
    w0 : array, optional
        Initial parameters; by default ``model.init(rng(seed))`` in the data's dtype.
    eval_every : int
        Evaluate every ``eval_every`` rounds (and at round 0 and the last round).
    eval_train : bool
        Also compute the objective ``F(w)`` and the per-client metrics on the clients' data
        (a pass over all of it); ``False`` evaluates on the test set only, which is much cheaper.
    client_metrics_every : int
        Keep the per-client metrics ``client_loss`` and ``client_accuracy`` (and, with per-client
        test sets, ``client_test_loss`` and ``client_test_accuracy``) in the records of
        evaluation rounds that are multiples of this (and the last); ``0``: never. They are
        ``K`` numbers each, about 40 bytes of JSON per client and round (400 KB a record with
        10,000 clients, 120 MB over 300 evaluated rounds), so large federations keep them
        every 10th or 100th round; the other metrics are kept on every evaluation round.
    target_accuracy : float, optional
        Stop after the first evaluation whose test accuracy reaches it.
    checkpoint : path, optional
        Save the run's state (``w``, the algorithm's server state, the state of every client
        that took part, the history) there every ``checkpoint_every`` rounds, at the end, and
        when the run stops on an error or Ctrl-C (:mod:`~minifed.simulation.checkpoint`); if the
        file exists, resume from it. The resumed run's history equals the uninterrupted run's,
        bit for bit, except for the wall-clock fields ``seconds`` and ``eval_seconds``. A
        checkpoint of another run (other settings, or other data with the same name and
        sizes) is refused, with the settings that differ; ``rounds``, ``checkpoint_every``,
        ``eval_train``, ``client_metrics_every``, ``target_accuracy`` and ``workers`` may change
        between the two.
    progress : bool or str, optional
        Show a progress line (``None``: only once the run has lasted a couple of seconds); a
        string also names the run in the line.
    callbacks : callables ``f(record, w)``
        Called after every round; a callback returning ``True`` stops the run. ``record`` is
        the round's entry of the history: fields a callback adds to it (e.g. a metric of its
        own) are kept in the history and its checkpoints.
    engine : optional
        Where clients run: an engine made for ``data`` (:class:`SequentialEngine` by default),
        e.g. one :class:`~minifed.simulation.ProcessEngine` shared by several runs.
    workers : int
        With ``workers > 1`` (and no ``engine``), run each round's clients in that many worker
        processes (:class:`~minifed.simulation.ProcessEngine`, closed at the end). Any two
        counts ``>= 2`` give the same history, bit for bit (every worker runs BLAS on one
        thread); ``workers=1`` runs the clients in this process and matches them when this
        process's BLAS is single-threaded too, which only ``OPENBLAS_NUM_THREADS=1`` (or the
        OMP/MKL equivalent) set before NumPy is imported achieves; otherwise large products
        round differently (about ``1e-7``). ``workers`` is not part of ``history.config``: a
        checkpoint resumes with any count.

    Raises
    ------
    DivergenceError
        When a client's update, ``w`` or the objective becomes NaN or inf (names the round).
    CheckpointError
        When ``checkpoint`` cannot be read or belongs to another run.

    Any error that stops the run after it started (divergence, a failed client or worker,
    Ctrl-C) carries the rounds recorded so far as ``error.history`` and the last ``w`` as
    ``error.w``, and a ``checkpoint`` is saved first, so no finished round is lost.
    """
    config = check_run(algorithm, data, rounds, fraction, seed, eval_every, target_accuracy)
    config.update(
        checkpoint_every=check_int("checkpoint_every", checkpoint_every, minimum=1),
        eval_train=bool(eval_train),
        client_metrics_every=check_int("client_metrics_every", client_metrics_every, minimum=0),
        **check_sampling(algorithm, data, eval_train, sampling, availability),
    )
    saver = None if checkpoint is None else Checkpoint(checkpoint)
    digest = None if saver is None else fingerprint(data)
    state, protocol = start(algorithm, data, config, w0, saver, digest)
    if target_accuracy is not None and state.history.rounds_to(target_accuracy) is not None:
        state.history.stopped = "target"  # resumed from a run that already reached it
        return state.w, state.history
    job = (algorithm, protocol, config["seed"])
    label = progress if isinstance(progress, str) else ""
    bar = Progress(rounds, True if label else progress, label=label)
    try:
        with _engine(data, engine, workers) as engine:
            for t in range(len(state.history.rounds), rounds + 1):
                record = _round(job, engine, state, t, data, config)
                bar.update(record)
                if _should_stop(record, state, target_accuracy, callbacks):
                    break
                if saver and t % checkpoint_every == 0:
                    saver.save(state, digest)
    except BaseException as error:  # keep every finished round: in the error and on disk
        error.history, error.w = state.history, state.w
        if saver and saver.written < len(state.history.rounds):
            saver.save(state, digest)
        raise
    finally:
        bar.close()
    if saver:
        saver.save(state, digest)
    return state.w, state.history


def _engine(data, engine, workers):
    """The engine to use, as a context: one ``run`` owns (and closes), or the caller's."""
    workers = check_int("workers", workers, minimum=1)
    if engine is not None:
        if workers != 1:
            raise ValueError("give either engine or workers, not both.")
        if engine.data is not data:
            raise ValueError("engine was made for another FederatedDataset than data.")
        return nullcontext(engine)  # closed by the caller
    return SequentialEngine(data) if workers == 1 else ProcessEngine(data, workers)


def _round(job, engine, state: RunState, t: int, data, config) -> dict:
    """Round ``t`` (``t = 0`` only evaluates ``w_0``): updates ``state``, returns its record."""
    algorithm, protocol, seed = job
    start = time.perf_counter()
    record = {"round": t, "clients": [], "bytes_up": 0, "bytes_down": 0}
    S = np.arange(0)  # round 0 only evaluates w_0
    if t > 0:
        c = config
        S = sample_clients(
            data.K, c["fraction"], c["seed"], t, c["sampling"], data.n_k, c["availability"]
        )
    w, server, rows = state.w, state.server, None
    empty_round = t > 0 and algorithm.runs_empty_rounds  # DP-FedAvg's noise
    if len(S) or empty_round:  # else no client took part: w stays as it is
        history = state.history
        rows = state.clients.get(algorithm, S, w) if protocol.client_fields else None
        down = {f: state.server[f] for f in protocol.down}
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is checked below
            if len(S):
                M, rows = engine.run_clients(job, w, t, S, {**down, "S": S}, rows)  # S: if asked
            else:  # the server update gets M with zero rows
                M = empty_messages(protocol, 0)
            _check_finite(M, "a client update", t, history, w, S)
            available = {"n_S": data.n_k[S], "S": S, "t": t, "K": data.K, "n_k": data.n_k,
                         "C": config["fraction"], "rng": server_rng(seed, t),
                         "seed": seed}  # fmt: skip
            w, server = run_server(algorithm, protocol, state.w, M, available, state.server)
        w, server = np.asarray(w).astype(state.w.dtype, copy=False), as_arrays(server)
        _check_finite({"w": w}, "the server update", t, history, state.w)
        record.update(
            clients=S.tolist(),
            bytes_up=sum(int(v.nbytes) for v in M.values()),
            bytes_down=len(S) * (w.nbytes + protocol.down_bytes(down)),
        )
    # scalar state as the history's JSON keeps it (inf -> None, e.g. DP's epsilon without noise)
    record.update({f: json_safe(v.item()) for f, v in server.items() if v.ndim == 0})
    record["seconds"] = time.perf_counter() - start
    record.update(_evaluate(algorithm, w, state.history, t, data, config))
    state.w, state.server = w, server  # the round is complete: commit it
    if rows is not None:
        state.clients.put(S, rows)
    state.history.rounds.append(record)
    return record


def _evaluate(algorithm, w, history, t: int, data, config) -> dict:
    """The metrics of ``w`` on evaluation rounds, ``None`` for each elsewhere."""
    per_client = PER_CLIENT + (PER_CLIENT_TEST if data.test_offsets is not None else ())
    record = dict.fromkeys(METRICS + per_client)
    if t % config["eval_every"] and t != config["rounds"]:
        return {**record, "eval_seconds": 0.0}
    start = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):
        record.update(evaluate(algorithm.model, w, data, train=config["eval_train"]))
    every = config["client_metrics_every"]
    if not every or (t % every and t != config["rounds"]):
        record.update(dict.fromkeys(per_client))
    loss = record["train_loss"] if config["eval_train"] else record["test_loss"]
    if not np.isfinite(loss):
        raise DivergenceError(
            f"round {t}: the loss is {loss}; lower the learning rate (lr={algorithm.lr}).",
            t,
            history,
            w,
        )
    return {**record, "eval_seconds": time.perf_counter() - start}


def _check_finite(M: dict, what, t, history, w, S=None):
    """Raise a :class:`DivergenceError` if a float array of ``M`` holds NaN or inf."""
    bad = np.zeros(len(S) if S is not None else 1, dtype=bool)
    for v in M.values():
        if v.dtype.kind == "f" and not np.isfinite(v).all():
            bad |= ~np.isfinite(v).reshape(len(bad), -1).all(axis=1)
    if not bad.any():
        return
    who = "" if S is None else f" (clients {S[bad].tolist()})"
    raise DivergenceError(
        f"round {t}: {what}{who} produced NaN or inf; the learning rate is probably too large.",
        t,
        history,
        w,
    )


def _should_stop(record, state: RunState, target_accuracy, callbacks) -> bool:
    stop_by_callback = any([bool(cb(record, state.w)) for cb in callbacks])
    acc = record.get("test_accuracy")
    if target_accuracy is not None and acc is not None and acc >= target_accuracy:
        state.history.stopped = "target"
        return True
    if stop_by_callback:
        state.history.stopped = "callback"
    return stop_by_callback
