"""How the round loop talks to an algorithm: arguments by name, state in, messages out.

The algorithm declares (see :mod:`minifed.algorithms.base`); this module checks the declarations
once per run and makes the calls. ``client_update(w, X_k, y_k, ...)`` and
``server_update(w, M, ...)`` receive exactly the names their signatures list, from a small
vocabulary:

- a client may ask for ``rng``, ``k``, ``t``, ``S``, ``seed``, the ``down`` fields and its own
  state fields;
- the server may ask for ``n_S``, ``S``, ``t``, ``K``, ``C``, ``n_k``, ``rng``, ``seed`` and its
  state fields.

``S`` is the round's sampled set (the server announces it, e.g. to the members of a secure
aggregation). ``seed`` is the run's seed, for algorithms that simulate a protocol *among* the
round's clients (secure aggregation's key exchange): each party derives its own generator from
it with :func:`minifed.seeding.derived_rng`, so every process computes the same messages.

Messages travel as ``{field: array}`` inside the engines; an algorithm whose ``up`` declares a
single field sends and receives a bare array instead.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import cache

import numpy as np

from minifed.seeding import client_rng

CLIENT_NAMES = ("rng", "k", "t", "S", "seed")  # S arrives with the down fields
SERVER_NAMES = ("n_S", "S", "t", "K", "C", "n_k", "rng", "seed")


@cache
def wanted(method, skip: int) -> tuple[str, ...]:
    """The parameter names of ``method`` after its first ``skip`` positional ones."""
    return tuple(inspect.signature(method).parameters)[skip:]


@dataclass(frozen=True)
class Protocol:
    """What one algorithm declares for one run (shapes fixed by ``w``); picklable."""

    up: dict  # field -> (shape, dtype str)
    down: tuple[str, ...]
    client_fields: tuple[str, ...]
    server_fields: tuple[str, ...]

    @property
    def single(self) -> bool:
        """One message field: the algorithm sends and receives a bare array."""
        return len(self.up) == 1

    def down_bytes(self, state: dict) -> int:
        """Bytes broadcast to one client: ``w`` is counted by the caller, these are the extras."""
        return sum(np.asarray(state[f]).nbytes for f in self.down)


def check_algorithm(algorithm, w: np.ndarray) -> tuple[Protocol, dict]:
    """Check an algorithm's declarations against the protocol; return it and ``init_state(w)``."""
    name = type(algorithm).__name__
    _refuse_arrays(algorithm, name)
    server = dict(algorithm.init_state(w))
    client_fields = tuple(algorithm.init_client_state(w))
    up = {f: (tuple(shape), np.dtype(dtype).str) for f, (shape, dtype) in algorithm.up(w).items()}
    if not up:
        raise TypeError(f"{name}.up(w) declares no message field; a client must send something.")
    for field in algorithm.down:
        if field not in server:
            raise TypeError(
                f"{name}.down lists {field!r}, which is not a field of {name}.init_state(w) "
                f"({sorted(server)}); only server state can be broadcast."
            )
    client_vocabulary = (*CLIENT_NAMES, *algorithm.down, *client_fields)
    _check_names(name, "client_update", wanted(type(algorithm).client_update, 4), client_vocabulary)
    server_vocabulary = (*SERVER_NAMES, *server)
    _check_names(name, "server_update", wanted(type(algorithm).server_update, 3), server_vocabulary)
    return Protocol(up, tuple(algorithm.down), client_fields, tuple(server)), server


def _check_names(name, method, asked, vocabulary) -> None:
    for arg in asked:
        if arg not in vocabulary:
            raise TypeError(
                f"{name}.{method} asks for {arg!r}, which the round loop does not provide; it "
                f"can ask for {', '.join(vocabulary)} (state fields come from init_state and "
                "init_client_state)."
            )


def _refuse_arrays(algorithm, name: str) -> None:
    """Settings only on ``self``: state kept there would not reach workers or checkpoints."""
    for attr, value in vars(algorithm).items():
        values = value.values() if isinstance(value, dict) else value
        if isinstance(value, np.ndarray) or (
            isinstance(value, list | tuple | dict)
            and any(isinstance(v, np.ndarray) for v in values)
        ):
            raise TypeError(
                f"{name}.{attr} holds an array, but an algorithm object holds settings only: "
                "state kept on self is not sent to worker processes, not saved in checkpoints and "
                "leaks into the next run. Declare it instead: server state in init_state(w), "
                "per-client state in init_client_state(w); see minifed.algorithms.base."
            )


def run_client(algorithm, protocol: Protocol, seed: int, w, X_k, y_k, t, k, down, state_k):
    """Client ``k``'s update in round ``t``; returns ``(message fields, new state or None)``."""
    available = {"k": int(k), "t": int(t), "seed": int(seed), **down, **(state_k or {})}
    kwargs = {}
    for arg in wanted(type(algorithm).client_update, 4):
        kwargs[arg] = client_rng(seed, t, k) if arg == "rng" else available[arg]
    out = algorithm.client_update(w, X_k, y_k, **kwargs)
    new_state = None
    if protocol.client_fields:
        out, new_state = _pair(out, type(algorithm).__name__, "client_update", "client state")
        _check_keys(new_state, protocol.client_fields, type(algorithm).__name__, "client state")
    return as_fields(out, protocol, type(algorithm).__name__), new_state


def run_server(algorithm, protocol: Protocol, w, M: dict, available: dict, state: dict):
    """The server update; returns ``(w_next, new server state)``."""
    name = type(algorithm).__name__
    messages = M[next(iter(M))] if protocol.single else M
    names = {**available, **state}
    kwargs = {arg: names[arg] for arg in wanted(type(algorithm).server_update, 3)}
    out = algorithm.server_update(w, messages, **kwargs)
    if not protocol.server_fields:
        return out, state
    w_next, new_state = _pair(out, name, "server_update", "server state")
    _check_keys(new_state, protocol.server_fields, name, "server state")
    return w_next, new_state


def as_fields(message, protocol: Protocol, name: str) -> dict:
    """The message as ``{field: array}``, checked against the declared wire format."""
    if protocol.single and not isinstance(message, dict):
        message = {next(iter(protocol.up)): message}
    if not isinstance(message, dict) or set(message) != set(protocol.up):
        raise TypeError(f"{name}.client_update must return the fields {sorted(protocol.up)}.")
    for field, (shape, dtype) in protocol.up.items():
        value = np.asarray(message[field])
        if value.shape != shape:
            raise ValueError(
                f"{name}: message field {field!r} has shape {value.shape}, but up(w) declares "
                f"{shape}."
            )
        message[field] = value.astype(dtype, copy=False)
    return message


def _pair(out, name, method, what):
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
        raise TypeError(f"{name}.{method} must return a pair (result, {what} dict): it has {what}.")
    return out


def _check_keys(state: dict, fields, name, what) -> None:
    if set(state) != set(fields):
        raise TypeError(f"{name} returned {what} {sorted(state)}; it declared {sorted(fields)}.")
