"""FedAvg with secure aggregation: the server sees each update only masked and learns only the
weighted sum (McMahan et al. 2017, Algorithm 1; Bonawitz et al. 2017, CCS, Fig. 4).

    Server executes round t:
        S_t <- m clients;  threshold t_s = ceil(threshold * m)
        rounds 0, 1 among S_t: public keys advertised, shares of s_k^SK and b_k relayed
        for each client k in S_t in parallel:                        # client_update
            with probability `dropout` the device drops out here and sends nothing more
            w_k <- ClientUpdate(k, w_t)                               (FedAvg's local SGD)
            x_k <- n_k round(2^f clip(w_k - w_t, -c, c))  mod R      (minifed.privacy.fixedpoint)
            send y_k = x_k + PRG(b_k) + sum_v +-PRG(s_kv)  mod R     (round 2; uint32 on the wire)
        z <- Unmasking: sum_{k in U3} x_k  mod R                     # server_update (round 4)
        w_{t+1} <- w_t + z / (2^f sum_{k in U3} n_k)                 (z read as a signed integer)

The clients send ``n_k``-weighted integers, so the server obtains FedAvg's weighted mean of the
updates ``w_k - w_t`` over the clients whose masked input arrived (``U3``), with the mixing
coefficients ``n_k / sum_{U3} n_k`` (the server knows the ``n_k``, as in FedAvg). Without
dropouts the result is FedAvg's ``w_{t+1}`` up to the quantization, at most ``2^-(f+1)`` per
coordinate when no coordinate is clipped (the tests measure it), plus float32 rounding.

How one loop round carries the protocol's four. The loop calls each client once and the server
once, so only round 2 (the masked vectors, this algorithm's messages) travels through it. Rounds
0 and 1 (before the clients' updates) and the survivors' Unmasking answers (after) are simulated
by a :class:`~minifed.privacy.cohort.Cohort` of the users ``S_t``, each with its generator
``derived_rng(seed, SECAGG, t, k)``: every process builds the same cohort from ``(seed, t, S_t)``
(and caches it), the clients take their keys and inboxes from it, and the server's side of every
round runs on its messages in :class:`~minifed.privacy.secagg.Server`, which sees no secret.

A client drops out (after sharing its keys, during training: the common case in deployments)
with probability ``dropout``, drawn first from its protocol generator (not from the loop's
``rng``, so its minibatches are FedAvg's own); its pairwise masks are then removed with its
reconstructed ``s_k^SK``. When fewer than ``t_s`` clients remain, the
protocol refuses to unmask: the round is abandoned and ``w`` stays as it is (``aborted = 1``).

Bytes: ``bytes_up`` counts the declared messages, one ``uint32`` vector per sampled client,
including the rows of clients that dropped (a real device that dropped sends nothing; ``dropped``
records how many). The keys, the encrypted shares, the lists and the Unmasking shares are counted
exactly by the server's ledger, as the scalar state fields ``secagg_bytes_up`` (sent by the
clients) and ``secagg_bytes_down`` (sent by the server), recorded in every round's history.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from minifed._checks import check_fraction, check_int, check_nonnegative, check_positive
from minifed.algorithms.fedavg import FedAvg
from minifed.models.base import Model
from minifed.privacy.cohort import Cohort
from minifed.seeding import SECAGG
from minifed.privacy.dh import GROUPS
from minifed.privacy.fixedpoint import check_range, decode, encode
from minifed.privacy.secagg import Ledger, Settings, ThresholdError, User
from minifed.seeding import derived_rng


class SecAggFedAvg(FedAvg):
    """FedAvg whose updates are summed by secure aggregation with dropouts.

    Parameters
    ----------
    model, lr, epochs, batch_size
        As :class:`~minifed.algorithms.FedAvg`.
    threshold : float
        Fraction of the ``m`` sampled clients needed to unmask: ``t_s = ceil(threshold m)``.
        The default 2/3 tolerates up to a third of the clients dropping out.
    dropout : float
        Probability in ``[0, 1)`` that a sampled client drops out after sharing its keys.
    bits : int
        ``R = 2^bits`` (2 to 64); the masked vectors travel as the smallest unsigned type.
    frac_bits : int
        Fractional bits ``f`` of the fixed-point encoding (step ``2^-f``).
    clip_range : float
        ``c``: each coordinate of an update is clipped to ``[-c, c]``.
    dh_group : {"teaching", "modp2048"}
        The Diffie-Hellman group (:mod:`minifed.privacy.dh`; "teaching" is NOT secure).
    """

    name = "secagg"

    def __init__(
        self,
        model: Model,
        lr: float,
        epochs: int = 1,
        batch_size: int | None = None,
        *,
        threshold: float = 2 / 3,
        dropout: float = 0.0,
        bits: int = 32,
        frac_bits: int = 16,
        clip_range: float = 1.0,
        dh_group: str = "teaching",
    ):
        super().__init__(model, lr, epochs, batch_size)
        self.threshold = check_fraction("threshold", threshold)
        self.dropout = check_nonnegative("dropout", dropout)
        if self.dropout >= 1:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout}.")
        self.bits = check_int("bits", bits, minimum=2)
        self.frac_bits = check_int("frac_bits", frac_bits, minimum=0)
        self.clip_range = check_positive("clip_range", clip_range)
        if self.bits > 64 or dh_group not in GROUPS:
            raise ValueError(
                f"need bits <= 64 and dh_group in {sorted(GROUPS)}, got {bits}, {dh_group!r}."
            )
        self.dh_group = dh_group

    def init_state(self, w):
        """Per-round counters, recorded in the history: the protocol's key and share bytes,
        the clients that dropped out, whether the round was abandoned."""
        return {"secagg_bytes_up": 0, "secagg_bytes_down": 0, "dropped": 0, "aborted": 0}

    def up(self, w):
        """One masked vector ``y_k`` in ``Z_R^d``, as ``uint32`` (``bits = 32``)."""
        return {"y": (w.shape, Settings(1, self.bits).dtype)}

    def settings(self, m: int) -> Settings:
        """The protocol's settings for a round of ``m`` clients."""
        t_s = max(1, math.ceil(round(self.threshold * m, 9)))
        return Settings(t_s, self.bits, GROUPS[self.dh_group])

    def client_update(self, w, X_k, y_k, rng, k, t, S, seed) -> np.ndarray:
        """FedAvg's ClientUpdate, encoded and masked (round 2); zeros, never delivered, if the
        client dropped out."""
        cohort = round_cohort(seed, t, tuple(map(int, S)), self.settings(len(S)), self.dropout)
        if k not in cohort.senders:
            return np.zeros(w.shape, cohort.settings.dtype)
        delta = self.local_sgd(w, X_k, y_k, rng) - w
        x_k = encode(delta, len(y_k), self.frac_bits, self.clip_range, self.bits)
        return cohort.users[k].masked_input(x_k)

    def server_update(self, w, M, n_S, S, t, seed):
        """Unmask ``z = sum_{U3} x_k``; ``w_{t+1} = w_t + z / (2^f sum_{U3} n_k)``."""
        cohort = round_cohort(seed, t, tuple(map(int, S)), self.settings(len(S)), self.dropout)
        arrived = [i for i, k in enumerate(S) if k in cohort.senders]
        n_U3 = int(np.sum(np.asarray(n_S)[arrived]))
        check_range(n_U3, self.frac_bits, self.clip_range, self.bits)
        try:
            z, ledger = cohort.finish({int(S[i]): M[i] for i in arrived})
        except ThresholdError as error:  # too few left: the round is abandoned, w unchanged
            return w.copy(), _counters(error.ledger, len(S) - len(arrived), aborted=1)
        mean = decode(z, self.bits) / (2.0**self.frac_bits * n_U3)  # (d,) weighted mean update
        w_next = (w.astype(np.float64) + mean).astype(w.dtype)
        return w_next, _counters(ledger, len(S) - len(arrived), aborted=0)


def _counters(ledger: Ledger, dropped: int, aborted: int) -> dict:
    """The round's server state: protocol bytes other than the masked vectors (counted by the
    loop as ``bytes_up``), the number of dropouts, whether the round was abandoned."""
    return {
        "secagg_bytes_up": ledger.total_up - ledger.up["masked"],
        "secagg_bytes_down": ledger.total_down,
        "dropped": dropped,
        "aborted": aborted,
    }


@lru_cache(maxsize=4)
def round_cohort(seed: int, t: int, S: tuple, settings: Settings, dropout: float) -> Cohort:
    """The users ``S`` of round ``t`` after the protocol's rounds 0 and 1; the same in every
    process (cached: the clients of a round and the server share one). Client ``k`` first
    draws whether it drops out, then its keys, from ``derived_rng(seed, SECAGG, t, k)``."""
    users, drops = [], {}
    for k in S:
        rng = derived_rng(seed, SECAGG, t, k)
        if rng.random() < dropout:
            drops[k] = "masked"
        users.append(User(k, rng, settings))
    return Cohort(users, drops)
