"""Regenerate every figure the README shows: ``python figures/make_figures.py``.

- ``demo.png``: the demo's FedSGD-against-FedAvg comparison (trains for about a minute);
- ``fedavg_mnist_table.md``, ``fedavg_mnist_2nn.png``, ``fedavg_mnist_cnn.png``: the FedAvg paper
  reproduction, drawn from the histories recorded in ``benchmarks/results/fedavg_mnist/`` (run
  ``benchmarks/reproduce_fedavg.py`` to record them; drawing needs no training);
- ``fedprox_synthetic.png`` and its table: the FedProx paper reproduction, from
  ``benchmarks/results/fedprox_synthetic/``;
- ``compare_mnist.png`` and its table: six algorithms on pathological non-IID MNIST, from
  ``benchmarks/results/compare_mnist/``.
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
    for command in steps:
        print("$", " ".join(command), flush=True)
        subprocess.run(command, check=True, cwd=ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
