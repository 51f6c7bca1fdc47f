"""The attacks of minifed.privacy: gradient inversion (analytic and DLG) and membership inference.

No data set is needed except for the benchmark's --quick path (MNIST, skipped when absent).
"""

import numpy as np
import pytest
from conftest import load_script, require_dataset

from minifed.algorithms import FedAvg
from minifed.dataset import FederatedDataset
from minifed.models import MLP, LinearRegression, SoftmaxRegression
from minifed.privacy import (
    dlg,
    infer_label,
    infer_labels,
    matching_loss_and_grad,
    membership_advantage,
    mse,
    psnr,
    reconstruct_input,
    soft_label_grad,
    threshold_advantage,
    yeom_advantage,
)
from minifed.simulation import run

MODELS = [
    SoftmaxRegression(12, 4),
    MLP([12, 8, 4], "relu"),
    MLP([12, 8, 6, 4], "tanh"),
]


def one_example(model, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.5, size=model.num_params).astype(dtype)
    x = rng.uniform(0, 1, size=(1, model.num_inputs)).astype(dtype)
    return w, x, rng.integers(0, model.num_classes, size=1)


# ----- analytic reconstruction and labels -----


@pytest.mark.parametrize("model", MODELS, ids=repr)
def test_one_example_is_recovered_exactly_from_its_gradient(model):
    w, x, y = one_example(model)
    x_rec = reconstruct_input(model, model.grad(w, x, y))
    np.testing.assert_allclose(x_rec, x[0], rtol=1e-12, atol=1e-14)
    assert psnr(x_rec, x[0]) > 200
    w32, x32, y = one_example(model, dtype=np.float32)  # float32 training: float32 rounding
    np.testing.assert_allclose(reconstruct_input(model, model.grad(w32, x32, y)), x32[0], rtol=1e-5)


@pytest.mark.parametrize("model", MODELS, ids=repr)
def test_fedavg_update_of_one_example_is_as_exact(model):
    """``w - w_k`` after E epochs is a sum of gradients of the same row: the ratio is ``x``."""
    w, x, y = one_example(model, seed=1)
    w_k = FedAvg(model, lr=0.1, epochs=5).local_sgd(w, x, y, np.random.default_rng(0))
    np.testing.assert_allclose(reconstruct_input(model, w - w_k), x[0], rtol=1e-8)


def test_softmax_regression_gives_the_input_in_every_class_column():
    model = SoftmaxRegression(12, 4)
    w, x, y = one_example(model)
    blocks = model.unflatten(model.grad(w, x, y))
    for c in range(4):  # dL/dW[:, c] = x (p_c - onehot_c), dL/db[c] = p_c - onehot_c
        np.testing.assert_allclose(blocks["W"][:, c] / blocks["b"][c], x[0], rtol=1e-12)


@pytest.mark.parametrize("model", MODELS, ids=repr)
def test_label_is_the_one_negative_bias_gradient(model):
    for seed in range(20):
        w, x, y = one_example(model, seed)
        g = model.grad(w, x, y)
        assert infer_label(model, g) == y[0]
        assert infer_labels(model, g).tolist() == [y[0]]


def test_labels_found_in_a_batch_are_always_present():
    model, rng = MLP([12, 8, 10]), np.random.default_rng(0)
    w = rng.normal(0, 0.5, size=model.num_params)
    for _ in range(20):
        X, y = rng.uniform(size=(6, 12)), rng.integers(0, 10, size=6)
        found = infer_labels(model, model.grad(w, X, y))
        assert len(found) >= 1 and set(found) <= set(y)


def test_batch_gives_the_weighted_mix_of_its_rows():
    """Softmax regression: ``x_rec = sum_n a_n x_n``, ``a_n = delta_nj / sum_m delta_mj``."""
    model, rng = SoftmaxRegression(12, 4), np.random.default_rng(2)
    w = rng.normal(size=model.num_params)
    X, y = rng.uniform(size=(5, 12)), rng.integers(0, 4, size=5)
    g = model.grad(w, X, y)
    j = int(np.argmax(np.abs(model.unflatten(g)["b"])))
    Z = model.forward(w, X)
    delta = (np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True) - np.eye(4)[y])[:, j]  # (5,)
    np.testing.assert_allclose(reconstruct_input(model, g), delta @ X / delta.sum(), rtol=1e-10)


def test_reconstruction_degrades_with_the_batch_size():
    model, rng = MLP([64, 32, 10]), np.random.default_rng(0)
    w = model.init(rng, np.float64)

    def quality(B):  # PSNR against the closest row, mean over batches
        values = []
        for _ in range(20):
            X, y = rng.uniform(size=(B, 64)), rng.integers(0, 10, size=B)
            x = np.clip(reconstruct_input(model, model.grad(w, X, y)), 0, 1)
            values.append(max(psnr(x, row) for row in X))
        return np.mean(values)

    q = [quality(B) for B in (1, 2, 8, 32)]
    assert q[0] > 200 and q[0] > q[1] > q[2] > q[3]


# ----- deep leakage from gradients -----


@pytest.mark.parametrize(
    "model",
    [
        SoftmaxRegression(5, 3, l2=0.1),
        MLP([5, 4, 3], "tanh"),
        MLP([5, 4, 6, 3], "tanh"),
        MLP([5, 7, 3], "relu"),
    ],
    ids=repr,
)
def test_matching_loss_derivative_matches_central_differences(model):
    rng = np.random.default_rng(0)
    w = rng.normal(size=model.num_params)
    target = model.grad(w, rng.normal(size=(2, 5)), rng.integers(0, 3, size=2))
    X, U = rng.normal(size=(2, 5)), rng.normal(size=(2, 3))
    _, dX, dU = matching_loss_and_grad(model, w, target, X, U)
    eps, worst = 1e-5, 0.0
    for V, analytic in [(X, dX), (U, dU)]:
        for i in np.ndindex(V.shape):  # b = (D(v + eps e_i) - D(v - eps e_i)) / (2 eps)
            v = V[i]
            V[i] = v + eps
            plus = matching_loss_and_grad(model, w, target, X, U)[0]
            V[i] = v - eps
            minus = matching_loss_and_grad(model, w, target, X, U)[0]
            V[i] = v
            b = (plus - minus) / (2 * eps)
            worst = max(worst, abs(analytic[i] - b) / max(abs(analytic[i]) + abs(b), 1e-3))
    assert worst < 1e-6  # the criterion of minifed.models.gradcheck


@pytest.mark.parametrize(
    "model",
    [
        SoftmaxRegression(12, 4, l2=0.3),
        MLP([12, 8, 4], "relu", 0.3),
        MLP([12, 8, 6, 4], "tanh", 0.3),
    ],
    ids=repr,
)
def test_soft_label_gradient_with_one_hot_labels_is_the_models(model):
    rng = np.random.default_rng(0)
    w = rng.normal(size=model.num_params)
    X, y = rng.normal(size=(4, 12)), rng.integers(0, 4, size=4)
    dWs, dbs, _ = soft_label_grad(model, w, X, np.eye(4)[y])
    g = np.concatenate([a.ravel() for pair in zip(dWs, dbs, strict=True) for a in pair])
    np.testing.assert_allclose(g + 0.3 * w, model.grad(w, X, y), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "model, labels", [(SoftmaxRegression(10, 3), "learned"), (MLP([10, 8, 3], "tanh"), "inferred")]
)
def test_dlg_recovers_one_example_of_a_tiny_model(model, labels):
    w, x, y = one_example(model, seed=3)
    g = model.grad(w, x, y)
    given = None if labels == "learned" else [infer_label(model, g)]
    result = dlg(model, w, g, 1, np.random.default_rng(0), steps=1000, labels=given)
    assert result.y.tolist() == y.tolist()
    if labels == "learned":  # softmax(U) nears one-hot slowly: close, not exact
        assert psnr(result.X[0], x[0]) > 30 and result.loss[-1] < 1e-3 * result.loss[0]
    else:
        assert psnr(result.X[0], x[0]) > 60 and result.loss[-1] < 1e-9 * result.loss[0]


def test_dlg_is_deterministic_given_the_generator():
    model = SoftmaxRegression(10, 3)
    w, x, y = one_example(model)
    g = model.grad(w, x, y)
    a, b = (dlg(model, w, g, 2, np.random.default_rng(5), steps=20) for _ in range(2))
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.loss, b.loss)


# ----- membership inference -----


def test_membership_advantage_by_hand():
    assert membership_advantage([0.1, 0.2, 0.9], [0.5, 1.0]) == (pytest.approx(2 / 3), 0.5)
    assert membership_advantage([1, 2], [3, 4]) == (1.0, 3.0)  # separated: f < 3 is exact
    assert membership_advantage([3, 4], [1, 2]) == (0.0, 1.0)  # reversed: never better than 0
    assert threshold_advantage([1, 2], [3, 4], tau=np.inf) == 0.0
    assert yeom_advantage([1, 3], [2, 4]) == pytest.approx(0.5)  # tau = 2: TPR 1/2, FPR 0


def test_membership_advantage_is_near_zero_on_one_distribution():
    rng = np.random.default_rng(0)
    a, b = rng.exponential(size=4000), rng.exponential(size=4000)
    advantage, _ = membership_advantage(a, b)
    assert 0 <= advantage < 0.05  # KS noise, about 1 / sqrt(n)
    assert abs(yeom_advantage(a, b)) < 0.05


def test_membership_advantage_is_large_on_an_overfitted_federated_model():
    """FedAvg memorizes random labels of 80 rows over 4 clients: members have small losses."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(160, 20)), rng.integers(0, 3, size=160)
    parts = np.split(np.arange(80), 4)
    data = FederatedDataset(X[:80], y[:80], parts, X[80:], y[80:], dtype=np.float64)
    model = MLP([20, 32, 3])
    w, _ = run(FedAvg(model, 0.1, 5, 10), data, 30, fraction=1.0, eval_train=False)
    members, others = (
        model.example_losses(w, X[:80], y[:80]),
        model.example_losses(w, X[80:], y[80:]),
    )
    assert membership_advantage(members, others)[0] > 0.3
    assert yeom_advantage(members, others) > 0.3


# ----- quality measures and errors -----


def test_mse_and_psnr_by_hand():
    assert mse([0.0, 1.0], [0.5, 1.0]) == 0.125
    assert psnr([0.0, 1.0], [0.5, 1.0]) == pytest.approx(10 * np.log10(8))
    assert psnr([0.2, 0.4], [0.2, 0.4]) == np.inf
    assert psnr([0.0, 255.0], [25.5, 255.0], data_range=255) == pytest.approx(
        psnr([0.0, 1.0], [0.1, 1.0])
    )


def test_bad_inputs_name_the_argument():
    model = MLP([4, 3, 2])
    w = model.init(np.random.default_rng(0), np.float64)
    with pytest.raises(ValueError, match="grad"):
        reconstruct_input(model, np.zeros(5))
    with pytest.raises(ValueError, match="grad"):
        reconstruct_input(model, np.zeros(model.num_params))  # zero bias gradient
    with pytest.raises(TypeError, match="model"):
        infer_label(LinearRegression(3), np.zeros(4))
    with pytest.raises(ValueError, match="x and x_ref"):
        mse([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="data_range"):
        psnr([1.0], [0.0], data_range=0)
    with pytest.raises(ValueError, match="member_losses"):
        membership_advantage([], [1.0])
    with pytest.raises(ValueError, match="nonmember_losses"):
        yeom_advantage([1.0], [np.nan])
    g = np.ones(model.num_params)
    with pytest.raises(ValueError, match="batch_size"):
        dlg(model, w, g, 0, np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng"):
        dlg(model, w, g, 1, 0)
    with pytest.raises(ValueError, match="labels"):
        dlg(model, w, g, 1, np.random.default_rng(0), labels=[2])


# ----- the benchmark -----


def test_benchmark_quick_path(tmp_path):
    require_dataset("mnist")
    script = load_script("privacy_attacks")
    assert script.main(["--quick", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "privacy_attacks_table.md").read_text()
    assert (tmp_path / "privacy_reconstruction.png").stat().st_size > 10_000
    row = next(line for line in text.splitlines() if line.startswith("| 1 |"))
    fedsgd = float(row.split("|")[2].split("dB")[0])
    assert fedsgd > 100  # one digit: exact
    assert "control: 2 x 50 held-out rows" in text
