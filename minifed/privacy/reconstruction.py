"""Gradient inversion: what a shared gradient or update reveals about the data behind it.

Two attacks on the fully connected models (:class:`~minifed.models.SoftmaxRegression` and the
:class:`~minifed.models.MLP`, whose ``w = [W_1, b_1, ..., W_L, b_L]`` with ``W_l`` of shape
``(h_{l-1}, h_l)``), and the quality measures of a reconstruction:

- **analytic** (Phong et al. 2018; Geiping et al. 2020, Sec. 3): the first layer
  ``z = x W_1 + b_1`` has ``dL/dW_1 = x^T dL/dz`` and ``dL/db_1 = dL/dz`` for one example, so
  column ``j`` of ``dL/dW_1`` divided by ``dL/db_1[j]`` is ``x`` exactly
  (:func:`reconstruct_input`); the label is the one negative entry of the last bias gradient
  ``p - onehot(y)`` (:func:`infer_label`). For a batch of ``B`` rows the same ratio is the mix
  ``sum_n a_n x_n`` with ``a_n = dL/dz_n[j] / sum_m dL/dz_m[j]``.
- **optimization-based**, "deep leakage from gradients" (Zhu et al. 2019): dummy rows ``X'`` and
  label logits ``U`` are moved by Adam until their gradient matches the shared one
  (:func:`dlg`), with the derivative of the matching loss written by hand
  (:func:`matching_loss_and_grad`).
- :func:`mse` and :func:`psnr` (pixels in ``[0, data_range]``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minifed._checks import check_int, check_positive, check_rng
from minifed.models import MLP, SoftmaxRegression

# ----- quality of a reconstruction -----


def mse(x, x_ref) -> float:
    """Mean squared error ``(1/p) sum_i (x_i - x_ref_i)^2`` over all entries.

    >>> mse([0.0, 1.0], [0.5, 1.0])
    0.125
    """
    x, x_ref = _same_shape(x, x_ref)
    return float(np.mean((x - x_ref) ** 2))


def psnr(x, x_ref, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / mse(x, x_ref))``; ``inf``
    for identical arrays. 20 dB is a recognisable digit, 40 dB and above is exact to the eye.

    >>> psnr([0.0, 1.0], [0.1, 1.0])  # mse = 0.005
    23.010299956639813
    """
    range_ = check_positive("data_range", data_range)
    error = mse(x, x_ref)
    return float("inf") if error == 0 else float(10 * np.log10(range_**2 / error))


def _same_shape(x, x_ref) -> tuple[np.ndarray, np.ndarray]:
    x, x_ref = np.asarray(x, dtype=float), np.asarray(x_ref, dtype=float)
    if x.shape != x_ref.shape or x.size == 0:
        raise ValueError(
            f"x and x_ref must be non-empty arrays of the same shape, got {x.shape} and "
            f"{x_ref.shape}."
        )
    return x, x_ref


# ----- the layers of a fully connected model, as views of w -----


def _layers(model, w, name: str = "w") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``([W_1, ..., W_L], [b_1, ..., b_L])`` as views of ``w`` (``model.unflatten``)."""
    if not isinstance(model, (MLP, SoftmaxRegression)):
        raise TypeError(
            f"model must be an MLP or a SoftmaxRegression (a fully connected first layer with "
            f"a bias and a softmax output), got {type(model).__name__}."
        )
    blocks = list(model.unflatten(model.check_params(w, name)).values())  # [W_1, b_1, ...]
    return blocks[0::2], blocks[1::2]


# ----- the analytic attack -----


def reconstruct_input(model, grad) -> np.ndarray:
    """The input row behind a gradient (or a FedAvg update), from the first layer alone.

    With ``z = x W_1 + b_1`` and ``delta = dL/dz`` (``h_1`` entries) one example gives
    ``dL/dW_1 = x^T delta`` and ``dL/db_1 = delta``, so for every unit ``j`` with
    ``delta_j != 0``

        ``x = (dL/dW_1)[:, j] / (dL/db_1)[j]``;

    the unit with the largest ``|dL/db_1[j]|`` is used (the smallest relative rounding). The
    ratio ignores a common factor, so ``grad`` may be a gradient, a mean over steps or FedAvg's
    update ``w_t - w_k``; it must not contain the L2 term (pass ``grad - model.l2 * w``). For a
    batch it returns ``sum_n a_n x_n`` with ``a_n = delta_nj / sum_m delta_mj``; the same holds
    for an update of several local steps (one term per row and step).

    Returns
    -------
    x : ndarray, shape (num_inputs,)
    """
    Ws, bs = _layers(model, grad, "grad")
    dW, db = Ws[0], bs[0]  # (p, h_1), (h_1,)
    j = int(np.argmax(np.abs(db)))
    if db[j] == 0:
        raise ValueError("grad has a zero first-layer bias gradient: nothing to divide by.")
    return dW[:, j] / db[j]  # (p,)


def infer_label(model, grad) -> int:
    """The label of a one-example gradient of softmax cross-entropy.

    The last layer's bias gradient is ``dL/db_L = p - onehot(y)`` with ``0 < p_c < 1``: its only
    negative entry is at ``c = y``, so ``y = argmin_c dL/db_L[c]``.
    """
    return int(np.argmin(_layers(model, grad, "grad")[1][-1]))


def infer_labels(model, grad) -> np.ndarray:
    """Classes certainly present in the batch behind a gradient: ``{c : dL/db_L[c] < 0}``.

    For a batch, ``dL/db_L[c] = mean_n p_nc - (n_c / B)``; since ``p_nc > 0`` a negative entry
    needs ``n_c > 0``. Every returned class is a true label (some present ones may be missed).
    """
    return np.flatnonzero(_layers(model, grad, "grad")[1][-1] < 0)


# ----- deep leakage from gradients: the matching loss and its derivative -----

# name -> (sigma(Z), sigma'(Z), sigma''(Z)), the derivatives written with A = sigma(Z)
_ACTIVATIONS = {
    "relu": (lambda Z: np.maximum(Z, 0), lambda A: (A > 0) * 1.0, lambda A: 0.0 * A),
    "tanh": (np.tanh, lambda A: 1 - A * A, lambda A: -2 * A * (1 - A * A)),
}


def _softmax(Z: np.ndarray) -> np.ndarray:
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def _softmax_backward(S: np.ndarray, dS: np.ndarray) -> np.ndarray:
    """``dZ`` from ``dS`` for ``S = softmax(Z)``: ``dZ = S * (dS - sum_c dS_c S_c)``."""
    return S * (dS - (dS * S).sum(axis=1, keepdims=True))


def soft_label_grad(model, w, X, T) -> tuple[list, list, dict]:
    """Backprop of ``F = (1/B) sum_n -sum_c T_nc log softmax(z_n)_c`` with soft labels ``T``.

    Forward ``A_0 = X``, ``Z_l = A_{l-1} W_l + b_l``, ``A_l = sigma(Z_l)``; backward
    ``G_L = (softmax(Z_L) - T) / B``, ``dW_l = A_{l-1}^T G_l``, ``db_l = 1^T G_l``,
    ``D_{l-1} = G_l W_l^T``, ``G_{l-1} = D_{l-1} * sigma'(Z_{l-1})``. With ``T = onehot(y)`` this
    is ``model.grad`` without the L2 term. Returns ``(dWs, dbs, cache)`` (cache for
    :func:`matching_loss_and_grad`).
    """
    Ws, bs = _layers(model, w)
    act, act_d = _ACTIVATIONS[getattr(model, "activation", "relu")][:2]
    As = [X]  # A_0 .. A_{L-1}: the input of each layer
    for W, b in zip(Ws[:-1], bs[:-1], strict=True):
        As.append(act(As[-1] @ W + b))  # (B, h_l)
    P = _softmax(As[-1] @ Ws[-1] + bs[-1])  # (B, C)
    L = len(Ws)
    G, Gs, Ds = (P - T) / len(X), [None] * L, [None] * L  # Ds[l] = dF/dA_l
    dWs, dbs = [None] * L, [None] * L
    for l in range(L - 1, -1, -1):
        Gs[l], dWs[l], dbs[l] = G, As[l].T @ G, G.sum(axis=0)  # (B, h_l), (h_{l-1}, h_l), (h_l,)
        if l > 0:
            Ds[l] = G @ Ws[l].T  # (B, h_{l-1})
            G = Ds[l] * act_d(As[l])
    return dWs, dbs, {"As": As, "Gs": Gs, "Ds": Ds, "P": P, "Ws": Ws}


def matching_loss_and_grad(model, w, grad, X, U) -> tuple[float, np.ndarray, np.ndarray]:
    """Gradient matching ``D(X, U) = ||g(X, softmax(U)) - grad||^2`` and ``(dD/dX, dD/dU)``.

    ``g`` is :func:`soft_label_grad` plus ``model.l2 * w``. The derivative is reverse mode
    through the backward pass, then through the forward pass (second order: it is the
    Hessian-vector-product structure of ``g``). With the names of :func:`soft_label_grad`,
    ``R_l = 2 (dW_l - dW*_l)``, ``r_l = 2 (db_l - db*_l)`` and bars for adjoints
    (``bar V = dD/dV``), the backward pass is undone first, for ``l = 1, ..., L``:

        bar G_l     = A_{l-1} R_l + 1 r_l^T + bar D_{l-1} W_l     (last term for l >= 2)
        bar A_{l-1} = G_l R_l^T
        bar D_l     = bar G_l * sigma'(Z_l)                       (l < L; G_l = D_l * sigma'(Z_l))
        bar Z_l     = bar G_l * D_l * sigma''(Z_l)                (l < L; the second-order term)

    then ``G_L = (P - T) / B`` gives ``bar P = bar G_L / B``, ``bar T = -bar G_L / B`` and,
    through the two softmaxes, ``bar Z_L = P * (bar P - sum_c bar P_c P_c)`` and ``bar U``
    likewise; last the forward pass in reverse, ``l = L, ..., 1``: ``bar A_{l-1} += bar Z_l
    W_l^T`` and ``bar Z_{l-1} += bar A_{l-1} * sigma'(Z_{l-1})``, down to ``dD/dX = bar A_0``.
    The code counts layers from 0: ``As[l]`` is layer ``l``'s input, ``Gs[l] = dF/dZ_l``,
    ``Ds[l] = dF/dAs[l]``. Checked against central differences in the tests.
    """
    T = _softmax(U)
    dWs, dbs, c = soft_label_grad(model, w, X, T)
    tWs, tbs = _layers(model, np.asarray(grad) - model.l2 * w, "grad")  # target, no L2 term
    Rs = [2 * (a - b) for a, b in zip(dWs, tWs, strict=True)]  # bar dW_l
    rs = [2 * (a - b) for a, b in zip(dbs, tbs, strict=True)]  # bar db_l
    D = sum(float(np.sum(R * R) / 4) for R in Rs + rs)
    As, Gs, Ds, P, Ws = c["As"], c["Gs"], c["Ds"], c["P"], c["Ws"]
    act_d, act_dd = _ACTIVATIONS[getattr(model, "activation", "relu")][1:]
    L = len(Ws)
    bar_A = [G @ R.T for G, R in zip(Gs, Rs, strict=True)]  # (B, h_{l-1}) from dW_l = A^T G
    bar_Zx = [0.0] * L  # bar Z_l through sigma'(Z_l) in the backward pass
    bar_D = None
    for l in range(L):  # reverse of the backward pass: the first layer first
        bar_G = As[l] @ Rs[l] + rs[l]  # (B, h_l) from dW_l = As[l]^T Gs[l], db_l = 1^T Gs[l]
        if l > 0:
            bar_G += bar_D @ Ws[l]  # from Ds[l] = Gs[l] W_l^T
        if l < L - 1:  # Gs[l] = Ds[l + 1] * sigma'(Z_l), with As[l + 1] = sigma(Z_l)
            bar_D = bar_G * act_d(As[l + 1])  # bar Ds[l + 1]
            bar_Zx[l] = bar_G * Ds[l + 1] * act_dd(As[l + 1])
    B = len(X)
    bar_Z = _softmax_backward(P, bar_G / B)  # (B, C)
    bar_U = _softmax_backward(T, -bar_G / B)  # (B, C)
    for l in range(L - 1, -1, -1):  # reverse of the forward pass
        bar_A[l] = bar_A[l] + bar_Z @ Ws[l].T  # (B, h_{l-1})
        if l > 0:
            bar_Z = bar_A[l] * act_d(As[l]) + bar_Zx[l - 1]
    return D, bar_A[0], bar_U


class DLGResult(NamedTuple):
    """``X`` (B, p) reconstructed rows, ``y`` (B,) their labels, ``loss`` the matching loss
    ``D`` before every step and after the last."""

    X: np.ndarray
    y: np.ndarray
    loss: np.ndarray


def dlg(model, w, grad, batch_size: int, rng, steps: int = 1000, lr: float = 0.1, labels=None):
    """Deep leakage from gradients (Zhu et al. 2019): ``min_{X, U} D(X, U)`` by Adam.

    ``D`` and its derivative are :func:`matching_loss_and_grad`. Dummy rows start at
    ``U(0, 1)``, drawn from ``rng``, and label logits at 0 (uniform soft labels; Zhu et al.'s
    ``N(0, 1)`` starts ended at a wrong label more often in a few MNIST trials). The labels are
    learned unless given, e.g. by :func:`infer_label` (iDLG, Zhao et al. 2020), then
    ``softmax(U)`` is their one-hot rows. Adam (Kingma and Ba 2015), ``beta = (0.9, 0.999)``,
    with a step decaying from ``lr`` to 0 along a cosine (a constant step stalls at its own
    noise level: 75 dB against 335 dB for one MNIST digit, softmax regression, label given);
    deterministic given ``rng``. Everything in float64.

    Returns
    -------
    DLGResult
        ``(X, y, loss)``; ``y`` is ``argmax U`` (or ``labels``).
    """
    B = check_int("batch_size", batch_size, minimum=1)
    steps, lr = check_int("steps", steps, minimum=0), check_positive("lr", lr)
    rng = check_rng("rng", rng)
    w = model.check_params(w).astype(np.float64)
    grad = model.check_params(grad, "grad").astype(np.float64)
    C, p = model.num_classes, model.num_inputs
    X, U = rng.uniform(0, 1, size=(B, p)), np.zeros((B, C))  # (B, p), (B, C)
    if labels is not None:
        labels = model.check_data(np.zeros((B, p)), labels, ("X", "labels"))[1]
        U = 1e4 * (np.eye(C)[labels] - 1)  # softmax(U) = onehot(labels) in float64
    m, s, losses = [np.zeros_like(X), np.zeros_like(U)], [np.zeros_like(X), np.zeros_like(U)], []
    for t in range(1, steps + 2):
        D, dX, dU = matching_loss_and_grad(model, w, grad, X, U)
        losses.append(D)
        if t > steps:
            break
        for i, (v, g) in enumerate([(X, dX), (U, dU)][: 1 if labels is not None else 2]):
            m[i] = 0.9 * m[i] + 0.1 * g  # Adam's moments
            s[i] = 0.999 * s[i] + 0.001 * g * g
            eta = lr * 0.5 * (1 + np.cos(np.pi * (t - 1) / steps))  # cosine decay to 0
            v -= eta * (m[i] / (1 - 0.9**t)) / (np.sqrt(s[i] / (1 - 0.999**t)) + 1e-12)
    y = U.argmax(axis=1) if labels is None else labels
    return DLGResult(X, y, np.array(losses))


__all__ = [
    "DLGResult",
    "dlg",
    "infer_label",
    "infer_labels",
    "matching_loss_and_grad",
    "mse",
    "psnr",
    "reconstruct_input",
    "soft_label_grad",
]
