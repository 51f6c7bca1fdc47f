"""Linear models: linear regression, logistic regression, softmax regression.

Each one is ``out = X W + b`` followed by a loss; the parameters ``[W, b]`` sit in one flat
vector ``w``. The softmax cross-entropy written here is shared by every classifier with logits
``(n, C)`` (the MLP and the CNN use it too).
"""

from __future__ import annotations

import math

import numpy as np

from minifed._checks import check_int
from minifed.models.base import Model

# ----- softmax cross-entropy on logits Z of shape (n, C) -----


def softmax_cross_entropy(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-example cross-entropy ``f_i = log sum_c exp(Z_ic) - Z_{i, y_i}``, shape ``(n,)``.

    Computed stably by log-sum-exp: ``Z`` is shifted by its row maximum before ``exp``, which
    leaves ``f_i`` unchanged and keeps ``exp`` from overflowing.

    >>> Z = np.array([[1000.0, 0.0], [0.0, 0.0]])
    >>> softmax_cross_entropy(Z, np.array([0, 1])).round(4)
    array([0.    , 0.6931])
    """
    Zs = Z - Z.max(axis=1, keepdims=True)  # (n, C), max of each row is 0
    return np.log(np.exp(Zs).sum(axis=1)) - Zs[np.arange(len(y)), y]


def softmax_cross_entropy_grad_(Z: np.ndarray, y: np.ndarray) -> float:
    """Return the mean cross-entropy and overwrite ``Z`` with its gradient.

    ``F = (1/n) sum_i f_i`` and ``dF/dZ = (softmax(Z) - onehot(y)) / n``, where
    ``softmax(Z)_ic = exp(Z_ic) / sum_c' exp(Z_ic')``. ``Z`` (the logits, a temporary on the hot
    path) is reused as the output buffer; its dtype is kept (float32 stays float32).
    """
    n, rows = len(y), np.arange(len(y))
    Z -= Z.max(axis=1, keepdims=True)  # (n, C) shift: softmax and f_i unchanged
    z_y = Z[rows, y]  # (n,) shifted logit of the true class
    np.exp(Z, out=Z)  # (n, C) exp(Z_ic - max_c Z_ic)
    s = Z.sum(axis=1, keepdims=True)  # (n, 1) softmax denominators
    loss = float(np.log(s).sum() - z_y.sum()) / n  # mean of f_i = log s_i - z_{i,y_i}
    Z *= (1.0 / n) / s  # (n, C) softmax / n
    Z[rows, y] -= 1.0 / n  # (n, C) (softmax - onehot) / n
    return loss


# ----- models whose rows have a fixed number of features -----


class _FeatureModel(Model):
    """A model whose samples are rows of ``num_inputs`` features (trailing axes are flattened)."""

    @property
    def num_inputs(self) -> int:
        """Number of features per sample."""
        raise NotImplementedError

    def check_data(self, X, y=None, names: tuple[str, str] = ("X", "y")):
        """Validate as :meth:`Model.check_data` and check the number of features per sample."""
        checked = super().check_data(X, y, names)
        X = checked if y is None else checked[0]
        width = math.prod(X.shape[1:])
        if width != self.num_inputs:
            raise ValueError(
                f"{names[0]} must have {self.num_inputs} features per sample for {self!r}, "
                f"got shape {X.shape}."
            )
        return checked


class _LinearModel(_FeatureModel):
    """``out = X W + b`` with ``W`` of shape ``(p,)`` or ``(p, C)``."""

    def __init__(self, num_features: int, l2: float = 0.0):
        super().__init__(l2)
        self.num_features = check_int("num_features", num_features, minimum=1)

    @property
    def num_inputs(self) -> int:
        return self.num_features

    def _forward(self, w, X):
        p = self.unflatten(w)
        return X.reshape(len(X), -1) @ p["W"] + p["b"]  # (n,) or (n, C)

    def _write_grad(self, w, X, dout, g) -> None:
        """Backward of ``out = X W + b``: ``dF/dW = X^T dout``, ``dF/db = sum_i dout_i``."""
        gp = self.unflatten(g)
        X = X.reshape(len(X), -1)  # (n, p)
        np.matmul(X.T, dout, out=gp["W"])  # (p,) or (p, C)
        np.sum(dout, axis=0, out=gp["b"], keepdims=dout.ndim == 1)  # (1,) or (C,)


class LinearRegression(_LinearModel):
    """Least-squares linear regression.

    Prediction ``yhat_i = x_i . W + b``; per-example loss ``f_i = 0.5 (x_i . W + b - y_i)^2``;
    ``F(w) = (1/n) sum_i f_i + (lam/2) ||w||^2`` with ``w = [W, b]`` of length ``p + 1``.

    Parameters
    ----------
    num_features : int
        Number of features ``p``.
    l2 : float
        L2 strength ``lam``.

    Examples
    --------
    >>> model = LinearRegression(2)
    >>> w = np.array([1.0, 2.0, 0.5])  # W = [1, 2], b = 0.5
    >>> model.predict(w, np.array([[1.0, 1.0]]))
    array([3.5])
    >>> model.loss(w, np.array([[1.0, 1.0]]), np.array([1.5]))  # 0.5 * (3.5 - 1.5)^2
    2.0
    """

    task = "regression"

    def _layout(self):
        return [("W", (self.num_features,)), ("b", (1,))]

    def _example_losses(self, out, y):
        return 0.5 * (out - y) ** 2  # f_i = 0.5 r_i^2, r_i = yhat_i - y_i

    def _data_loss_and_grad(self, w, X, y, g):
        r = self._forward(w, X) - y  # (n,) residuals
        self._write_grad(w, X, r / len(y), g)  # dF/dyhat_i = r_i / n
        return 0.5 * float(r @ r) / len(y)


class LogisticRegression(_LinearModel):
    """Binary logistic regression with labels in ``{0, 1}``.

    Score ``s_i = x_i . W + b``; ``P(y_i = 1) = sigmoid(s_i)``; per-example loss
    ``f_i = log(1 + exp(-s_i))`` if ``y_i = 1`` and ``log(1 + exp(s_i))`` if ``y_i = 0``, computed
    stably with ``np.logaddexp``; gradient ``df_i/ds_i = sigmoid(s_i) - y_i``. Predicts ``s > 0``.

    Parameters
    ----------
    num_features : int
        Number of features ``p``.
    l2 : float
        L2 strength ``lam``.

    Examples
    --------
    >>> model = LogisticRegression(1)
    >>> model.loss(np.array([0.0, 0.0]), np.array([[3.0]]), np.array([1]))  # log 2
    0.6931471805599453
    """

    num_classes = 2

    def _layout(self):
        return [("W", (self.num_features,)), ("b", (1,))]

    def _example_losses(self, out, y):
        t = np.where(y == 1, -out, out)  # (n,) f_i = log(1 + exp(t_i))
        return np.logaddexp(0, t)

    def _data_loss_and_grad(self, w, X, y, g):
        s = self._forward(w, X)  # (n,) scores
        sigmoid = np.exp(-np.logaddexp(0, -s))  # 1 / (1 + exp(-s)) without overflow
        ds = (sigmoid - y.astype(s.dtype)) / len(y)  # (n,) dF/ds_i
        self._write_grad(w, X, ds, g)
        return float(self._example_losses(s, y).mean())


class SoftmaxRegression(_LinearModel):
    """Multinomial logistic (softmax) regression over ``C`` classes.

    Logits ``Z = X W + b`` of shape ``(n, C)``; per-example loss
    ``f_i = log sum_c exp(Z_ic) - Z_{i, y_i}`` (computed with log-sum-exp); predicts ``argmax_c``.

    Parameters
    ----------
    num_features : int
        Number of features ``p``.
    num_classes : int
        Number of classes ``C >= 2``.
    l2 : float
        L2 strength ``lam``.

    Examples
    --------
    >>> model = SoftmaxRegression(4, 3)
    >>> model.num_params  # W (4, 3) and b (3,)
    15
    """

    def __init__(self, num_features: int, num_classes: int, l2: float = 0.0):
        super().__init__(num_features, l2)
        self.num_classes = check_int("num_classes", num_classes, minimum=2)

    def _layout(self):
        return [("W", (self.num_features, self.num_classes)), ("b", (self.num_classes,))]

    def _example_losses(self, out, y):
        return softmax_cross_entropy(out, y)

    def _data_loss_and_grad(self, w, X, y, g):
        Z = self._forward(w, X)  # (n, C) logits
        loss = softmax_cross_entropy_grad_(Z, y)  # Z now holds dF/dZ
        self._write_grad(w, X, Z, g)
        return loss
