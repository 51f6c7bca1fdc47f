"""Federated algorithms, one module each, reading like the papers' pseudo-code."""

from minifed.algorithms.admm import FedADMM
from minifed.algorithms.base import Algorithm, aggregate, minibatches
from minifed.algorithms.dp_fedavg import DPFedAvg, LocalDPFedAvg
from minifed.algorithms.fedavg import FedAvg
from minifed.algorithms.fedopt import FedAdagrad, FedAdam, FedAvgM, FedOpt, FedYogi
from minifed.algorithms.fedprox import FedProx
from minifed.algorithms.fedsgd import FedSGD
from minifed.algorithms.scaffold import SCAFFOLD
from minifed.algorithms.secagg_fedavg import SecAggFedAvg

ALGORITHMS = {
    cls.name: cls
    for cls in (
        FedSGD,
        FedAvg,
        FedProx,
        SCAFFOLD,
        FedAvgM,
        FedAdagrad,
        FedAdam,
        FedYogi,
        FedADMM,
        SecAggFedAvg,
        DPFedAvg,
        LocalDPFedAvg,
    )
}

__all__ = [
    "ALGORITHMS",
    "SCAFFOLD",
    "Algorithm",
    "DPFedAvg",
    "FedADMM",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedOpt",
    "FedProx",
    "FedSGD",
    "FedYogi",
    "LocalDPFedAvg",
    "SecAggFedAvg",
    "aggregate",
    "minibatches",
]
