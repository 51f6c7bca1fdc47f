"""The main job: FedSGD against FedAvg on data that needs no download.

With Fashion-MNIST installed (Debian's ``dataset-fashion-mnist``, or under ``MINIFED_DATA``) the
demo trains the FedAvg paper's 2NN on 100 IID clients; otherwise it uses FedProx's
Synthetic(1, 1) with 30 devices and softmax regression. Both take well under a minute on 2 cores.
"""

from __future__ import annotations

from minifed.algorithms import FedAvg, FedSGD
from minifed.data import DatasetNotFoundError
from minifed.federations import load_federation, make_model
from minifed.simulation import History, run
from minifed.seeding import DATA, derived_rng

SETTINGS = {  # dataset: (partition, K, model, target, rounds, eval_every, FedSGD lr, FedAvg lr)
    "fashion-mnist": ("iid", 100, "2nn", 0.70, 40, 2, 0.3, 0.05),
    "synthetic": ("natural", None, "softmax", 0.70, 100, 4, 0.1, 0.01),
}
E, B = 5, 50  # FedAvg's local epochs and batch size


def demo_runs(dataset: str = "auto", seed: int = 0) -> tuple[dict[str, History], float, object]:
    """Run FedSGD and FedAvg (E=5, B=50) with C = 0.1; return ``(runs, target, data)``."""
    if dataset == "auto":
        try:
            return demo_runs("fashion-mnist", seed)
        except DatasetNotFoundError:
            return demo_runs("synthetic", seed)
    spec, K, model_name, target, rounds, every, lr_sgd, lr_avg = SETTINGS[dataset]
    data = load_federation(dataset, spec, K, rng=derived_rng(seed, DATA), download=False)
    model = make_model(model_name, data)
    common = {"fraction": 0.1, "seed": seed, "eval_every": every}
    algorithms = {
        "FedSGD": FedSGD(model, lr_sgd),
        f"FedAvg (E={E}, B={B})": FedAvg(model, lr_avg, E, B),
    }
    runs = {
        name: run(a, data, rounds, progress=name, **common)[1] for name, a in algorithms.items()
    }
    return runs, target, data
