"""What secure aggregation costs: bytes against sending in the clear, and seconds per round.

    python benchmarks/secagg_cost.py            # the full tables (~1 min on 2 idle cores)
    python benchmarks/secagg_cost.py --quick    # small sizes (the test's path, a few seconds)

Table 1 runs the protocol (:func:`minifed.privacy.cohort.secure_sum`, TEACHING group, threshold
``t = ceil(2n/3)``) on ``n`` users with ``d`` random 16-bit inputs, with and without 30 %
dropouts (users that shared their keys, then dropped), and reports the bytes sent up (public
keys, encrypted shares, the masked vectors, Unmasking shares; per user) and the expansions: the
round's bytes up, and up + down (the server's relays too), over the bytes of the same round in
the clear (``2d`` for each 16-bit vector that reaches the server). The masked
vectors are ``uint32`` (``R = 2^32``), so the vector alone doubles the bytes; the "packed"
column gives the up + down expansion if they travelled in ``16 + ceil(log2 n)`` bits, the
paper's choice (the sum of ``n`` 16-bit values fits).

Table 2 is the same count in closed form (:func:`minifed.privacy.secagg.expected_ledger`, equal
to the measured ledger: the tests check it) at the sizes of Bonawitz et al. 2017, whose abstract
reports "for 16-bit input values, our protocol offers 1.73x communication expansion for 2^10
users and 2^20-dimensional vectors, and 1.98x expansion for 2^14 users and 2^24-dimensional
vectors" (CCS 2017, https://research.google/pubs/pub47246/; arXiv:1611.04482). Their figures
are reproduced to the third digit by counting, per user, ``2n`` received public keys and
``5n - 4`` shares (``n - 1`` encrypted pairs sent and received, ``n`` shares in Unmasking) of
256 bits each plus the ``16 + log2 n``-bit masked vector: that cost model is this script's
reconstruction, shown as "model". minifed's messages carry more: user ids, a 64-bit routing
header and a 256-bit authentication tag per encrypted pair, and the id of each share.

Table 3 times rounds of :class:`~minifed.algorithms.SecAggFedAvg` against FedAvg (K = 100
clients, m = 10 a round, softmax regression on 784 features: d = 7850).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from minifed.algorithms import FedAvg, SecAggFedAvg
from minifed.data.synthetic import gaussian_blobs
from minifed.dataset import FederatedDataset
from minifed.models import SoftmaxRegression
from minifed.partition import iid
from minifed.privacy.cohort import secure_sum
from minifed.privacy.dh import MODP_2048, TEACHING_GROUP
from minifed.privacy.secagg import Settings, expected_ledger
from minifed.simulation import run

FULL = {
    "measured": [(10, 2**16, 0.0), (10, 2**16, 0.3), (30, 2**16, 0.0), (30, 2**16, 0.3),
                 (100, 2**12, 0.3), (30, 2**20, 0.0)],
    "modp": [(5, 2**10, 0.0)],
    "rounds": 5,
}  # fmt: skip
QUICK = {"measured": [(10, 2**10, 0.0), (10, 2**10, 0.3)], "modp": [], "rounds": 2}
PAPER = [(2**10, 2**20, 1.73), (2**14, 2**24, 1.98)]  # (users, vector length, reported)


def measure(n: int, d: int, dropout: float, group, seed: int = 0) -> dict:
    """One aggregation among ``n`` users of ``d`` 16-bit values; bytes per user and seconds."""
    rng = np.random.default_rng([seed, n, d])
    X = rng.integers(0, 2**16, size=(n, d))
    dropped = rng.choice(n, size=round(dropout * n), replace=False)
    t = math.ceil(2 * n / 3)
    start, cpu = time.perf_counter(), time.process_time()
    z, ledger = secure_sum(X, t, seed=seed, drops=dict.fromkeys(dropped.tolist(), "masked"),
                           group=group)  # fmt: skip
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    senders = np.setdiff1d(np.arange(n), dropped)
    assert np.array_equal(z, X[senders].sum(axis=0) % 2**32), "the sum must be exact"
    packed = math.ceil(d * (16 + math.ceil(math.log2(n))) / 8) - 4 * d  # vs uint32
    return {"n": n, "d": d, "dropped": len(dropped), "group": group.name, "seconds": seconds,
            "cpu": cpu,
            "clear": 2 * d * len(senders), "up": ledger.total_up, "down": ledger.total_down,
            "packed": ledger.total_up + ledger.total_down + len(senders) * packed}  # fmt: skip


def table_measured(rows) -> str:
    lines = [
        "| users n | d | dropped | group | up B/user | up expansion | up+down expansion "
        "| packed | s/round (CPU s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        clear = r["clear"]  # the senders' 16-bit vectors
        lines.append(
            f"| {r['n']} | 2^{int(math.log2(r['d']))} | {r['dropped']} | {r['group']} "
            f"| {r['up'] / r['n']:,.0f} | {r['up'] / clear:.3f}x "
            f"| {(r['up'] + r['down']) / clear:.3f}x | {r['packed'] / clear:.3f}x "
            f"| {r['seconds']:.2f} ({r['cpu']:.2f}) |"
        )
    return "\n".join(lines)


def table_paper() -> str:
    lines = ["| users n | d | paper | model | minifed packed | minifed uint32 |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for n, d, reported in PAPER:
        bits = 16 + int(math.log2(n))
        model = (2 * n * 256 + (5 * n - 4) * 256 + d * bits) / (16 * d)
        clear = 2 * d
        packed = _per_user(n, math.ceil(d * bits / 8)) / clear
        uint32 = _per_user(n, 4 * d) / clear
        lines.append(f"| 2^{int(math.log2(n))} | 2^{int(math.log2(d))} | {reported}x "
                     f"| {model:.3f}x | {packed:.3f}x | {uint32:.3f}x |")  # fmt: skip
    return "\n".join(lines)


def _per_user(n: int, vector_bytes: int) -> float:
    """Bytes up + down per user without dropouts, from the closed-form ledger."""
    ledger = expected_ledger(n, n, n, n, vector_bytes, Settings(math.ceil(2 * n / 3)))
    return (ledger.total_up + ledger.total_down) / n


def time_rounds(rounds: int, seed: int = 0) -> str:
    """Seconds per round of FedAvg and SecAggFedAvg (0 % and 30 % dropouts)."""
    rng = np.random.default_rng(seed)
    X, y = gaussian_blobs(7000, 10, 784, spread=8.0, rng=rng)
    data = FederatedDataset(X[:6000], y[:6000], iid(6000, 100, rng=rng), X[6000:], y[6000:])
    model, local = SoftmaxRegression(784, 10), {"lr": 0.01, "epochs": 1, "batch_size": 10}
    lines = ["| algorithm | s/round | bytes_up/round | secagg bytes up+down/round | dropped |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name, algorithm in [("FedAvg", FedAvg(model, **local)),
                            ("SecAggFedAvg", SecAggFedAvg(model, **local)),
                            ("SecAggFedAvg, 30 % dropout",
                             SecAggFedAvg(model, **local, dropout=0.3))]:  # fmt: skip
        _, h = run(algorithm, data, rounds, fraction=0.1, seed=seed, eval_every=rounds,
                   eval_train=False, progress=False)  # fmt: skip
        r = h.rounds[1:]
        extra = sum(x.get("secagg_bytes_up", 0) + x.get("secagg_bytes_down", 0) for x in r)
        lines.append(f"| {name} | {np.mean([x['seconds'] for x in r]):.3f} "
                     f"| {np.mean([x['bytes_up'] for x in r]):,.0f} | {extra / len(r):,.0f} "
                     f"| {np.mean([x.get('dropped', 0) for x in r]):.1f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a few seconds)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    start = time.perf_counter()
    rows = [measure(n, d, p, TEACHING_GROUP) for n, d, p in cfg["measured"]]
    rows += [measure(n, d, p, MODP_2048) for n, d, p in cfg["modp"]]
    command = "python benchmarks/secagg_cost.py" + (" --quick" if args.quick else "")
    print(f"# Secure aggregation: cost ({command})\n")
    print("Table 1. One aggregation, measured (bytes per user; clear = 2d bytes)\n")
    print(table_measured(rows))
    print("\nTable 2. At the paper's sizes (closed form, no dropouts; up + down per user)\n")
    print(table_paper())
    print(f"\nTable 3. Rounds of FedAvg with and without secure aggregation ({cfg['rounds']} "
          "rounds, m = 10, d = 7850)\n")  # fmt: skip
    print(time_rounds(cfg["rounds"]))
    print(f"\ntotal: {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
