"""The FedAvg round benchmark of an earlier commit against this checkout, measured in one run.

    python benchmarks/compare_revisions.py 6b15321 [--rounds 20] [--repeats 5]

Checks the commit out into a temporary git worktree, then alternates the two code bases
``--repeats`` times; each repetition runs :func:`fedavg_round.time_rounds` in a fresh process
(one BLAS thread) with 2 workers and with 1, and keeps the median seconds per round. Printed:
the median over repetitions of each, for the commit and for this checkout. Alternating spreads
the machine's load over both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEASURE = """
import json, sys
import numpy as np
sys.path.insert(0, "benchmarks")
import fedavg_round
print(json.dumps({w: float(np.median(fedavg_round.time_rounds(%d, w)[1])) for w in (2, 1)}))
"""


def measure(tree: Path, rounds: int) -> dict[str, float]:
    """Median seconds per round with 2 and 1 workers, for the code in ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", MEASURE % rounds], cwd=tree, env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commit")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.commit],
                       cwd=ROOT, check=True, capture_output=True)  # fmt: skip
        try:
            trees = {args.commit: before, "this checkout": ROOT}
            seconds = {name: {"2": [], "1": []} for name in trees}
            for _ in range(args.repeats):
                for name, tree in trees.items():
                    for workers, s in measure(tree, args.rounds).items():
                        seconds[name][workers].append(s)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT)
    print(f"seconds per FedAvg round (2NN), median of {args.repeats} alternating repetitions")
    print(f"{'code':20s} {'workers=2':>10s} {'workers=1':>10s}")
    for name, s in seconds.items():
        print(f"{name:20s} {statistics.median(s['2']):10.3f} {statistics.median(s['1']):10.3f}")


if __name__ == "__main__":
    main()
