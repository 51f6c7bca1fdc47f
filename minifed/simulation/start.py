"""The start of a run: its settings checked, then a fresh state or a checkpoint's.

A checkpoint is resumed only when it belongs to this run: the same settings (except those in
``NOT_IDENTITY``, which change neither ``w`` nor the recorded rounds), the same data (by
fingerprint), no more rounds than asked for, and a valid ``w``.
"""

from __future__ import annotations

import numpy as np

from minifed._checks import check_fraction, check_int
from minifed.algorithms.base import Algorithm
from minifed.dataset import FederatedDataset
from minifed.seeding import INIT, derived_rng
from minifed.simulation.checkpoint import Checkpoint, CheckpointError, RunState
from minifed.simulation.history import History
from minifed.simulation.protocol import check_algorithm
from minifed.simulation.sampling import SCHEMES, check_availability, clients_per_round
from minifed.simulation.state import as_arrays

RECORD = ("round", "clients", "bytes_up", "bytes_down", "seconds", "eval_seconds")
METRICS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
PER_CLIENT = ("client_loss", "client_accuracy")
PER_CLIENT_TEST = ("client_test_loss", "client_test_accuracy")  # with per-client test sets
# settings that change neither w nor the recorded rounds: a checkpoint resumes with other values
NOT_IDENTITY = (
    "rounds", "checkpoint_every", "eval_train", "target_accuracy", "client_metrics_every"
)  # fmt: skip


def start(algorithm, data, config, w0, saver, digest):
    """``(RunState, protocol)``: fresh at round 0, or the state saved in a checkpoint."""
    if saver is not None and saver.exists():
        return _resume(algorithm, data, config, saver, digest)
    if w0 is None:
        w = algorithm.model.init(derived_rng(config["seed"], INIT), dtype=data.X.dtype)
    else:
        w = algorithm.model.check_params(w0, "w0").astype(data.X.dtype)  # a copy
    protocol, server = check_algorithm(algorithm, w)
    clash = set(server) & {*RECORD, *METRICS, *PER_CLIENT, *PER_CLIENT_TEST}
    if clash:
        raise TypeError(f"server-state fields {sorted(clash)} clash with the history's fields.")
    return RunState(w, History(config), as_arrays(server)), protocol


def _resume(algorithm, data, config, saver: Checkpoint, digest: str):
    """The state of a checkpoint, once it is shown to belong to this run."""
    state, saved_digest = saver.load()
    where = f"checkpoint {saver.path}"
    _check_same_settings(where, state.history.config, config)
    if saved_digest is not None and saved_digest != digest:
        raise CheckpointError(
            f"{where} was made on other data than {data.name!r} (same name and sizes, other "
            "values); delete it or give another path."
        )
    done = len(state.history.rounds) - 1
    if done > config["rounds"]:
        raise CheckpointError(
            f"{where} already holds {done} rounds, more than rounds={config['rounds']}: ask for "
            f"at least {done} rounds, or delete it."
        )
    w = algorithm.model.check_params(state.w, f"the w of {where}")
    if w.dtype != data.X.dtype:
        raise CheckpointError(f"{where} holds a w of dtype {w.dtype}, the data {data.X.dtype}.")
    if not np.isfinite(w).all():
        raise CheckpointError(f"{where} holds a w with non-finite values; delete it.")
    protocol, server = check_algorithm(algorithm, w)
    if set(server) != set(state.server):
        raise CheckpointError(
            f"{where} holds server state {sorted(state.server)}, not {sorted(server)}."
        )
    state.history.config.update(config)
    state.history.stopped = None
    return state, protocol


def _check_same_settings(where: str, saved: dict, config: dict) -> None:
    """Refuse a checkpoint whose run differs in a setting that changes the result."""
    keys = [k for k in {**saved, **config} if k not in NOT_IDENTITY]
    differ = [k for k in keys if saved.get(k) != config.get(k)]
    if differ:
        what = "; ".join(f"{k}={saved.get(k)!r} there, {config.get(k)!r} now" for k in differ)
        raise CheckpointError(
            f"{where} belongs to another run ({what}); delete it or give another path."
        )


def check_sampling(algorithm, data, eval_train, sampling, availability) -> dict:
    """The sampling settings; ``sampling=None`` is the algorithm's ``requires_sampling`` (DP-FedAvg
    declares ``"poisson"``, which its accountant assumes) or else ``"uniform"``."""
    if not eval_train and data.y_test is None:
        raise ValueError("eval_train=False needs a test set: give the FederatedDataset X_test.")
    required = algorithm.requires_sampling
    sampling = (required or "uniform") if sampling is None else sampling
    if sampling not in SCHEMES:
        raise ValueError(f"sampling must be one of {SCHEMES}, got {sampling!r}.")
    name = type(algorithm).__name__
    if required is not None and sampling != required:
        raise ValueError(
            f"{name} needs sampling={required!r} (its privacy analysis assumes it), got "
            f"sampling={sampling!r}; pass sampling={required!r} or leave sampling out."
        )
    availability = check_availability(availability, data.K)
    if required is not None and availability is not None:
        raise ValueError(
            f"{name} runs without availability: its accountant assumes that every client takes "
            f"part with probability q = fraction (sampling={required!r}), and availability "
            "would make that availability[k] * q."
        )
    return {
        "sampling": sampling,
        "availability": None if availability is None else availability.tolist(),
    }


def check_run(algorithm, data, rounds, fraction, seed, eval_every, target_accuracy) -> dict:
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
