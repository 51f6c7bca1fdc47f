"""Regenerate every figure the README shows: ``python figures/make_figures.py``.

- ``demo.png``: the demo's FedSGD-against-FedAvg comparison (trains for about a minute);
- ``fedavg_mnist_table.md``, ``fedavg_mnist_2nn.png``, ``fedavg_mnist_cnn.png``: the FedAvg paper
  reproduction, drawn from the histories recorded in ``benchmarks/results/fedavg_mnist/`` (run
  ``benchmarks/reproduce_fedavg.py`` to record them; drawing needs no training);
- ``fedprox_synthetic.png`` and its table: the FedProx paper reproduction, from
  ``benchmarks/results/fedprox_synthetic/``;
- ``compare_mnist.png`` and its table: six algorithms on pathological non-IID MNIST, from
  ``benchmarks/results/compare_mnist/``;
- ``applications_table.md``, ``applications_<case>.png`` and ``applications_summary.png``: the
  four field cases, each silo alone, pooled and federated (``benchmarks/applications.py``
  trains them: 6-8 minutes on two cores, data in ``$MINIFED_DATA``).
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main() -> int:
    steps = [[sys.executable, "-m", "minifed", "demo", "--out", str(HERE / "demo.png")]]
    for script in ("reproduce_fedavg.py", "reproduce_fedprox.py", "compare_mnist.py"):
        steps.append(
            [sys.executable, str(ROOT / "benchmarks" / script), "table", "--out", str(HERE)]
        )
    steps.append([sys.executable, str(ROOT / "benchmarks" / "applications.py"), "--out", str(HERE)])
    for script in ("privacy_attacks.py", "privacy_utility.py"):
        steps.append([sys.executable, str(ROOT / "benchmarks" / script)])
    for command in steps:
        print("$", " ".join(command), flush=True)
        subprocess.run(command, check=True, cwd=ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
