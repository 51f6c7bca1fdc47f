"""The protocol between the round loop and an algorithm with state (minifed.simulation.protocol).

``Drifting`` below keeps every kind of state the protocol knows: a broadcast server vector ``c``,
a scalar server counter, a per-client vector ``h_k``, and a message with two fields of different
dtypes. The loop must carry all of it through workers and checkpoints bit for bit.
"""

import numpy as np
import pytest
from conftest import blobs_federation

from minifed.algorithms import FedAvg
from minifed.models import SoftmaxRegression
from minifed.simulation import load_checkpoint, run
from minifed.simulation.protocol import check_algorithm

WALL_CLOCK = ("seconds", "eval_seconds")


class Drifting(FedAvg):
    """FedAvg whose clients also add a remembered drift ``h_k`` (a SCAFFOLD-like toy)."""

    name = "drifting"
    down = ("c",)

    def init_state(self, w):
        return {"c": np.zeros_like(w), "rounds_seen": 0}

    def init_client_state(self, w):
        return {"h_k": np.zeros_like(w)}

    def up(self, w):
        return {"w_k": (w.shape, w.dtype), "steps": ((), np.int32)}

    def client_update(self, w, X_k, y_k, rng, c, h_k, k, t):
        w_k = self.local_sgd(w, X_k, y_k, rng, drift=lambda w_k, g: g.__iadd__(c - h_k))
        h_new = 0.5 * h_k + 0.5 * (w - w_k)
        return {"w_k": w_k, "steps": k + t}, {"h_k": h_new}

    def server_update(self, w, M, n_S, c, rounds_seen):
        w_next = (n_S / n_S.sum()).astype(w.dtype) @ M["w_k"]
        return w_next, {"c": 0.9 * c + 0.1 * (w - w_next), "rounds_seen": rounds_seen + 1}


def interrupt_at(t):
    def callback(record, w):
        if record["round"] == t:
            raise KeyboardInterrupt

    return callback


def without_wall_clock(history):
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in history.rounds]


@pytest.fixture
def fed():
    return blobs_federation()


@pytest.fixture
def drifting():
    return Drifting(SoftmaxRegression(4, 3), lr=0.1, epochs=2, batch_size=8)


def test_state_reaches_the_history_and_bytes_follow_the_declared_messages(fed, drifting):
    _, history = run(drifting, fed, 4, fraction=0.3, seed=1)
    d = drifting.model.num_params
    for r in history.rounds[1:]:
        assert r["bytes_up"] == 3 * (4 * d + 4)  # w_k float32 + steps int32, m = 3
        assert r["bytes_down"] == 3 * (4 * d + 4 * d)  # w and the broadcast c
    assert [r["rounds_seen"] for r in history.rounds] == [0, 1, 2, 3, 4]  # scalar state recorded


def test_same_result_with_workers_after_resume_and_with_a_reused_object(tmp_path, fed, drifting):
    kwargs = dict(fraction=0.3, seed=2, eval_every=2)
    w1, h1 = run(drifting, fed, 6, **kwargs)
    w2, h2 = run(drifting, fed, 6, workers=2, **kwargs)
    w_again, h_again = run(drifting, fed, 6, **kwargs)  # the same object: no state carried over
    path = tmp_path / "ckpt.npz"
    with pytest.raises(KeyboardInterrupt):
        run(drifting, fed, 6, checkpoint=path, checkpoint_every=3, workers=2,
            callbacks=[interrupt_at(5)], **kwargs)  # fmt: skip
    saved = load_checkpoint(path)
    assert len(saved.history) == 6  # rounds 0..5: saved as the error stopped the run
    assert sorted(saved.server) == ["c", "rounds_seen"] and len(saved.clients) > 0
    w3, h3 = run(drifting, fed, 6, checkpoint=path, checkpoint_every=3, **kwargs)
    for w, h in [(w2, h2), (w_again, h_again), (w3, h3)]:
        np.testing.assert_array_equal(w, w1)
        assert without_wall_clock(h) == without_wall_clock(h1)


def test_client_state_is_created_lazily_and_kept_per_client(tmp_path, fed, drifting):
    path = tmp_path / "ckpt.npz"
    _, history = run(drifting, fed, 2, fraction=0.2, seed=3, checkpoint=path)
    touched = sorted({k for r in history.rounds for k in r["clients"]})
    clients = load_checkpoint(path).clients
    assert sorted(clients.rows) == touched and len(touched) < fed.K
    h = [clients.rows[k]["h_k"] for k in touched]
    assert not np.array_equal(h[0], h[1])  # each client its own row


def test_state_on_self_is_refused_with_where_it_belongs(fed):
    class Momentum(FedAvg):
        def server_update(self, w, W, n_S):
            self.v = W.mean(axis=0) - w  # state on self: lost by workers and checkpoints
            return w + self.v

    algorithm = Momentum(SoftmaxRegression(4, 3), lr=0.1)
    algorithm.v = np.zeros(15)
    with pytest.raises(TypeError, match=r"Momentum\.v holds an array.*init_state"):
        run(algorithm, fed, 1)


def test_unknown_argument_names_are_refused(fed):
    class Asks(FedAvg):
        def client_update(self, w, X_k, y_k, rng, secret):
            return w

    with pytest.raises(TypeError, match=r"client_update asks for 'secret'.*rng, k, t"):
        run(Asks(SoftmaxRegression(4, 3), lr=0.1), fed, 1)


def test_down_must_name_server_state(fed):
    class Broadcasts(FedAvg):
        down = ("c",)

    with pytest.raises(TypeError, match=r"down lists 'c'"):
        run(Broadcasts(SoftmaxRegression(4, 3), lr=0.1), fed, 1)


def test_a_message_of_the_wrong_shape_names_the_field(fed, drifting):
    class Short(Drifting):
        def up(self, w):
            return {"w_k": ((3,), w.dtype), "steps": ((), np.int32)}

    with pytest.raises(Exception, match=r"field 'w_k' has shape \(15,\).*\(3,\)"):
        run(Short(SoftmaxRegression(4, 3), lr=0.1), fed, 1)


def test_a_stateful_update_must_return_its_state(fed):
    class Forgets(Drifting):
        def server_update(self, w, M, n_S):
            return M["w_k"].mean(axis=0)

    with pytest.raises(TypeError, match=r"server_update must return a pair"):
        run(Forgets(SoftmaxRegression(4, 3), lr=0.1), fed, 1)


def test_check_algorithm_reads_the_declarations(drifting):
    w = drifting.model.init(np.random.default_rng(0))
    protocol, server = check_algorithm(drifting, w)
    assert protocol.up == {"w_k": ((15,), "<f4"), "steps": ((), "<i4")}
    assert protocol.down == ("c",) and protocol.client_fields == ("h_k",)
    assert sorted(server) == ["c", "rounds_seen"] and not protocol.single
