"""The round loop: sampling, records, determinism, checkpoints, divergence, bad input."""

import io
import json
import sys

import numpy as np
import pytest
from conftest import blobs_federation

from minifed.algorithms import FedAvg, FedSGD
from minifed.dataset import FederatedDataset
from minifed.models import LinearRegression, SoftmaxRegression
from minifed.simulation import (
    CheckpointError,
    ClientError,
    DivergenceError,
    History,
    clients_per_round,
    load_checkpoint,
    run,
    sample_clients,
)
from minifed.simulation.checkpoint import fingerprint
from minifed.simulation.progress import Progress

WALL_CLOCK = ("seconds", "eval_seconds")


@pytest.fixture
def fed():
    return blobs_federation()


@pytest.fixture
def algorithm():
    return FedAvg(SoftmaxRegression(4, 3), lr=0.1, epochs=2, batch_size=8)


def without_wall_clock(history):
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in history.rounds]


def test_clients_per_round_follows_the_paper():
    assert clients_per_round(100, 0.1) == 10
    assert clients_per_round(100, 0.001) == 1  # max(C K, 1)
    assert clients_per_round(7, 1.0) == 7
    with pytest.raises(ValueError, match="fraction"):
        clients_per_round(10, 0.0)
    with pytest.raises(ValueError, match="fraction"):
        clients_per_round(10, 1.5)


def test_sample_clients_is_distinct_sorted_and_seeded():
    S = sample_clients(100, 0.1, seed=3, t=5)
    assert len(S) == len(set(S.tolist())) == 10 and np.all(np.diff(S) > 0)
    np.testing.assert_array_equal(S, sample_clients(100, 0.1, seed=3, t=5))
    assert not np.array_equal(S, sample_clients(100, 0.1, seed=3, t=6))
    assert not np.array_equal(S, sample_clients(100, 0.1, seed=4, t=5))


def test_sampling_is_uniform_over_clients():
    counts = np.zeros(20)
    for t in range(1, 2001):
        counts[sample_clients(20, 0.25, seed=0, t=t)] += 1
    expected = 2000 * 5 / 20
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


def test_sampling_by_size_favours_big_clients():
    n_k = np.array([1, 1, 1, 1, 96])
    hits = sum(4 in sample_clients(5, 0.2, 0, t, "size", n_k) for t in range(1, 201))
    assert hits > 150  # p = 0.96 per round


def test_availability_limits_the_sample_to_online_clients():
    availability = np.array([1.0, 0.0, 1.0, 0.0, 0.5, 0.5])
    for t in range(1, 50):
        S = sample_clients(6, 1.0, 0, t, availability=availability)
        assert 0 in S and 2 in S and 1 not in S and 3 not in S
    with pytest.raises(ValueError, match="sampling"):
        sample_clients(6, 0.5, 0, 1, scheme="fastest")


def test_poisson_sampling_keeps_each_client_with_probability_q():
    K, q, T = 20, 0.1, 3000
    counts, sizes = np.zeros(K), []
    for t in range(1, T + 1):
        S = sample_clients(K, q, seed=0, t=t, scheme="poisson")
        assert np.all(np.diff(S) > 0)
        counts[S] += 1
        sizes.append(len(S))
    expected = T * q
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))
    assert abs(np.mean(sizes) - q * K) < 0.05 * q * K and abs(np.var(sizes) - K * q * (1 - q)) < 0.3
    assert sizes.count(0) > 0  # P(|S_t| = 0) = 0.9^20 = 12 %: empty rounds happen
    np.testing.assert_array_equal(
        sample_clients(K, q, 4, 7, "poisson"), sample_clients(K, q, 4, 7, "poisson")
    )


def test_poisson_sampling_with_availability_keeps_online_clients_only():
    availability = np.array([1.0, 0.0, 1.0, 0.5])
    hits = np.zeros(4)
    for t in range(1, 2001):
        hits[sample_clients(4, 0.5, 0, t, "poisson", availability=availability)] += 1
    assert hits[1] == 0
    np.testing.assert_allclose(hits / 2000, [0.5, 0.0, 0.5, 0.25], atol=0.05)  # a_k q


def test_poisson_run_resumes_bit_for_bit_and_keeps_w_in_empty_rounds(tmp_path, fed, algorithm):
    settings = {"fraction": 0.1, "seed": 1, "sampling": "poisson"}
    w, reference = run(algorithm, fed, 8, **settings)
    sizes = [len(r["clients"]) for r in reference.rounds[1:]]
    assert 0 in sizes and len(set(sizes)) > 1 and reference.config["sampling"] == "poisson"
    path = tmp_path / "ckpt.npz"

    def interrupt(record, w):
        if record["round"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(algorithm, fed, 8, checkpoint=path, callbacks=[interrupt], **settings)
    w2, resumed = run(algorithm, fed, 8, checkpoint=path, **settings)
    np.testing.assert_array_equal(w2, w)
    assert without_wall_clock(resumed) == without_wall_clock(reference)
    with pytest.raises(CheckpointError, match="sampling"):  # another scheme: another run
        run(algorithm, fed, 8, checkpoint=path, fraction=0.1, seed=1)


class _NeedsPoisson(FedAvg):
    """Declares what DP-FedAvg declares: Poisson sampling, and a server update in every round."""

    requires_sampling = "poisson"
    runs_empty_rounds = True

    def init_state(self, w):
        return {"updates": 0}

    def server_update(self, w, W, updates):
        w_next = W.mean(axis=0) if len(W) else w
        return w_next, {"updates": updates + 1}


def test_an_algorithm_can_require_poisson_sampling_and_every_round(fed):
    algorithm = _NeedsPoisson(SoftmaxRegression(4, 3), lr=0.1)
    _, history = run(algorithm, fed, 10, fraction=0.05, seed=0)  # sampling defaults to poisson
    assert history.config["sampling"] == "poisson"
    assert any(r["clients"] == [] for r in history.rounds[1:])
    assert [r["updates"] for r in history.rounds] == list(range(11))  # empty rounds included
    for sampling in ("uniform", "size"):
        with pytest.raises(ValueError, match="sampling='poisson'"):
            run(algorithm, fed, 1, sampling=sampling)
    with pytest.raises(ValueError, match="availability"):
        run(algorithm, fed, 1, availability=np.ones(fed.K))
    with pytest.raises(ValueError, match="sampling"):
        run(FedAvg(SoftmaxRegression(4, 3), lr=0.1), fed, 1, sampling="bernoulli")


def test_round_with_no_client_online_keeps_w(fed, algorithm):
    w, history = run(algorithm, fed, 3, fraction=0.5, availability=np.zeros(fed.K))
    w0, _ = run(algorithm, fed, 0)
    np.testing.assert_array_equal(w, w0)
    assert all(r["clients"] == [] and r["bytes_up"] == 0 for r in history.rounds)
    with pytest.raises(ValueError, match="availability"):
        run(algorithm, fed, 1, availability=[0.5])


def test_history_records_every_round(fed, algorithm):
    w, history = run(algorithm, fed, rounds=4, fraction=0.3, eval_every=2)
    assert [r["round"] for r in history.rounds] == [0, 1, 2, 3, 4]
    d = algorithm.model.num_params
    for r in history.rounds[1:]:
        assert len(r["clients"]) == 3
        assert r["bytes_down"] == 3 * d * 4 and r["bytes_up"] == 3 * d * 4  # float32 vectors
        assert r["seconds"] >= 0
    assert history.rounds[1]["test_accuracy"] is None  # not an evaluation round
    evaluated = history.rounds[2]
    assert 0 <= evaluated["test_accuracy"] <= 1 and len(evaluated["client_accuracy"]) == fed.K
    assert w.dtype == np.float32


def test_training_improves_the_model(fed, algorithm):
    _, history = run(algorithm, fed, rounds=10, fraction=0.5)
    first, last = history.rounds[0], history.rounds[-1]
    assert last["train_loss"] < first["train_loss"]
    assert last["test_accuracy"] > 0.8


def test_same_seed_same_history_other_seed_other_history(fed, algorithm):
    w1, h1 = run(algorithm, fed, rounds=5, fraction=0.3, seed=11)
    w2, h2 = run(algorithm, fed, rounds=5, fraction=0.3, seed=11)
    w3, _ = run(algorithm, fed, rounds=5, fraction=0.3, seed=12)
    np.testing.assert_array_equal(w1, w2)
    assert without_wall_clock(h1) == without_wall_clock(h2)
    assert not np.array_equal(w1, w3)


def test_history_json_round_trip(tmp_path, fed, algorithm):
    _, history = run(algorithm, fed, rounds=3, fraction=0.3)
    path = history.save(tmp_path / "h.json")
    loaded = History.load(path)
    assert loaded == history
    data = json.loads(path.read_text())
    for key in ("round", "train_loss", "test_loss", "test_accuracy", "bytes_up", "bytes_down"):
        assert key in data["rounds"][-1]
    assert data["config"]["algorithm"] == "fedavg" and data["config"]["seed"] == 0


def test_history_helpers(fed, algorithm):
    _, history = run(algorithm, fed, rounds=6, fraction=0.3, eval_every=3)
    t, _ = history.metric("test_accuracy")
    np.testing.assert_array_equal(t, [0, 3, 6])
    assert history.rounds_to(0.0) == 0 and history.rounds_to(1.01) is None
    assert history.cumulative("bytes_up")[-1] == sum(r["bytes_up"] for r in history.rounds)
    with pytest.raises(KeyError, match="no metric"):
        history.metric("nope")


def test_checkpoint_resume_is_bit_for_bit(tmp_path, fed, algorithm):
    _, full = run(algorithm, fed, rounds=7, fraction=0.3, seed=5)
    path = tmp_path / "run.npz"

    def interrupt(record, w):
        if record["round"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(
            algorithm,
            fed,
            7,
            fraction=0.3,
            seed=5,
            checkpoint=path,
            checkpoint_every=2,
            callbacks=[interrupt],
        )
    saved = load_checkpoint(path).history
    assert len(saved) == 6  # rounds 0..5: saved as the error stopped the run
    w, resumed = run(algorithm, fed, 7, fraction=0.3, seed=5, checkpoint=path, checkpoint_every=2)
    w_full, _ = run(algorithm, fed, 7, fraction=0.3, seed=5)
    np.testing.assert_array_equal(w, w_full)
    assert without_wall_clock(resumed) == without_wall_clock(full)


def test_checkpoint_of_another_run_is_refused_with_the_settings_that_differ(
    tmp_path, fed, algorithm
):
    path = tmp_path / "run.npz"
    run(algorithm, fed, 2, fraction=0.3, seed=5, checkpoint=path)
    with pytest.raises(CheckpointError, match=r"another run \(seed=5 there, 6 now\)"):
        run(algorithm, fed, 2, fraction=0.3, seed=6, checkpoint=path)
    other = FedAvg(SoftmaxRegression(4, 3), lr=0.2, epochs=2, batch_size=8)
    with pytest.raises(CheckpointError, match=r"lr=0.1 there, 0.2 now"):
        run(other, fed, 2, fraction=0.3, seed=5, checkpoint=path)


def test_settings_that_do_not_change_the_result_do_not_block_a_resume(tmp_path, fed, algorithm):
    path = tmp_path / "run.npz"
    run(algorithm, fed, 2, fraction=0.3, seed=5, checkpoint=path, checkpoint_every=1)
    _, history = run(algorithm, fed, 4, fraction=0.3, seed=5, checkpoint=path,
                     checkpoint_every=3, eval_train=False, target_accuracy=0.999)  # fmt: skip
    assert len(history) == 5 and history.config["checkpoint_every"] == 3
    assert history.rounds[1]["train_loss"] is not None and history.rounds[4]["train_loss"] is None


def test_checkpoint_made_on_other_data_is_refused(tmp_path, fed, algorithm):
    path = tmp_path / "run.npz"
    run(algorithm, fed, 2, fraction=0.3, seed=5, checkpoint=path)
    same_shape = blobs_federation(seed=1)  # same name, K, n and shapes; other values
    with pytest.raises(CheckpointError, match=r"other data than 'blobs'"):
        run(algorithm, same_shape, 4, fraction=0.3, seed=5, checkpoint=path)


def test_resuming_with_fewer_rounds_than_recorded_is_refused(tmp_path, fed, algorithm):
    path = tmp_path / "run.npz"
    run(algorithm, fed, 5, fraction=0.3, checkpoint=path)
    with pytest.raises(CheckpointError, match=r"already holds 5 rounds.*at least 5"):
        run(algorithm, fed, 3, fraction=0.3, checkpoint=path)
    _, history = run(algorithm, fed, 5, fraction=0.3, checkpoint=path)  # nothing left to do
    assert len(history) == 6


@pytest.mark.parametrize(
    ("content", "what"),
    [(b"", "is empty"), (b"not a checkpoint at all", "damaged"), (None, "damaged")],
)
def test_an_unreadable_checkpoint_is_refused_in_one_sentence(
    tmp_path, fed, algorithm, content, what
):
    path = tmp_path / "run.npz"
    run(algorithm, fed, 2, fraction=0.3, checkpoint=path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if content is None else content)  # None: truncated
    with pytest.raises(CheckpointError, match=what) as info:
        run(algorithm, fed, 4, fraction=0.3, checkpoint=path)
    message = str(info.value)
    assert str(path) in message and "pickle" not in message and "\n" not in message


def test_checkpoint_writes_only_the_new_rounds_and_drops_unsaved_ones(tmp_path, fed, algorithm):
    """The history is appended to ``path.rounds.jsonl``; the state file does not grow."""
    path = tmp_path / "run.npz"
    log = tmp_path / "run.npz.rounds.jsonl"
    run(algorithm, fed, 4, fraction=0.3, checkpoint=path)
    size_4 = path.stat().st_size
    run(algorithm, fed, 40, fraction=0.3, checkpoint=path, checkpoint_every=7)
    assert path.stat().st_size - size_4 < 8  # w and the config: a digit more after 40 rounds
    assert len(log.read_text().splitlines()) == 41
    with open(log, "a") as f:
        f.write('{"round": 41, "clients": [1')  # a round written after the checkpoint, cut short
    _, history = run(algorithm, fed, 42, fraction=0.3, checkpoint=path)
    _, full = run(algorithm, fed, 42, fraction=0.3)
    assert without_wall_clock(history) == without_wall_clock(full)
    assert len(log.read_text().splitlines()) == 43


def test_an_error_keeps_the_history_and_saves_the_checkpoint(tmp_path, fed, algorithm):
    path = tmp_path / "run.npz"

    def fail(record, w):
        if record["round"] == 3:
            raise RuntimeError("a bug in a callback")

    with pytest.raises(RuntimeError, match="a bug") as info:
        run(algorithm, fed, 10, fraction=0.3, checkpoint=path, checkpoint_every=100,
            callbacks=[fail])  # fmt: skip
    assert len(info.value.history) == 4 and info.value.w.shape == (15,)
    assert len(load_checkpoint(path).history) == 4  # saved although checkpoint_every=100


@pytest.mark.filterwarnings("error")  # a clear DivergenceError, no overflow warnings before it
def test_divergence_names_the_round_and_keeps_the_history():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3)) * 10
    data = FederatedDataset(X, X @ np.ones(3), np.array_split(np.arange(50), 5))
    with pytest.raises(DivergenceError, match=r"round \d+") as info:
        run(FedSGD(LinearRegression(3), lr=10.0), data, rounds=200, fraction=1.0)
    error = info.value
    assert error.round >= 1 and len(error.history) == error.round  # rounds 0 .. t-1
    assert np.isfinite(error.w).all()


def test_test_only_evaluation(fed, algorithm):
    _, full = run(algorithm, fed, 3, fraction=0.3)
    _, light = run(algorithm, fed, 3, fraction=0.3, eval_train=False)
    assert light.rounds[-1]["train_loss"] is None and light.rounds[-1]["client_accuracy"] is None
    assert light.metric("test_accuracy")[1].tolist() == full.metric("test_accuracy")[1].tolist()
    no_test = FederatedDataset(fed.X, fed.y, [np.arange(fed.n)])
    with pytest.raises(ValueError, match="eval_train"):
        run(algorithm, no_test, 1, eval_train=False)


def test_target_accuracy_stops_early(fed, algorithm):
    _, history = run(algorithm, fed, rounds=50, fraction=0.5, target_accuracy=0.6)
    assert history.stopped == "target" and len(history) < 51
    assert history.rounds[-1]["test_accuracy"] >= 0.6


def test_resuming_a_run_that_reached_its_target_trains_no_further(tmp_path, fed, algorithm):
    path = tmp_path / "run.npz"
    w1, first = run(algorithm, fed, 50, fraction=0.5, target_accuracy=0.6, checkpoint=path)
    w2, again = run(algorithm, fed, 50, fraction=0.5, target_accuracy=0.6, checkpoint=path)
    assert again.stopped == "target" and len(again) == len(first)
    np.testing.assert_array_equal(w1, w2)


def test_callback_can_stop(fed, algorithm):
    _, history = run(algorithm, fed, 10, callbacks=[lambda r, w: r["round"] == 2])
    assert history.stopped == "callback" and len(history) == 3


def test_client_error_names_client_and_round(fed):
    class Faulty(FedAvg):
        def client_update(self, w, X_k, y_k, rng):
            if len(y_k) == 40 and w[0] != 12345:
                raise ArithmeticError("boom")
            return super().client_update(w, X_k, y_k, rng)

    with pytest.raises(
        ClientError, match=r"client \d+ failed in round 1: ArithmeticError\('boom'\)"
    ):
        run(Faulty(SoftmaxRegression(4, 3), 0.1), fed, 2, fraction=1.0)


def test_progress_line_has_the_same_fields_every_round(fed):
    stream = io.StringIO()
    bar = Progress(3, enabled=True, every=0.0, stream=stream, label="FedAvg")
    bar.update({"round": 0, "train_loss": 0.5, "test_accuracy": 0.9})
    bar.update({"round": 1, "train_loss": None, "test_accuracy": None})  # not evaluated
    first, second = stream.getvalue().splitlines()
    assert first.startswith("FedAvg  round 0/3  F(w) 0.5000 (round 0)  test acc 0.9000 (round 0)")
    assert second.startswith("FedAvg  round 1/3  F(w) 0.5000 (round 0)  test acc 0.9000 (round 0)")


def test_progress_in_jupyter_updates_one_output_not_stderr(monkeypatch):
    shown = []

    class FakeLine:
        def show(self, text):
            shown.append(text)

    monkeypatch.setitem(sys.modules, "ipykernel", object())
    monkeypatch.setattr("minifed.simulation.progress._jupyter_display", lambda: FakeLine())
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    bar = Progress(2, enabled=True)
    for t in range(3):
        bar.update({"round": t, "train_loss": 1.0 / (t + 1), "test_accuracy": None})
    bar.close()
    assert len(shown) == 2 and stderr.getvalue() == ""  # the first, then redraws at most
    assert shown[0].startswith("round 0/2")  # every 0.2 s, and the last round at the end
    assert shown[-1].startswith("round 2/2  F(w) 0.3333 (round 2)  test acc -")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"fraction": 0.0}, "fraction"),
        ({"fraction": 2.0}, "fraction"),
        ({"rounds": -1}, "rounds"),
        ({"eval_every": 0}, "eval_every"),
        ({"seed": -3}, "seed"),
        ({"target_accuracy": 1.5}, "target_accuracy"),
        ({"w0": np.zeros(3)}, "w0"),
    ],
)
def test_run_rejects_bad_settings(fed, algorithm, kwargs, name):
    kwargs = {"rounds": 2, **kwargs}
    with pytest.raises((ValueError, TypeError), match=name):
        run(algorithm, fed, **kwargs)


def test_run_rejects_labels_the_model_cannot_have(algorithm):
    rng = np.random.default_rng(0)
    data = FederatedDataset(rng.normal(size=(20, 4)), np.arange(20) % 5, [np.arange(20)])
    with pytest.raises(ValueError, match=r"data\.y"):
        run(algorithm, data, 1)


def test_run_rejects_wrong_types(fed, algorithm):
    with pytest.raises(TypeError, match="data"):
        run(algorithm, (fed.X, fed.y), 1)
    with pytest.raises(TypeError, match="algorithm"):
        run("fedavg", fed, 1)


@pytest.mark.parametrize("as_bytes", [False, True])
def test_a_checkpoint_of_the_first_format_still_resumes(tmp_path, fed, algorithm, as_bytes):
    """Before algorithms had state, a checkpoint held ``w`` and the history as one string
    (for a few commits, as its UTF-8 bytes)."""
    path = tmp_path / "old.npz"
    w, history = run(algorithm, fed, 2, fraction=0.3, seed=5)
    text = history.to_json()
    saved = np.frombuffer(text.encode(), np.uint8) if as_bytes else np.array(text)
    np.savez(path, w=w, history=saved)
    w_resumed, resumed = run(algorithm, fed, 4, fraction=0.3, seed=5, checkpoint=path)
    w_full, full = run(algorithm, fed, 4, fraction=0.3, seed=5)
    np.testing.assert_array_equal(w_resumed, w_full)
    assert without_wall_clock(resumed) == without_wall_clock(full)


def test_per_client_metrics_can_be_kept_every_n_rounds(fed, algorithm):
    _, every = run(algorithm, fed, 6, fraction=0.3, seed=2)
    _, sparse = run(algorithm, fed, 6, fraction=0.3, seed=2, client_metrics_every=4)
    _, never = run(algorithm, fed, 6, fraction=0.3, seed=2, client_metrics_every=0)
    kept = [r["round"] for r in sparse.rounds if r["client_accuracy"] is not None]
    assert kept == [0, 4, 6] and all(r["client_loss"] is None for r in never.rounds)
    for a, b in zip(every.rounds, sparse.rounds, strict=True):  # the rest is untouched
        assert a["test_loss"] == b["test_loss"] and a["train_loss"] == b["train_loss"]
        if b["client_loss"] is not None:
            assert a["client_loss"] == b["client_loss"]
    assert len(sparse.to_json()) < len(every.to_json())
    with pytest.raises(ValueError, match="client_metrics_every"):
        run(algorithm, fed, 1, client_metrics_every=-1)


def test_a_checkpoint_with_a_broken_w_is_refused(tmp_path, fed, algorithm):
    from minifed.simulation.checkpoint import Checkpoint

    path = tmp_path / "run.npz"
    run(algorithm, fed, 2, fraction=0.3, checkpoint=path)
    for broken, message in [(np.full(15, np.nan, np.float32), "non-finite"),
                            (np.zeros(15, np.float64), "dtype float64"),
                            (np.zeros(7, np.float32), "length 15")]:  # fmt: skip
        saved = load_checkpoint(path)
        saved.w = broken
        Checkpoint(path).save(saved, fingerprint(fed))
        with pytest.raises((CheckpointError, ValueError), match=message):
            run(algorithm, fed, 4, fraction=0.3, checkpoint=path)
