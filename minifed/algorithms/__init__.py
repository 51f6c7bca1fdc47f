"""Federated algorithms, one module each, reading like the papers' pseudo-code."""

from minifed.algorithms.base import Algorithm, aggregate, minibatches
from minifed.algorithms.fedavg import FedAvg
from minifed.algorithms.fedsgd import FedSGD

ALGORITHMS = {"fedsgd": FedSGD, "fedavg": FedAvg}

__all__ = ["ALGORITHMS", "Algorithm", "FedAvg", "FedSGD", "aggregate", "minibatches"]
