"""Multilayer perceptron with hand-written backprop, e.g. the FedAvg paper's 2NN.

McMahan et al. (2017), "Communication-Efficient Learning of Deep Networks from Decentralized
Data", use ``MLP([784, 200, 200, 10])`` (199,210 parameters) on MNIST. For layers
``l = 1..L`` with ``A_0 = X``:

    ``Z_l = A_{l-1} W_l + b_l``,   ``A_l = act(Z_l)`` (``l < L``),   ``f_i = CE(Z_L, y)_i``.
"""

from __future__ import annotations

import math

import numpy as np

from minifed._checks import check_int, check_rng
from minifed.models.linear import (
    _FeatureModel,
    softmax_cross_entropy,
    softmax_cross_entropy_grad_,
)

# ----- matrix product: A @ B, in two column halves where OpenBLAS is faster on those --------


def matmul(A: np.ndarray, B: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``A @ B`` for ``A`` (n, k) and ``B`` (k, m), in two column halves when that is faster.

    Only a speed-up, the result is the same (up to float rounding). Why: OpenBLAS (x86-64 with
    AVX-512) multiplies "small" products, ``n k m <= 100^3`` multiply-adds, with an unpacked
    kernel several times faster at these sizes than its packed GEMM; when ``B`` is a transposed
    view (``dZ W^T``), only if also ``n m <= 1200`` and ``k >= 32``. At batch size ``n = 10`` the
    2NN's products with ``m = 200`` columns are just over these limits and their halves under
    them (2-core Xeon, 1 thread: ``X W_1`` 49 -> 28 us, ``X^T dZ_1`` 39 -> 25 us, ``dZ_2 W_2^T``
    22 -> 9 us). Products that are small already, or that would need more and narrower blocks
    (batch 20 and up: slower than one call), are done in one call.
    """
    (n, k), m = A.shape, B.shape[1]
    h = m - m // 2  # width of the first half
    if B.flags.c_contiguous:
        split = n * k * h <= 100**3 < n * k * m
    else:  # B is a transposed view
        split = k >= 32 and n * k * h <= 100**3 and n * h <= 1200 < n * m
    if not split:
        return np.matmul(A, B, out=out)
    if out is None:
        out = np.empty((n, m), np.result_type(A, B))
    np.matmul(A, B[:, :h], out=out[:, :h])  # (n, h)
    np.matmul(A, B[:, h:], out=out[:, h:])  # (n, m - h)
    return out


# ----- activations: forward in place on Z, backward in place on dA (derivative beside forward) ---


def relu_(Z: np.ndarray) -> np.ndarray:
    """``A = max(Z, 0)``, overwriting ``Z``."""
    return np.maximum(Z, 0, out=Z)


def relu_backward_(dA: np.ndarray, A: np.ndarray) -> np.ndarray:
    """``dZ = dA * 1[A > 0]`` (since ``dA/dZ = 1[Z > 0]`` and ``A > 0 <=> Z > 0``), in place."""
    dA *= A > 0
    return dA


def tanh_(Z: np.ndarray) -> np.ndarray:
    """``A = tanh(Z)``, overwriting ``Z``."""
    return np.tanh(Z, out=Z)


def tanh_backward_(dA: np.ndarray, A: np.ndarray) -> np.ndarray:
    """``dZ = dA * (1 - A^2)`` (since ``tanh'(Z) = 1 - tanh(Z)^2``), in place."""
    dA *= 1 - A * A
    return dA


# name -> (forward, backward, init limit a of U(-a, a) from fan_in, fan_out)
ACTIVATIONS = {
    "relu": (relu_, relu_backward_, lambda fan_in, fan_out: np.sqrt(6.0 / fan_in)),  # He
    "tanh": (tanh_, tanh_backward_, lambda fan_in, fan_out: np.sqrt(6.0 / (fan_in + fan_out))),
}


class MLP(_FeatureModel):
    """Fully connected network with softmax cross-entropy on the last layer.

    ``Z_l = A_{l-1} W_l + b_l`` for ``l = 1..L``, ``A_0 = X``, ``A_l = act(Z_l)`` for ``l < L``;
    per-example loss ``f_i = log sum_c exp(Z_L,ic) - Z_L,iy_i``. ``w = [W_1, b_1, ..., W_L, b_L]``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[p, h_1, ..., h_{L-1}, C]``: ``p`` inputs, ``C >= 2`` classes.
    activation : {"relu", "tanh"}
        Hidden activation ``act``.
    l2 : float
        L2 strength ``lam``.

    Examples
    --------
    >>> MLP([784, 200, 200, 10]).num_params  # the 2NN of McMahan et al. (2017)
    199210
    >>> model = MLP([3, 4, 2])
    >>> w = model.init(np.random.default_rng(0))
    >>> model.predict(w, np.zeros((5, 3))).shape
    (5,)
    """

    def __init__(self, sizes, activation: str = "relu", l2: float = 0.0):
        super().__init__(l2)
        sizes = tuple(check_int(f"sizes[{i}]", s, minimum=1) for i, s in enumerate(sizes))
        if len(sizes) < 2:
            raise ValueError(f"sizes must list at least [inputs, classes], got {list(sizes)}.")
        if sizes[-1] < 2:
            raise ValueError(f"sizes[-1] (the number of classes) must be >= 2, got {sizes[-1]}.")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}."
            )
        self.sizes = sizes
        self.activation = activation
        self._blocks, start = [], 0  # (start, stop, shape) of each block of w, for _layers
        for _, shape in self._layout():
            self._blocks.append((start, start + math.prod(shape), shape))
            start += math.prod(shape)

    @property
    def num_classes(self) -> int:
        """Number of classes ``C = sizes[-1]``."""
        return self.sizes[-1]

    @property
    def num_inputs(self) -> int:
        return self.sizes[0]

    def _layout(self):
        layout = []
        fans = zip(self.sizes[:-1], self.sizes[1:], strict=True)
        for layer, (fan_in, fan_out) in enumerate(fans, start=1):
            layout += [(f"W{layer}", (fan_in, fan_out)), (f"b{layer}", (fan_out,))]
        return layout

    def _layers(self, w):
        """Views ``([W_1, ..., W_L], [b_1, ..., b_L])`` of ``w`` (as :meth:`unflatten`, faster)."""
        blocks = [w[start:stop].reshape(shape) for start, stop, shape in self._blocks]
        return blocks[0::2], blocks[1::2]

    def init(self, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
        """``W_l ~ U(-a, a)``: He ``a = sqrt(6 / fan_in)`` for relu, Glorot
        ``a = sqrt(6 / (fan_in + fan_out))`` for tanh; ``b_l = 0``. Same draws for every dtype."""
        check_rng("rng", rng)
        w = np.zeros(self.num_params, dtype=dtype)
        limit = ACTIVATIONS[self.activation][2]
        for W in self._layers(w)[0]:
            a = limit(*W.shape)
            W[...] = rng.uniform(-a, a, size=W.shape)
        return w

    def _forward_all(self, w, X):
        """Logits ``Z_L`` (n, C) and the activations ``[A_0, ..., A_{L-1}]`` backprop needs."""
        act = ACTIVATIONS[self.activation][0]
        Ws, bs = self._layers(w)
        A = X.reshape(len(X), -1)  # (B, p)
        As = [A]
        for W, b in zip(Ws[:-1], bs[:-1], strict=True):
            Z = matmul(A, W)  # (B, H) = A @ W
            Z += b
            A = act(Z)  # (B, H), Z overwritten
            As.append(A)
        Z = matmul(A, Ws[-1])  # (B, C)
        Z += bs[-1]
        return Z, As

    def _forward(self, w, X):
        return self._forward_all(w, X)[0]

    def _example_losses(self, out, y):
        return softmax_cross_entropy(out, y)

    def _data_loss_and_grad(self, w, X, y, g):
        act_backward = ACTIVATIONS[self.activation][1]
        Z, As = self._forward_all(w, X)
        loss = softmax_cross_entropy_grad_(Z, y)
        dZ = Z  # (B, C) dF/dZ_L
        Ws, gWs, gbs = self._layers(w)[0], *self._layers(g)
        for i in range(len(Ws) - 1, -1, -1):  # layer l = i + 1, from L down to 1
            matmul(As[i].T, dZ, out=gWs[i])  # (H_in, H_out) dF/dW_l = A_{l-1}^T dZ_l
            dZ.sum(axis=0, out=gbs[i])  # (H_out,) dF/db_l = sum_n dZ_l[n]
            if i == 0:
                break  # no gradient with respect to the input X
            dA = matmul(dZ, Ws[i].T)  # (B, H_in) dF/dA_{l-1} = dZ_l W_l^T
            dZ = act_backward(dA, As[i])  # (B, H_in) dF/dZ_{l-1}
        return loss
