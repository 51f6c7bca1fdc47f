"""The users of one secure aggregation, simulated in one process, and a one-call secure sum.

A :class:`Cohort` runs rounds 0 and 1 of :mod:`minifed.privacy.secagg` for every user when it is
built (keys advertised, shares encrypted and relayed to the inboxes). The masked inputs are then
computed one user at a time (``cohort.users[u].masked_input(x_u)``), by whoever holds ``x_u``, and
:meth:`Cohort.finish` runs the server's side of all four rounds on those messages, with the
survivors' Unmasking. A cohort is not modified after it is built, so the clients of a round (and
the server) can share one.

Dropouts: ``drops = {u: round}`` makes user ``u`` complete the rounds before ``round`` (one of
``"advertise", "share", "masked", "unmask"``) and send nothing from it on: ``"masked"`` is a user
that shared its keys and then dropped (its pairwise masks are removed with its reconstructed
``s_u^SK``), ``"unmask"`` one whose masked input arrived but that did not help unmask.
"""

from __future__ import annotations

import numpy as np

from minifed.privacy.dh import TEACHING_GROUP, Group
from minifed.privacy.secagg import (
    ROUNDS,
    Ledger,
    Server,
    Settings,
    ThresholdError,
    User,
    forward,
)
from minifed.seeding import SECAGG, derived_rng


class Cohort:
    """``users`` (with the same :class:`Settings`) after rounds 0 and 1, given the ``drops``."""

    def __init__(self, users: list[User], drops: dict[int, str] | None = None):
        self.users = {user.u: user for user in users}
        self.settings = users[0].settings
        self.drops = dict(drops or {})
        if not set(self.drops.values()) <= set(ROUNDS):
            raise ValueError(f"a drop names one of the rounds {ROUNDS}, got {self.drops}.")
        U1 = [u for u in self.users if self.present(u, "advertise")]
        self.keys = {u: self.users[u].advertise_keys() for u in U1}  # round 0
        U2 = [u for u in U1 if self.present(u, "share")]
        self.sent = {u: self.users[u].share_keys(self.keys) for u in U2}  # round 1
        for v, inbox in forward(self.sent).items():  # the server's relay
            self.users[v].receive(inbox)

    def present(self, u: int, round: str) -> bool:
        """``u`` has not dropped at or before ``round``."""
        drop = self.drops.get(u)
        return drop is None or ROUNDS.index(drop) > ROUNDS.index(round)

    @property
    def senders(self) -> list[int]:
        """The users who will send a masked input (``U3``)."""
        return [u for u in self.sent if self.present(u, "masked")]

    def finish(self, Y: dict[int, np.ndarray]) -> tuple[np.ndarray, Ledger]:
        """The server's side of the four rounds, with the masked inputs ``Y = {u: y_u}``;
        returns ``(sum_{u in U3} x_u mod R, the server's ledger)``.

        Raises :class:`ThresholdError` (with the ``ledger`` of the traffic so far attached)
        when fewer than ``t`` users remain at some round.
        """
        server = Server(self.settings)
        try:
            server.advertise_keys(self.keys)
            server.share_keys(self.sent)
            U3 = server.masked_input(Y)
            survivors = [v for v in U3 if self.present(v, "unmask")]
            return server.unmask({v: self.users[v].unmask(U3) for v in survivors}), server.ledger
        except ThresholdError as error:
            error.ledger = server.ledger
            raise


def secure_sum(
    X,
    threshold: int,
    *,
    seed: int = 0,
    drops: dict[int, str] | None = None,
    bits: int = 32,
    group: Group = TEACHING_GROUP,
) -> tuple[np.ndarray, Ledger]:
    """Securely sum the rows of ``X`` (integers, taken modulo ``R = 2^bits``) held by users
    ``0, ..., n-1``; returns ``(sum of the senders' rows mod R, ledger)``.

    User ``u`` draws its keys from ``derived_rng(seed, SECAGG, u)``.

    >>> X = np.array([[1, 2], [3, 4], [5, 6]])
    >>> z, ledger = secure_sum(X, threshold=2, drops={1: "masked"})  # user 1 drops out
    >>> z
    array([6, 8], dtype=uint32)
    """
    settings = Settings(threshold, bits, group)
    users = [User(u, derived_rng(seed, SECAGG, u), settings) for u in range(len(X))]
    cohort = Cohort(users, drops)
    Y = {u: cohort.users[u].masked_input(np.asarray(X[u])) for u in cohort.senders}
    return cohort.finish(Y)
