"""Simulating federated training on one machine: the round loop and what it records."""

from minifed.simulation.checkpoint import load_checkpoint, save_checkpoint
from minifed.simulation.engine import ClientError, SequentialEngine
from minifed.simulation.evaluate import evaluate
from minifed.simulation.history import History
from minifed.simulation.loop import DivergenceError, run
from minifed.simulation.parallel import ProcessEngine, WorkerError
from minifed.simulation.sampling import client_rng, clients_per_round, sample_clients

__all__ = [
    "ClientError",
    "DivergenceError",
    "History",
    "ProcessEngine",
    "SequentialEngine",
    "WorkerError",
    "client_rng",
    "clients_per_round",
    "evaluate",
    "load_checkpoint",
    "run",
    "sample_clients",
    "save_checkpoint",
]
