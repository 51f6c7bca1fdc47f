"""Secure aggregation with dropouts: the four rounds of Bonawitz et al. (CCS 2017), Fig. 4.

The server learns ``z = sum_{u in U3} x_u mod R`` and nothing else about the vectors ``x_u`` in
``Z_R^d`` (``R = 2^bits``), even when users drop out. This is the honest-but-curious version:
round 3 (ConsistencyCheck) and the signatures belong to the actively secure one, against a server
that lies about who dropped. ``U1``, ``U2``, ``U3``, ``U5`` (each containing the next) are the
users still present at rounds 0, 1, 2 and 4:

    Round 0  AdvertiseKeys   u -> S:  c_u^PK, s_u^PK                     S -> U1: all the keys
    Round 1  ShareKeys       u: draw b_u; t-out-of-|U1| Shamir shares of s_u^SK and b_u;
                             u -> S -> v: E(KA(c_u^SK, c_v^PK), (s_u^SK)_v, (b_u)_v)
    Round 2  MaskedInputCollection
                             u -> S:  y_u = x_u + PRG(b_u) + sum_{v in U2, u < v} PRG(s_uv)
                                                           - sum_{v in U2, u > v} PRG(s_uv)
                             with s_uv = KA(s_u^SK, s_v^PK) = s_vu       (S -> U3: the list U3)
    Round 4  Unmasking       v -> S:  (b_u)_v for u in U3, (s_u^SK)_v for u in U2 \\ U3
                             S: z = sum_{U3} y_u - sum_{u in U3} PRG(b_u)
                                    - sum_{u in U2 \\ U3, v in U3} (+-PRG(s_vu))   (the dropouts')

Pairwise masks cancel in the sum over users who both sent; the masks shared with a user who
dropped after ShareKeys are recomputed by the server from that user's reconstructed key
``s_u^SK``. The self-mask ``b_u`` (double masking) protects a user whose ``y_u`` arrives *late*,
after the server has already asked for its ``s_u^SK``: the server never holds both ``b_u`` and
``s_u^SK`` of one user, because each survivor sends exactly one of the two shares per user.
With fewer than ``t`` users left at any round the protocol refuses to continue
(:class:`ThresholdError`); each client also refuses when it sees fewer than ``t``.

Key agreement ``KA``, the key derivation and the share encryption ``E`` are in
:mod:`minifed.privacy.dh` (TEACHING parameters, labelled there, with what production uses);
Shamir sharing is in :mod:`minifed.privacy.shamir`. ``PRG(key)`` expands a 32-byte key by a NumPy
generator seeded with it: readable, uniform enough for the statistics tests, but NOT a
cryptographic PRG. :class:`~minifed.privacy.cohort.Cohort` runs the users' side in one process;
every message of the server goes through :class:`Server`, which counts its bytes (:class:`Ledger`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from minifed.privacy import shamir
from minifed.privacy.dh import (
    TAG_BYTES,
    TEACHING_GROUP,
    Group,
    agree,
    decrypt,
    encrypt,
    kdf,
    keygen,
    random_below,
)

ID_BYTES = 4  # a user id on the wire
ROUNDS = ("advertise", "share", "masked", "unmask")


class ThresholdError(RuntimeError):
    """Fewer than ``t`` users remain: the protocol refuses to go on (and to unmask)."""


@dataclass(frozen=True)
class Settings:
    """Public parameters of one aggregation: threshold ``t``, ``R = 2^bits``, the DH group."""

    threshold: int
    bits: int = 32
    group: Group = TEACHING_GROUP

    def __post_init__(self):
        if not 2 <= self.bits <= 64:
            raise ValueError(f"bits must be in [2, 64], got {self.bits}.")
        if self.threshold < 1:
            raise ValueError(f"the threshold t must be at least 1, got {self.threshold}.")

    @property
    def dtype(self) -> np.dtype:
        """The smallest unsigned integer type holding ``bits`` bits (the wire format)."""
        return np.dtype(next(f"uint{n}" for n in (8, 16, 32, 64) if n >= self.bits))

    def reduce(self, a: np.ndarray) -> np.ndarray:
        """``a mod R`` in the wire dtype (unsigned arithmetic already wraps modulo ``2^width``)."""
        return (a & np.uint64(2**self.bits - 1)).astype(self.dtype)

    @property
    def share_bytes(self) -> int:
        """One encrypted ShareKeys message: header (sender, receiver), two shares, the tag."""
        return 2 * ID_BYTES + 2 * self.group.field_bytes + TAG_BYTES


def prg(key: bytes, d: int, settings: Settings) -> np.ndarray:
    """``PRG(key)``: ``d`` values uniform in ``Z_R`` from a generator seeded by the key."""
    rng = np.random.default_rng(int.from_bytes(key, "big"))
    return rng.integers(0, 2**settings.bits, size=d, dtype=settings.dtype)


def pair_key(group: Group, sk: int, pk: int) -> bytes:
    """The seed of the pairwise mask ``PRG(s_uv)``, ``s_uv = KA(s_u^SK, s_v^PK)``."""
    return kdf(agree(group, sk, pk), b"pairwise-mask")


def self_key(group: Group, b: int) -> bytes:
    """The seed of the self-mask ``PRG(b_u)``."""
    return kdf(b.to_bytes(group.field_bytes, "big"), b"self-mask")


@dataclass
class Ledger:
    """Bytes received (``up``) and sent (``down``) by the server, per round of the protocol."""

    up: dict = field(default_factory=lambda: dict.fromkeys(ROUNDS, 0))
    down: dict = field(default_factory=lambda: dict.fromkeys(ROUNDS, 0))

    def add(self, phase: str, up: int = 0, down: int = 0) -> None:
        self.up[phase] += int(up)
        self.down[phase] += int(down)

    @property
    def total_up(self) -> int:
        return sum(self.up.values())

    @property
    def total_down(self) -> int:
        return sum(self.down.values())


def expected_ledger(n1, n2, n3, n5, vector_bytes: int, settings: Settings) -> Ledger:
    """The bytes of one aggregation with ``|U1|, |U2|, |U3|, |U5|`` users present at each round
    and masked inputs of ``vector_bytes`` each: the count :class:`Server` makes, in closed form.

    Per user, roughly ``2 a_K + (n - 1) C + vector`` up and ``n (4 + 2 a_K) + (n - 1) C`` down
    before Unmasking (``a_K`` a public key, ``C`` an encrypted pair of shares), then ``n`` shares
    up: linear in ``n``, plus the vector.
    """
    key, share = settings.group.key_bytes, settings.share_bytes
    ledger = Ledger()
    ledger.add("advertise", up=n1 * 2 * key, down=n1 * n1 * (ID_BYTES + 2 * key))
    ledger.add("share", up=n2 * (n1 - 1) * share, down=n2 * (n2 - 1) * share)
    ledger.add("masked", up=n3 * vector_bytes)
    ledger.add("unmask", up=n5 * n2 * (ID_BYTES + settings.group.field_bytes))
    ledger.add("unmask", down=n3 * n3 * ID_BYTES)  # the list U3, sent to each survivor
    return ledger


def require(n: int, t: int, where: str) -> None:
    """Refuse to go on with fewer than ``t`` users."""
    if n < t:
        raise ThresholdError(
            f"{where}: only {n} users remain, fewer than the threshold t = {t}; the protocol "
            "aborts and the server does not unmask (fewer than t shares reveal nothing)."
        )


def forward(sent: dict) -> dict:
    """The server's relay after ShareKeys: ``{v: {u: e_uv}}`` for the users ``v`` in ``U2``."""
    return {v: {u: box[v] for u, box in sent.items() if u != v} for v in sent}


class User:
    """User ``u`` of one aggregation: its two key pairs and self-mask seed, from its own generator.

    The methods are the user's side of the rounds, in order; each takes what the server sent.
    """

    def __init__(self, u: int, rng: np.random.Generator, settings: Settings):
        group = settings.group
        self.u, self.settings, self._rng = int(u), settings, rng
        self.c_sk, self.c_pk = keygen(group, rng)  # encrypts the shares sent to the others
        self.s_sk, self.s_pk = keygen(group, rng)  # agrees the pairwise mask seeds s_uv
        self.b = random_below(rng, group.q)  # seed of the self-mask PRG(b_u)
        self.roster: dict[int, tuple[int, int]] = {}
        self.inbox: dict[int, bytes] = {}
        self.own: tuple[int, int] | None = None  # u's own shares of s_u^SK and b_u

    def advertise_keys(self) -> tuple[int, int]:
        """Round 0: ``(c_u^PK, s_u^PK)``."""
        return self.c_pk, self.s_pk

    def share_keys(self, roster: dict[int, tuple[int, int]]) -> dict[int, bytes]:
        """Round 1: shares of ``s_u^SK`` and ``b_u`` at ``x = v + 1`` for every ``v`` in ``U1``;
        the share for ``v`` encrypted with ``KA(c_u^SK, c_v^PK)``. Returns ``{v: e_uv}``."""
        t, q = self.settings.threshold, self.settings.group.q
        require(len(roster), t, f"user {self.u}, ShareKeys")
        self.roster = dict(roster)
        U1 = sorted(roster)
        s_shares = shamir.share(self.s_sk, [v + 1 for v in U1], t, q, self._rng)
        b_shares = shamir.share(self.b, [v + 1 for v in U1], t, q, self._rng)
        sent, n = {}, self.settings.group.field_bytes
        for v, s_v, b_v in zip(U1, s_shares, b_shares, strict=True):
            if v == self.u:
                self.own = (s_v, b_v)
            else:
                body, header = s_v.to_bytes(n, "big") + b_v.to_bytes(n, "big"), _header(self.u, v)
                sent[v] = header + encrypt(self._enc_key(v), header, body)
        return sent

    def receive(self, inbox: dict[int, bytes]) -> None:
        """End of round 1: the ciphertexts ``e_vu`` the server forwarded; their senders are
        ``U2 \\ {u}``."""
        self.inbox = dict(inbox)

    def masked_input(self, x: np.ndarray) -> np.ndarray:
        """Round 2: ``y_u = x_u + PRG(b_u) + sum_{v > u} PRG(s_uv) - sum_{v < u} PRG(s_uv)`` mod R,
        over ``v`` in ``U2``; ``x`` holds integers in ``Z_R``."""
        settings, group = self.settings, self.settings.group
        U2 = sorted({*self.inbox, self.u})
        require(len(U2), settings.threshold, f"user {self.u}, MaskedInputCollection")
        d = len(x)
        y = settings.reduce(np.asarray(x).astype(np.uint64))
        y = y + prg(self_key(group, self.b), d, settings)
        for v in U2:
            if v != self.u:
                p_uv = prg(pair_key(group, self.s_sk, self.roster[v][1]), d, settings)
                y = y + p_uv if self.u < v else y - p_uv  # unsigned: wraps modulo 2^width
        return settings.reduce(y)

    def unmask(self, U3) -> dict[int, int]:
        """Round 4: for each ``v`` in ``U2``, the share of ``b_v`` if ``v`` sent its masked input
        (``v`` in ``U3``), else the share of ``s_v^SK``: never both for one user."""
        U2 = {*self.inbox, self.u}
        if not set(U3) <= U2 or self.u not in U3:
            raise ValueError(f"user {self.u}: the server's list U3 is not a subset of U2.")
        require(len(U3), self.settings.threshold, f"user {self.u}, Unmasking")
        shares = {self.u: self.own, **{v: self._open(v, e) for v, e in self.inbox.items()}}
        return {v: shares[v][1] if v in U3 else shares[v][0] for v in sorted(U2)}

    def _enc_key(self, v: int) -> bytes:
        return kdf(agree(self.settings.group, self.c_sk, self.roster[v][0]), b"share-encryption")

    def _open(self, v: int, e: bytes) -> tuple[int, int]:
        """Decrypt ``e_vu``: the shares of ``s_v^SK`` and ``b_v`` that ``v`` gave ``u``."""
        header, n = _header(v, self.u), self.settings.group.field_bytes
        if e[: 2 * ID_BYTES] != header:
            raise ValueError(f"user {self.u}: a share from {v} carries the wrong header.")
        body = decrypt(self._enc_key(v), header, e[2 * ID_BYTES :])
        return int.from_bytes(body[:n], "big"), int.from_bytes(body[n:], "big")


def _header(u: int, v: int) -> bytes:
    return u.to_bytes(ID_BYTES, "big") + v.to_bytes(ID_BYTES, "big")


class Server:
    """The server's side of the rounds; counts every byte it receives and sends."""

    def __init__(self, settings: Settings):
        self.settings, self.ledger = settings, Ledger()

    def advertise_keys(self, keys: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
        """Round 0: collect ``{u: (c_u^PK, s_u^PK)}`` from ``U1``; broadcast the list to ``U1``."""
        n, key = len(keys), self.settings.group.key_bytes
        self.ledger.add("advertise", up=n * 2 * key)
        require(n, self.settings.threshold, "AdvertiseKeys")
        self.roster = dict(sorted(keys.items()))
        self.ledger.add("advertise", down=n * n * (ID_BYTES + 2 * key))
        return self.roster

    def share_keys(self, sent: dict[int, dict[int, bytes]]) -> dict[int, dict[int, bytes]]:
        """Round 1: collect the ciphertexts of ``U2``; forward to each ``v`` those for ``v``."""
        self.ledger.add("share", up=sum(len(e) for box in sent.values() for e in box.values()))
        require(len(sent), self.settings.threshold, "ShareKeys")
        self.U2 = sorted(sent)
        inboxes = forward(sent)
        self.ledger.add("share", down=sum(len(e) for box in inboxes.values() for e in box.values()))
        return inboxes

    def masked_input(self, Y: dict[int, np.ndarray]) -> list[int]:
        """Round 2: collect ``y_u`` from ``U3``, keep their sum mod R; send ``U3`` to ``U3``."""
        self.ledger.add("masked", up=sum(np.asarray(y).nbytes for y in Y.values()))
        require(len(Y), self.settings.threshold, "MaskedInputCollection")
        if not set(Y) <= set(self.U2):
            raise ValueError("a masked input came from a user who did not share its keys.")
        self.U3 = sorted(Y)
        self.sum = self.settings.reduce(np.sum([np.asarray(y, np.uint64) for y in Y.values()], 0))
        self.ledger.add("unmask", down=len(Y) * len(Y) * ID_BYTES)
        return self.U3

    def unmask(self, responses: dict[int, dict[int, int]]) -> np.ndarray:
        """Round 4: from ``t`` survivors' shares rebuild ``b_u`` (``u`` in ``U3``) and ``s_u^SK``
        (``u`` dropped after ShareKeys); remove the masks; return ``sum_{U3} x_u mod R``."""
        settings, group = self.settings, self.settings.group
        self.ledger.add(
            "unmask",
            up=sum(len(r) for r in responses.values()) * (ID_BYTES + group.field_bytes),
        )
        require(len(responses), settings.threshold, "Unmasking")
        helpers = sorted(responses)[: settings.threshold]  # any t shares determine a secret

        def rebuild(u: int) -> int:
            return shamir.reconstruct([(v + 1, responses[v][u]) for v in helpers], group.q)

        z, d = self.sum.astype(np.uint64), len(self.sum)
        for u in self.U3:
            z = z - prg(self_key(group, rebuild(u)), d, settings)
        for u in sorted(set(self.U2) - set(self.U3)):  # dropped after sharing its keys
            s_u = rebuild(u)
            for v in self.U3:  # y_v holds +PRG(s_vu) if v < u, else -PRG(s_vu)
                p_vu = prg(pair_key(group, s_u, self.roster[v][1]), d, settings)
                z = z - p_vu if v < u else z + p_vu
        return settings.reduce(z)
