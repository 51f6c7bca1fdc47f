"""The round loop: sample, run the clients, update the server, evaluate, record.

for t = 1, ..., T:
    S_t     <- m = max(round(C K), 1) clients drawn without replacement
    M       <- [client_update(w_t, X_k, y_k, rng(seed, t, k)) for k in S_t]
    w_{t+1} <- server_update(w_t, M, n_{S_t})
    every eval_every rounds: F(w), test loss and accuracy, per-client metrics
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from minifed._checks import check_fraction, check_int
from minifed.algorithms.base import Algorithm
from minifed.dataset import FederatedDataset
from minifed.simulation.checkpoint import load_checkpoint, save_checkpoint
from minifed.simulation.engine import SequentialEngine
from minifed.simulation.evaluate import evaluate
from minifed.simulation.history import History
from minifed.simulation.parallel import ProcessEngine
from minifed.simulation.progress import Progress
from minifed.simulation.sampling import (
    INIT,
    SCHEMES,
    check_availability,
    clients_per_round,
    derived_rng,
    sample_clients,
)

METRICS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
PER_CLIENT = ("client_loss", "client_accuracy")


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
    sampling: str = "uniform",
    availability=None,
    w0: np.ndarray | None = None,
    eval_every: int = 1,
    eval_train: bool = True,
    target_accuracy: float | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 10,
    progress: bool | None = None,
    callbacks: Sequence[Callable[[dict, np.ndarray], bool | None]] = (),
    engine=None,
    workers: int = 1,
) -> tuple[np.ndarray, History]:
    """Simulate ``rounds`` rounds of ``algorithm`` on ``data``; return ``(w_T, history)``.

    Parameters
    ----------
    fraction : float
        Client fraction ``C`` in (0, 1]; ``m = max(round(C K), 1)`` clients per round.
    seed : int
        The one seed of the run: ``w_0``, every sample ``S_t`` and every client's local
        randomness are derived from it, so the same seed gives the same history.
    sampling : {"uniform", "size"}
        How ``S_t`` is drawn: uniformly, or with probability proportional to ``n_k``.
    availability : sequence of K probabilities, optional
        Client ``k`` is online in a round with probability ``availability[k]``; only online
        clients can be sampled, and a round with no client online leaves ``w`` unchanged.
    w0 : array, optional
        Initial parameters; by default ``model.init(rng(seed))`` in the data's dtype.
    eval_every : int
        Evaluate every ``eval_every`` rounds (and at round 0 and the last round).
    eval_train : bool
        Also compute the objective ``F(w)`` and the per-client metrics on the clients' data
        (a pass over all of it); ``False`` evaluates on the test set only, which is much cheaper.
    target_accuracy : float, optional
        Stop after the first evaluation whose test accuracy reaches it.
    checkpoint : path, optional
        Save ``(w, history)`` there every ``checkpoint_every`` rounds and at the end; if the file
        exists, resume from it. The resumed run's history equals the uninterrupted run's, bit for
        bit, except for the wall-clock fields ``seconds`` and ``eval_seconds``.
    progress : bool, optional
        Show a progress line (``None``: only once the run has lasted a couple of seconds).
    callbacks : callables ``f(record, w)``
        Called after every round; a callback returning ``True`` stops the run.
    engine : optional
        Where clients run (:class:`SequentialEngine` by default).
    workers : int
        With ``workers > 1`` (and no ``engine``), run each round's clients in that many worker
        processes (:class:`~minifed.simulation.ProcessEngine`, closed at the end). The history
        is the same, bit for bit, for any number of workers (workers run BLAS on one thread;
        so must this process for ``workers=1`` to match, e.g. ``OPENBLAS_NUM_THREADS=1``), so
        ``workers`` is not part of ``history.config``: a checkpoint resumes with any count.

    Raises
    ------
    DivergenceError
        When a client's update, ``w`` or the objective becomes NaN or inf (names the round).
    """
    config = _check_run(algorithm, data, rounds, fraction, seed, eval_every, target_accuracy)
    config.update(
        checkpoint_every=check_int("checkpoint_every", checkpoint_every, minimum=1),
        eval_train=bool(eval_train),
    )
    if not eval_train and data.y_test is None:
        raise ValueError("eval_train=False needs a test set: give the FederatedDataset X_test.")
    if sampling not in SCHEMES:
        raise ValueError(f"sampling must be one of {SCHEMES}, got {sampling!r}.")
    availability = check_availability(availability, data.K)
    config.update(
        sampling=sampling, availability=None if availability is None else availability.tolist()
    )
    w, history = _start(algorithm, data, config, w0, checkpoint)
    if target_accuracy is not None and history.rounds_to(target_accuracy) is not None:
        history.stopped = "target"  # resumed from a run that already reached it: nothing to do
        return w, history
    own_engine = engine is None
    engine = _engine(algorithm, data, seed, workers) if own_engine else engine
    if not own_engine and workers != 1:
        raise ValueError("give either engine or workers, not both.")
    bar = Progress(rounds, progress)
    try:
        for t in range(len(history.rounds), rounds + 1):
            with np.errstate(over="ignore", invalid="ignore"):  # divergence is checked below
                w, record = _round(algorithm, data, engine, w, t, config, history)
            history.rounds.append(record)
            bar.update(record)
            if _should_stop(record, w, history, target_accuracy, callbacks):
                break
            if checkpoint and t % checkpoint_every == 0:
                save_checkpoint(checkpoint, w, history)
    finally:
        bar.close()
        if own_engine:  # an engine passed in by the caller is closed by the caller
            engine.close()
    if checkpoint:
        save_checkpoint(checkpoint, w, history)
    return w, history


def _engine(algorithm, data, seed, workers):
    """The engine ``run`` owns: in this process, or ``workers`` worker processes."""
    if check_int("workers", workers, minimum=1) == 1:
        return SequentialEngine(algorithm, data, seed)
    return ProcessEngine(algorithm, data, seed, workers)


def _round(algorithm, data, engine, w, t, config, history):
    """One round ``t`` (``t = 0`` only evaluates the initial model)."""
    start = time.perf_counter()
    record = {"round": t, "clients": [], "bytes_up": 0, "bytes_down": 0}
    S = np.arange(0)  # round 0 only evaluates w_0
    if t > 0:
        c = config
        S = sample_clients(
            data.K, c["fraction"], c["seed"], t, c["sampling"], data.n_k, c["availability"]
        )
    if len(S):  # no client online: w stays as it is
        M = engine.run_clients(w, t, S)  # (m, d): one message per sampled client
        _check_finite(M, "a client update", t, history, w, S)
        w_next = algorithm.server_update(w, M, data.n_k[S]).astype(w.dtype, copy=False)
        _check_finite(w_next, "the server update", t, history, w)
        record.update(clients=S.tolist(), bytes_up=int(M.nbytes), bytes_down=len(S) * w.nbytes)
        w = w_next
    record["seconds"] = time.perf_counter() - start
    if t % config["eval_every"] == 0 or t == config["rounds"]:
        start = time.perf_counter()
        record.update(dict.fromkeys(METRICS + PER_CLIENT))
        record.update(evaluate(algorithm.model, w, data, train=config["eval_train"]))
        loss = record["train_loss"] if config["eval_train"] else record["test_loss"]
        if not np.isfinite(loss):
            raise DivergenceError(
                f"round {t}: the loss is {loss}; lower the learning rate (lr={algorithm.lr}).",
                t,
                history,
                w,
            )
        record["eval_seconds"] = time.perf_counter() - start
    else:
        record.update(dict.fromkeys(METRICS + PER_CLIENT), eval_seconds=0.0)
    return w, record


def _check_finite(v, what, t, history, w, S=None):
    if np.isfinite(v).all():
        return
    who = ""
    if S is not None:
        bad = S[~np.isfinite(v).all(axis=1)]
        who = f" (clients {bad.tolist()})"
    raise DivergenceError(
        f"round {t}: {what}{who} produced NaN or inf; the learning rate is probably too large.",
        t,
        history,
        w,
    )


def _should_stop(record, w, history, target_accuracy, callbacks) -> bool:
    stop_by_callback = any([bool(cb(record, w)) for cb in callbacks])
    acc = record.get("test_accuracy")
    if target_accuracy is not None and acc is not None and acc >= target_accuracy:
        history.stopped = "target"
        return True
    if stop_by_callback:
        history.stopped = "callback"
    return stop_by_callback


def _start(algorithm, data, config, w0, checkpoint):
    """Fresh ``(w_0, empty history)``, or the state saved in an existing checkpoint."""
    if checkpoint and Path(checkpoint).exists():
        w, history = load_checkpoint(checkpoint)
        saved = {k: v for k, v in history.config.items() if k != "rounds"}
        if saved != {k: v for k, v in config.items() if k != "rounds"}:
            raise ValueError(
                f"checkpoint {checkpoint} belongs to a different run ({saved}); "
                "delete it or choose another path."
            )
        history.config["rounds"] = config["rounds"]
        history.stopped = None
        return w, history
    model = algorithm.model
    if w0 is None:
        w = model.init(derived_rng(config["seed"], INIT), dtype=data.X.dtype)
    else:
        w = model.check_params(w0, "w0").astype(data.X.dtype)  # a copy: w0 stays untouched
    return w, History(config)


def _check_run(algorithm, data, rounds, fraction, seed, eval_every, target_accuracy) -> dict:
    if not isinstance(algorithm, Algorithm):
        raise TypeError(f"algorithm must be a minifed Algorithm, got {type(algorithm).__name__}.")
    if not isinstance(data, FederatedDataset):
        raise TypeError(f"data must be a FederatedDataset, got {type(data).__name__}.")
    algorithm.model.check_data(data.X, data.y, names=("data.X", "data.y"))
    if data.y_test is not None:
        algorithm.model.check_data(data.X_test, data.y_test, names=("data.X_test", "data.y_test"))
    if target_accuracy is not None and not 0 < target_accuracy <= 1:
        raise ValueError(f"target_accuracy must be in (0, 1], got {target_accuracy}.")
    return {
        **algorithm.config(),
        "dataset": data.name,
        "K": data.K,
        "n": data.n,
        "fraction": check_fraction("fraction", fraction),
        "m": clients_per_round(data.K, fraction),
        "rounds": check_int("rounds", rounds, minimum=0),
        "seed": check_int("seed", seed, minimum=0),
        "eval_every": check_int("eval_every", eval_every, minimum=1),
        "target_accuracy": target_accuracy,
        "dtype": str(data.X.dtype),
    }
