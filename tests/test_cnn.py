"""Tests of the CNN: the fast im2col convolution and the max-pool against slow loop oracles,
the whole model against finite differences, the paper's parameter count, and input checks."""

import numpy as np
import pytest

import minifed.models.cnn as cnn
from minifed.models.cnn import (
    CNN,
    _conv_backward,
    _conv_forward,
    _maxpool_backward,
    _maxpool_forward,
)
from minifed.models.gradcheck import gradcheck

SMALL = {"input_shape": (2, 8, 8), "channels": (2, 3), "kernel_size": 3, "hidden": 8}

# ----- slow, obvious oracles written straight from the formulas (NCHW, as the papers write) -----


def loop_conv(X, K, b):
    """``Y[n,o,i,j] = b[o] + sum_{c,u,v} K[o,c,u,v] X[n,c,i+u-p,j+v-p]``, zero outside ``X``."""
    N, C, H, W = X.shape
    O, _, k, _ = K.shape
    p = k // 2
    Y = np.zeros((N, O, H, W))
    for n, o, i, j in np.ndindex(N, O, H, W):
        Y[n, o, i, j] = b[o]
        for c, u, v in np.ndindex(C, k, k):
            if 0 <= i + u - p < H and 0 <= j + v - p < W:
                Y[n, o, i, j] += K[o, c, u, v] * X[n, c, i + u - p, j + v - p]
    return Y


def loop_conv_grads(X, K, dY):
    """``dK``, ``db`` and ``dX`` of :func:`loop_conv` by the chain rule, one term at a time."""
    N, C, H, W = X.shape
    O, _, k, _ = K.shape
    p = k // 2
    dK, db, dX = np.zeros_like(K), np.zeros(O), np.zeros_like(X)
    for n, o, i, j in np.ndindex(N, O, H, W):
        db[o] += dY[n, o, i, j]
        for c, u, v in np.ndindex(C, k, k):
            if 0 <= i + u - p < H and 0 <= j + v - p < W:
                dK[o, c, u, v] += dY[n, o, i, j] * X[n, c, i + u - p, j + v - p]
                dX[n, c, i + u - p, j + v - p] += dY[n, o, i, j] * K[o, c, u, v]
    return dK, db, dX


def loop_maxpool(Z, dM):
    """2x2 max-pool of ``Z`` (n, C, H, W) and its backward: the whole gradient of a window goes
    to its first maximum in row-major order."""
    N, C, H, W = Z.shape
    M, dZ = np.zeros((N, C, H // 2, W // 2)), np.zeros_like(Z)
    for n, c, i, j in np.ndindex(N, C, H // 2, W // 2):
        window = Z[n, c, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].ravel()
        M[n, c, i, j] = window.max()
        a, b = divmod(int(np.argmax(window)), 2)
        dZ[n, c, 2 * i + a, 2 * j + b] = dM[n, c, i, j]
    return M, dZ


def nhwc(A):
    return np.ascontiguousarray(A.transpose(0, 2, 3, 1))  # (n, C, H, W) -> (n, H, W, C)


def nchw(A):
    return A.transpose(0, 3, 1, 2)  # (n, H, W, C) -> (n, C, H, W)


def random_problem(model, rng, n=5, dtype=np.float64):
    """Parameters with non-zero biases (no ReLU on its kink) and data for ``model``."""
    w = (model.init(rng, np.float64) + 0.2 * rng.normal(size=model.num_params)).astype(dtype)
    X = rng.normal(size=(n, int(np.prod(model.input_shape)))).astype(dtype)
    return w, X, rng.integers(0, model.num_classes, size=n)


# ----- (1) convolution against the loop oracle -----


@pytest.mark.parametrize("k", [1, 3, 5])
def test_conv_forward_and_backward_match_loops(k):
    rng = np.random.default_rng(k)
    X, K, b = rng.normal(size=(2, 3, 6, 5)), rng.normal(size=(4, 3, k, k)), rng.normal(size=4)
    p = k // 2
    Xpad = np.pad(nhwc(X), ((0, 0), (p, p), (p, p), (0, 0)))  # (n, H+2p, W+2p, C)
    Y, cols = _conv_forward(Xpad, K, b)
    np.testing.assert_allclose(nchw(Y), loop_conv(X, K, b), rtol=1e-12, atol=1e-12)

    dY = rng.normal(size=Y.shape)  # (n, H, W, O)
    dK, db, dXpad = _conv_backward(dY, cols, K)
    dK_loop, db_loop, dX_loop = loop_conv_grads(X, K, nchw(dY))
    np.testing.assert_allclose(dK, dK_loop, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, db_loop, rtol=1e-12, atol=1e-12)
    dX = dXpad[:, p : p + X.shape[2], p : p + X.shape[3]]
    np.testing.assert_allclose(nchw(dX), dX_loop, rtol=1e-12, atol=1e-12)
    assert _conv_backward(dY, cols, K, input_grad=False)[2] is None


# ----- (2) max-pool against the loop oracle, ties included -----


def test_maxpool_matches_loops_with_ties():
    rng = np.random.default_rng(0)
    Z = rng.integers(-2, 3, size=(2, 3, 6, 4)).astype(np.float64)  # many ties
    Z[0, 0, :2, :2] = 1.0  # a window of four equal values
    dM = rng.normal(size=(2, 3, 3, 2))
    M_loop, dZ_loop = loop_maxpool(Z, dM)
    M = _maxpool_forward(nhwc(Z))
    dZ = _maxpool_backward(nhwc(dM), nhwc(Z), M)
    np.testing.assert_array_equal(nchw(M), M_loop)
    np.testing.assert_array_equal(nchw(dZ), dZ_loop)
    assert dZ[0, 0, 0, 0] == dM[0, 0, 0, 0] and np.all(dZ[0, :2, :2, 0].ravel()[1:] == 0)
    np.testing.assert_allclose(dZ.sum(axis=(1, 2)), nhwc(dM).sum(axis=(1, 2)))  # nothing lost


# ----- (3) the whole model -----


def test_model_forward_matches_loop_oracle():
    """Logits from loops: conv, ReLU, pool in NCHW, flatten in (h, w, c) order, dense layers."""
    model = CNN(**SMALL, num_classes=3)
    w, X, _ = random_problem(model, np.random.default_rng(1))
    P = model.unflatten(w)
    A = X.reshape(-1, *model.input_shape)  # (n, C, H, W)
    for l in (1, 2):
        Z = np.maximum(loop_conv(A, P[f"conv{l}.K"], P[f"conv{l}.b"]), 0)
        A = loop_maxpool(Z, np.zeros((*Z.shape[:2], Z.shape[2] // 2, Z.shape[3] // 2)))[0]
    a = nhwc(A).reshape(len(X), -1)  # (n, H*W*C)
    logits = np.maximum(a @ P["fc.W"] + P["fc.b"], 0) @ P["out.W"] + P["out.b"]
    np.testing.assert_allclose(model.forward(w, X), logits, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("l2", [0.0, 0.1])
@pytest.mark.parametrize(
    "config", [SMALL, {"input_shape": (1, 4, 8), "channels": (3,), "kernel_size": 5, "hidden": 6}]
)
def test_gradcheck_whole_model(config, l2):
    model = CNN(**config, num_classes=3, l2=l2)
    w, X, y = random_problem(model, np.random.default_rng(2))
    assert gradcheck(model, w, X, y) < 1e-6


def test_chunks_give_the_same_loss_and_gradient(monkeypatch):
    model = CNN(**SMALL, num_classes=3, l2=0.01)
    w, X, y = random_problem(model, np.random.default_rng(3), n=7)
    loss, g, out = *model.loss_and_grad(w, X, y), model.forward(w, X)
    monkeypatch.setattr(cnn, "CHUNK", 3)  # chunks of 3, 3 and 1 samples
    monkeypatch.setattr(cnn, "FORWARD_CHUNK", 2)
    loss_c, g_c = model.loss_and_grad(w, X, y)
    np.testing.assert_allclose(loss_c, loss, rtol=1e-12)
    np.testing.assert_allclose(g_c, g, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(model.forward(w, X), out, rtol=1e-12)


@pytest.mark.parametrize("chunk", [64, 3])
def test_gradient_overwrites_g_without_zeroing_it_first(monkeypatch, chunk):
    """``_backprop`` writes its products straight into ``g`` (no ``g[...] = 0`` first): whatever
    ``g`` held before must not leak into the gradient, with one pass or several."""
    model = CNN(**SMALL, num_classes=3)
    w, X, y = random_problem(model, np.random.default_rng(6), n=7)
    monkeypatch.setattr(cnn, "CHUNK", chunk)
    loss, g = model.loss_and_grad_(w, X, y)
    g_nan = np.full_like(w, np.nan)
    loss_nan, out = model.loss_and_grad_(w, X, y, g_nan)
    assert out is g_nan and loss_nan == loss
    np.testing.assert_array_equal(g_nan, g)


def test_conv_backward_keeps_float32():
    rng = np.random.default_rng(7)
    Xpad = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)  # k = 5: (n, 4+4, 4+4, C)
    K, b = rng.normal(size=(4, 3, 5, 5)).astype(np.float32), np.zeros(4, np.float32)
    Y, cols = _conv_forward(Xpad, K, b)
    dK, db, dXpad = _conv_backward(np.ones_like(Y), cols, K)
    assert Y.dtype == dK.dtype == db.dtype == dXpad.dtype == np.float32
    assert dXpad.shape == Xpad.shape


def test_float32_end_to_end():
    model = CNN(**SMALL, num_classes=3)
    w, X, y = random_problem(model, np.random.default_rng(4), dtype=np.float32)
    _, g = model.loss_and_grad_(w, X, y)
    assert g.dtype == np.float32 and model.forward(w, X).dtype == np.float32
    w64 = w.astype(np.float64)
    np.testing.assert_allclose(g, model.grad(w64, X.astype(np.float64), y), atol=1e-4)


# ----- (4) the paper's parameter count, init -----


def test_default_is_the_fedavg_paper_cnn():
    model = CNN()
    assert model.num_params == 1_663_370
    assert model.unflatten(np.zeros(model.num_params))["fc.W"].shape == (7 * 7 * 64, 512)


def test_init_is_seeded_and_same_draws_in_every_dtype():
    model = CNN(**SMALL, num_classes=3)
    w32 = model.init(np.random.default_rng(0))
    w64 = model.init(np.random.default_rng(0), dtype=np.float64)
    assert w32.dtype == np.float32 and w64.dtype == np.float64
    np.testing.assert_array_equal(w32, w64.astype(np.float32))
    assert np.all(model.unflatten(w64)["conv1.b"] == 0) and w64.std() > 0


# ----- (5) flat and 4-D input -----


def test_flat_and_4d_input_agree():
    model = CNN(**SMALL, num_classes=3)
    w, X, y = random_problem(model, np.random.default_rng(5))
    X4 = X.reshape(-1, *model.input_shape)  # (n, C, H, W)
    assert model.loss(w, X, y) == model.loss(w, X4, y)
    np.testing.assert_array_equal(model.grad(w, X, y), model.grad(w, X4, y))
    np.testing.assert_array_equal(model.predict(w, X), model.predict(w, X4))


# ----- (6) bad input -----


def test_wrong_input_shape_names_x_and_the_expected_shape():
    model = CNN()
    w = np.zeros(model.num_params, dtype=np.float32)
    with pytest.raises(ValueError, match=r"X must have shape \(n, 784\).*\(n, 1, 28, 28\)"):
        model.loss(w, np.zeros((2, 783)), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match=r"X must have shape"):
        model.predict(w, np.zeros((2, 28, 28)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_shape": (2, 6, 6), "channels": (2, 3)}, "even height and width"),
        ({"input_shape": (1, 28, 27)}, "even height and width"),
        ({"kernel_size": 4}, "kernel_size must be odd"),
        ({"kernel_size": 0}, "kernel_size must be at least 1"),
        ({"input_shape": (28, 28)}, r"input_shape must be \(C, H, W\)"),
        ({"channels": ()}, "at least one convolution"),
    ],
)
def test_bad_settings_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CNN(**kwargs)
