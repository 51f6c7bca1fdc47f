"""The algorithm contract: every registered algorithm keeps the promises of the round loop.

For each entry of ``minifed.algorithms.ALGORITHMS``: it pickles, holds no arrays on ``self``
(before or after a run), its messages match its declared wire format and the bytes counted,
the same seed gives the same history, a reused object gives the same result twice, a run resumed
from a checkpoint equals the uninterrupted run, and ``workers=2`` equals ``workers=1``, bit for
bit. A new algorithm joins the suite by adding a factory to ``FACTORIES``: the first test fails
until it does.
"""

import pickle

import numpy as np
import pytest
from conftest import blobs_federation

from minifed.algorithms import (
    ALGORITHMS,
    SCAFFOLD,
    FedADMM,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedProx,
    FedSGD,
    FedYogi,
    SecAggFedAvg,
)
from minifed.models import SoftmaxRegression
from minifed.simulation import load_checkpoint, run
from minifed.simulation.protocol import check_algorithm

WALL_CLOCK = ("seconds", "eval_seconds")
LOCAL = {"lr": 0.1, "epochs": 2, "batch_size": 8}

FACTORIES = {  # name -> algorithm on a model, with settings that exercise its state
    "fedsgd": lambda model: FedSGD(model, lr=0.3),
    "fedavg": lambda model: FedAvg(model, **LOCAL),
    "fedprox": lambda model: FedProx(model, **LOCAL, mu=0.1, stragglers=0.5),
    "scaffold": lambda model: SCAFFOLD(model, **LOCAL, server_lr=0.7),
    "fedavgm": lambda model: FedAvgM(model, **LOCAL, momentum=0.5),
    "fedadagrad": lambda model: FedAdagrad(model, **LOCAL, server_lr=0.1),
    "fedadam": lambda model: FedAdam(model, **LOCAL, server_lr=0.1),
    "fedyogi": lambda model: FedYogi(model, **LOCAL, server_lr=0.1),
    "fedadmm": lambda model: FedADMM(model, **LOCAL, rho=1.0),
    "secagg": lambda model: SecAggFedAvg(model, **LOCAL, dropout=0.3),
    "dp_fedavg": lambda model: ALGORITHMS["dp_fedavg"](
        model, **LOCAL, noise_multiplier=0.5, clip=0.5, adaptive=True, count_noise=1.0
    ),  # Poisson sampling (its default), so some rounds may have no client
    "ldp_fedavg": lambda model: ALGORITHMS["ldp_fedavg"](model, **LOCAL, noise_multiplier=0.5),
}
RUN = {"fraction": 0.3, "seed": 3, "eval_every": 2}


def without_wall_clock(history):
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in history.rounds]


def assert_same_run(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    assert without_wall_clock(a[1]) == without_wall_clock(b[1])


@pytest.fixture(scope="module")
def fed():
    return blobs_federation()


@pytest.fixture(params=sorted(FACTORIES))
def algorithm(request):
    return FACTORIES[request.param](SoftmaxRegression(4, 3))


@pytest.fixture
def reference(algorithm, fed):
    """The uninterrupted, sequential run every other run must equal."""
    return run(algorithm, fed, 6, **RUN)


def test_every_registered_algorithm_is_in_the_suite():
    assert set(FACTORIES) == set(ALGORITHMS)
    for name, cls in ALGORITHMS.items():
        assert cls.name == name


def test_pickles_and_holds_settings_only(algorithm, fed, reference):
    clone = pickle.loads(pickle.dumps(algorithm))
    assert clone.config() == algorithm.config()
    arrays = [k for k, v in vars(algorithm).items() if isinstance(v, np.ndarray)]
    assert arrays == [], "no state on self, even after a run"


def test_messages_match_the_declared_wire_format(algorithm, fed, reference):
    w = reference[0]
    protocol, server = check_algorithm(algorithm, w)
    per_client = sum(np.prod(shape, dtype=int) * np.dtype(dtype).itemsize
                     for shape, dtype in protocol.up.values())  # fmt: skip
    down = sum(np.asarray(server[f]).nbytes for f in protocol.down)
    for r in reference[1].rounds[1:]:
        m = len(r["clients"])
        assert r["bytes_up"] == m * per_client
        assert r["bytes_down"] == m * (w.nbytes + down)


def test_same_seed_and_a_reused_object_give_the_same_history(algorithm, fed, reference):
    assert_same_run(run(algorithm, fed, 6, **RUN), reference)
    other = run(algorithm, fed, 6, **{**RUN, "seed": 4})
    assert not np.array_equal(other[0], reference[0])


def test_resume_equals_the_uninterrupted_run(algorithm, fed, reference, tmp_path):
    path = tmp_path / "ckpt.npz"

    def interrupt(record, w):
        if record["round"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(algorithm, fed, 6, checkpoint=path, checkpoint_every=2, callbacks=[interrupt], **RUN)
    assert len(load_checkpoint(path).history) == 6  # saved as the error stopped round 5
    assert_same_run(run(algorithm, fed, 6, checkpoint=path, checkpoint_every=2, **RUN), reference)


def test_two_workers_equal_one(algorithm, fed, reference):
    assert_same_run(run(algorithm, fed, 6, workers=2, **RUN), reference)
