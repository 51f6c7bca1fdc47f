"""Tests of the models: gradients against finite differences, identities, input checks."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minifed.models import (
    MLP,
    LinearRegression,
    LogisticRegression,
    SoftmaxRegression,
    gradcheck,
)
from minifed.models.mlp import matmul

MODELS = [
    LinearRegression(4),
    LinearRegression(4, l2=0.3),
    LogisticRegression(4),
    LogisticRegression(4, l2=0.1),
    SoftmaxRegression(4, 3),
    SoftmaxRegression(4, 5, l2=0.2),
    MLP([4, 3]),
    MLP([4, 6, 3]),
    MLP([4, 7, 5, 2], l2=0.05),
    MLP([4, 6, 3], activation="tanh"),
    MLP([4, 5, 5, 4], activation="tanh", l2=0.1),
]


def random_problem(model, rng, n=7, dtype=np.float64):
    """Random parameters (biases non-zero, so no ReLU sits exactly on its kink) and data."""
    w = (model.init(rng, np.float64) + 0.3 * rng.normal(size=model.num_params)).astype(dtype)
    X = rng.normal(size=(n, model.num_inputs)).astype(dtype)
    if model.task == "regression":
        y = rng.normal(size=n).astype(dtype)
    else:
        y = rng.integers(0, model.num_classes, size=n)
    return w, X, y


@pytest.mark.parametrize("model", MODELS, ids=repr)
def test_gradient_matches_central_differences(model):
    rng = np.random.default_rng(0)
    for _ in range(3):
        assert gradcheck(model, *random_problem(model, rng)) < 1e-6


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    classes=st.integers(2, 4),
    activation=st.sampled_from(["relu", "tanh"]),
    l2=st.sampled_from([0.0, 0.1]),
    n=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_mlp_gradient_over_random_shapes(sizes, classes, activation, l2, n, seed):
    model = MLP([*sizes, classes], activation=activation, l2=l2)
    rng = np.random.default_rng(seed)
    assert gradcheck(model, *random_problem(model, rng, n=n)) < 1e-6


def test_gradcheck_detects_a_wrong_gradient():
    class Broken(SoftmaxRegression):
        def _data_loss_and_grad(self, w, X, y, g):
            loss = super()._data_loss_and_grad(w, X, y, g)
            g *= 1.01  # a 1% error
            return loss

    model = Broken(3, 2)
    assert gradcheck(model, *random_problem(model, np.random.default_rng(1))) > 1e-3


def test_gradcheck_on_a_subset_needs_rng():
    model = MLP([784, 200, 200, 10])
    rng = np.random.default_rng(2)
    w, X, y = random_problem(model, rng, n=3)
    assert gradcheck(model, w, X, y, num_coords=20, rng=rng) < 1e-6
    with pytest.raises(ValueError, match="rng"):
        gradcheck(model, w, X, y, num_coords=20)


@pytest.mark.parametrize("n", [1, 5, 10, 20])
def test_matmul_in_column_halves_equals_the_product(n):
    rng = np.random.default_rng(7)
    X, W1, W2 = (rng.normal(size=s).astype(np.float32) for s in [(n, 784), (784, 200), (200, 200)])
    dZ = rng.normal(size=(n, 200)).astype(np.float32)
    gW1 = np.empty((784, 200), np.float32)
    for A, B, out in [(X, W1, None), (X.T, dZ, gW1), (dZ, W2.T, None)]:  # the 2NN's products
        C = matmul(A, B, out)
        assert C.dtype == np.float32 and (out is None or C is out)
        np.testing.assert_allclose(C, A.astype(np.float64) @ B, rtol=1e-4, atol=1e-4)


def test_2nn_gradient_at_batch_size_10():  # the batch size at which matmul splits products
    model = MLP([784, 200, 200, 10])
    rng = np.random.default_rng(8)
    w, X, y = random_problem(model, rng, n=10)
    assert gradcheck(model, w, X, y, num_coords=40, rng=rng) < 1e-6


@pytest.mark.parametrize("model", MODELS, ids=repr)
def test_loss_is_mean_example_loss_plus_penalty(model):
    w, X, y = random_problem(model, np.random.default_rng(3))
    expected = model.example_losses(w, X, y).mean() + 0.5 * model.l2 * w @ w
    assert model.loss(w, X, y) == pytest.approx(expected, rel=1e-12)
    assert model.loss_and_grad(w, X, y)[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("model", MODELS, ids=repr)
def test_float32_in_float32_out(model):
    w, X, y = random_problem(model, np.random.default_rng(4), dtype=np.float32)
    assert model.init(np.random.default_rng(0)).dtype == np.float32
    assert model.grad(w, X, y).dtype == np.float32
    g = np.empty_like(w)
    loss, g_out = model.loss_and_grad_(w, X, y, g)
    assert g_out is g
    assert isinstance(loss, float)
    g64 = model.grad(w.astype(np.float64), X.astype(np.float64), y)
    np.testing.assert_allclose(g, g64, rtol=1e-3, atol=1e-5)


def test_unflatten_returns_views():
    model = MLP([3, 4, 2])
    w = model.init(np.random.default_rng(0))
    blocks = model.unflatten(w)
    assert [b.shape for b in blocks.values()] == [(3, 4), (4,), (4, 2), (2,)]
    blocks["b2"][1] = 7.0
    assert w[-1] == 7.0


def test_the_2nn_has_199210_parameters():
    assert MLP([784, 200, 200, 10]).num_params == 199_210


def test_init_is_reproducible_and_scaled():
    model = MLP([100, 50, 10])
    w1, w2 = model.init(np.random.default_rng(5)), model.init(np.random.default_rng(5))
    np.testing.assert_array_equal(w1, w2)
    blocks = model.unflatten(w1)
    assert np.all(blocks["b1"] == 0)
    assert np.abs(blocks["W1"]).max() <= np.sqrt(6 / 100)  # He uniform
    assert np.abs(blocks["W1"]).max() > 0.9 * np.sqrt(6 / 100)


@pytest.mark.parametrize("model", MODELS, ids=repr)
def test_predict_and_accuracy_shapes(model):
    w, X, y = random_problem(model, np.random.default_rng(6))
    assert model.predict(w, X).shape == (len(X),)
    accuracy = model.accuracy(w, X, y)
    if model.task == "regression":
        assert np.isnan(accuracy)
    else:
        assert 0.0 <= accuracy <= 1.0
        assert set(np.unique(model.predict(w, X))) <= set(range(model.num_classes))


def test_softmax_loss_is_finite_for_huge_logits():
    model = SoftmaxRegression(1, 3)
    w = np.array([1e4, -1e4, 0.0, 0.0, 0.0, 0.0])  # logits (1e6, -1e6, 0) for x = 100
    X, y = np.array([[100.0]]), np.array([1])
    loss, g = model.loss_and_grad(w, X, y)
    assert loss == pytest.approx(2e6)
    assert np.all(np.isfinite(g))
    assert model.loss(w, X, np.array([0])) == 0.0


def test_logistic_loss_closed_form_and_stability():
    model = LogisticRegression(1)
    w = np.array([2.0, -1.0])  # s = 2 x - 1
    X, y = np.array([[1.0], [0.0], [500.0]]), np.array([1, 0, 0])
    s = np.array([1.0, -1.0, 999.0])
    expected = [np.log1p(np.exp(-1.0)), np.log1p(np.exp(-1.0)), 999.0]
    np.testing.assert_allclose(model.example_losses(w, X, y), expected)
    assert np.all(np.isfinite(model.grad(w, X, y)))
    np.testing.assert_array_equal(model.predict(w, X), (s > 0).astype(int))


def test_logistic_equals_softmax_with_logits_zero_and_s():
    """softmax over logits (0, s) gives P(y=1) = sigmoid(s): the same model, the same loss."""
    rng = np.random.default_rng(7)
    logistic, softmax = LogisticRegression(3), SoftmaxRegression(3, 2)
    w, X, y = random_problem(logistic, rng)
    W, b = logistic.unflatten(w).values()
    v = softmax.init(rng, np.float64)
    softmax.unflatten(v)["W"][:, 1] = W
    softmax.unflatten(v)["b"][1] = b[0]
    assert logistic.loss(w, X, y) == pytest.approx(softmax.loss(v, X, y), rel=1e-12)
    np.testing.assert_array_equal(logistic.predict(w, X), softmax.predict(v, X))
    g_softmax = softmax.unflatten(softmax.grad(v, X, y))
    np.testing.assert_allclose(logistic.grad(w, X, y), [*g_softmax["W"][:, 1], g_softmax["b"][1]])


def test_linear_regression_gradient_vanishes_at_least_squares_solution():
    rng = np.random.default_rng(8)
    model = LinearRegression(3)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    w = np.linalg.lstsq(np.c_[X, np.ones(20)], y, rcond=None)[0]
    np.testing.assert_allclose(model.grad(w, X, y), 0, atol=1e-12)


@pytest.mark.parametrize(
    "model", [LogisticRegression(2), SoftmaxRegression(2, 2), MLP([2, 8, 2])], ids=repr
)
def test_gradient_descent_decreases_loss_on_separable_toy(model):
    rng = np.random.default_rng(9)
    X = np.r_[rng.normal(-2, 0.5, size=(20, 2)), rng.normal(2, 0.5, size=(20, 2))]
    y = np.repeat([0, 1], 20)
    w = model.init(rng, np.float64)
    losses = []
    for _ in range(100):
        loss, g = model.loss_and_grad(w, X, y)
        losses.append(loss)
        w -= 0.5 * g
    assert losses[-1] < 0.1 * losses[0]
    assert np.all(np.diff(losses) <= 1e-12)
    assert model.accuracy(w, X, y) == 1.0


# ----- bad input -----


@pytest.mark.parametrize("model", [LinearRegression(3), MLP([3, 4, 2])], ids=repr)
def test_wrong_parameter_length_names_w(model):
    X, y = np.zeros((2, 3)), np.zeros(2, dtype=int)
    with pytest.raises(ValueError, match="w must"):
        model.loss(np.zeros(model.num_params + 1), X, y)


def test_bad_data_is_rejected():
    model = SoftmaxRegression(3, 4)
    w, X, y = random_problem(model, np.random.default_rng(10), n=5)
    with pytest.raises(ValueError, match="same number of samples"):
        model.loss(w, X, y[:4])
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        model.loss(w, X, np.array([0, 1, 2, 3, 4]))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        model.loss(w, X, np.array([0, 1, -1, 3, 3]))
    with pytest.raises(TypeError, match="integer class labels"):
        model.loss(w, X, np.array([0, 1, 2.5, 3, 3]))
    X_nan = X.copy()
    X_nan[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.loss(w, X_nan, y)
    with pytest.raises(ValueError, match="3 features"):
        model.loss(w, np.zeros((5, 2)), y)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="sizes"):
        MLP([10])
    with pytest.raises(ValueError, match="activation"):
        MLP([4, 3], activation="sigmoid")
    with pytest.raises(ValueError, match="classes"):
        MLP([4, 1])
    with pytest.raises(ValueError, match="num_classes"):
        SoftmaxRegression(3, 1)
    with pytest.raises(ValueError, match="num_features"):
        LinearRegression(0)
    with pytest.raises(TypeError, match="num_features"):
        LogisticRegression(2.5)
    with pytest.raises(ValueError, match="l2"):
        MLP([4, 3], l2=-1.0)


def test_models_compare_by_structure():
    assert MLP([4, 3], "tanh") == MLP((4, 3), "tanh")
    assert MLP([4, 3]) != MLP([4, 3], "tanh")
    assert hash(SoftmaxRegression(3, 2)) == hash(SoftmaxRegression(3, 2))
    assert repr(MLP([4, 3])) == "MLP(l2=0.0, sizes=(4, 3), activation='relu')"
