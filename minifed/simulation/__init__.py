"""Simulating federated training on one machine: the round loop and what it records."""

from minifed.seeding import client_rng, server_rng
from minifed.simulation.checkpoint import CheckpointError, RunState, load_checkpoint
from minifed.simulation.engine import ClientError, SequentialEngine
from minifed.simulation.evaluate import evaluate
from minifed.simulation.history import History
from minifed.simulation.loop import DivergenceError, run
from minifed.simulation.parallel import ProcessEngine, WorkerError
from minifed.simulation.sampling import clients_per_round, sample_clients
from minifed.simulation.state import ClientStates

__all__ = [
    "CheckpointError",
    "ClientError",
    "ClientStates",
    "DivergenceError",
    "History",
    "ProcessEngine",
    "RunState",
    "SequentialEngine",
    "WorkerError",
    "client_rng",
    "clients_per_round",
    "evaluate",
    "load_checkpoint",
    "run",
    "sample_clients",
    "server_rng",
]
