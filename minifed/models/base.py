"""The model contract: structure in the object, parameters in one flat vector ``w``.

A model never stores parameters or data. Its layers are views (reshaped slices) of ``w``, so
federated arithmetic such as ``w <- sum_k p_k w_k`` is plain vector arithmetic.

Subclasses describe their parameter layout with ``_layout()`` and implement
``_forward(w, X)``, ``_example_losses(out, y)`` and ``_data_loss_and_grad(w, X, y, g)``. The base
class adds the L2 term ``(lam/2) ||w||^2``, input checks and the public API.
"""

from __future__ import annotations

import math

import numpy as np

from minifed._checks import (
    check_features,
    check_labels,
    check_nonnegative,
    check_rng,
    check_same_length,
    check_targets,
)


class Model:
    """Base class of every minifed model.

    Parameters
    ----------
    l2 : float
        Strength ``lam`` of the L2 penalty ``(lam/2) ||w||^2`` added to the mean loss.

    Notes
    -----
    The loss of a model on data ``(X, y)`` with ``n`` samples is

        ``F(w) = (1/n) sum_i f(w; x_i, y_i) + (lam/2) ||w||^2``.
    """

    task: str = "classification"  # or "regression"
    num_classes: int | None = None

    def __init__(self, l2: float = 0.0):
        self.l2 = check_nonnegative("l2", l2)

    # ----- layout: w is one flat vector, layers are views into it -----
    def _layout(self) -> list[tuple[str, tuple[int, ...]]]:
        """Return ``[(name, shape), ...]`` in the order the blocks sit in ``w``."""
        raise NotImplementedError

    @property
    def num_params(self) -> int:
        """Length ``d`` of the parameter vector ``w``."""
        return sum(math.prod(shape) for _, shape in self._layout())

    def unflatten(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """Return the named blocks of ``w`` as reshaped views (no copies): writing to a view
        writes to ``w``."""
        blocks, start = {}, 0
        for name, shape in self._layout():
            size = math.prod(shape)
            blocks[name] = w[start : start + size].reshape(shape)
            start += size
        return blocks

    def init(self, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
        """Return a fresh parameter vector drawn with ``rng`` (default: zeros)."""
        check_rng("rng", rng)
        return np.zeros(self.num_params, dtype=dtype)

    # ----- to be implemented by subclasses (no input checks: the hot path) -----
    def _forward(self, w: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Model output: logits ``(n, classes)``, a score ``(n,)`` or a prediction ``(n,)``."""
        raise NotImplementedError

    def _example_losses(self, out: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per-example loss ``f(w; x_i, y_i)`` from the forward output, shape ``(n,)``."""
        raise NotImplementedError

    def _data_loss_and_grad(self, w, X, y, g: np.ndarray) -> float:
        """Write ``grad (1/n) sum_i f(w; x_i, y_i)`` into ``g`` and return that mean loss."""
        raise NotImplementedError

    def _predict_from_output(self, out: np.ndarray) -> np.ndarray:
        """Class labels (classification) or predicted values (regression) from the output."""
        if self.task == "regression":
            return out
        return out.argmax(axis=1) if out.ndim == 2 else (out > 0).astype(np.int64)

    def penalty(self, w: np.ndarray) -> float:
        """The L2 term ``(lam/2) ||w||^2`` of the loss (its gradient ``lam * w`` is added in
        :meth:`loss_and_grad_`)."""
        return 0.5 * self.l2 * float(w @ w) if self.l2 else 0.0

    # ----- unchecked fast path, used by algorithms once data is validated -----
    def loss_and_grad_(self, w: np.ndarray, X, y, g: np.ndarray | None = None):
        """Like :meth:`loss_and_grad` without input checks, writing into ``g`` if given.

        ``g = grad F(w) = grad (1/n) sum_i f(w; x_i, y_i) + lam * w``.
        """
        if g is None:
            g = np.empty_like(w)
        loss = self._data_loss_and_grad(w, X, y, g)
        if self.l2:
            g += self.l2 * w
        return float(loss) + self.penalty(w), g

    def example_metrics_(self, w: np.ndarray, X, y) -> tuple[np.ndarray, np.ndarray]:
        """Per-example losses ``f(w; x_i, y_i)`` (without the L2 term) and predictions, without
        input checks: the evaluation's hot path."""
        out = self._forward(w, X)
        return self._example_losses(out, y), self._predict_from_output(out)

    # ----- public API, with input checks -----
    def check_params(self, w, name: str = "w") -> np.ndarray:
        """Return ``w`` if it is a 1-D float vector of length ``num_params``, else raise."""
        w = np.asarray(w)
        if w.ndim != 1 or w.shape[0] != self.num_params:
            raise ValueError(
                f"{name} must be a 1-D parameter vector of length {self.num_params} for "
                f"{self!r}, got shape {w.shape}; create one with model.init(rng)."
            )
        if w.dtype.kind != "f":
            raise TypeError(f"{name} must be a float vector, got dtype {w.dtype}.")
        return w

    def check_data(self, X, y=None, names: tuple[str, str] = ("X", "y")):
        """Validate features (and labels or targets) for this model; return them as arrays."""
        X = check_features(names[0], X)
        if y is None:
            return X
        if self.task == "regression":
            y = check_targets(names[1], y)
        else:
            y = check_labels(names[1], y, self.num_classes)
        check_same_length(X, y, f"{names[0]} and {names[1]}")
        if len(X) == 0:
            raise ValueError(f"{names[0]} is empty: a loss needs at least one sample.")
        return X, y

    def _checked(self, w, X, y=None):
        w = self.check_params(w)
        if y is None:
            return w, self.check_data(X).astype(w.dtype, copy=False), None
        X, y = self.check_data(X, y)
        if self.task == "regression":
            y = y.astype(w.dtype, copy=False)
        return w, X.astype(w.dtype, copy=False), y

    def forward(self, w, X) -> np.ndarray:
        """Model output (logits or predictions) for the rows of ``X``."""
        w, X, _ = self._checked(w, X)
        return self._forward(w, X)

    def example_losses(self, w, X, y) -> np.ndarray:
        """Per-example losses ``f(w; x_i, y_i)`` (without the L2 term), shape ``(n,)``."""
        w, X, y = self._checked(w, X, y)
        return self._example_losses(self._forward(w, X), y)

    def loss(self, w, X, y) -> float:
        """``F(w) = (1/n) sum_i f(w; x_i, y_i) + (lam/2) ||w||^2``."""
        w, X, y = self._checked(w, X, y)
        return float(self._example_losses(self._forward(w, X), y).mean()) + self.penalty(w)

    def loss_and_grad(self, w, X, y) -> tuple[float, np.ndarray]:
        """Return ``(F(w), grad F(w))`` on the data ``(X, y)``."""
        w, X, y = self._checked(w, X, y)
        return self.loss_and_grad_(w, X, y)

    def grad(self, w, X, y) -> np.ndarray:
        """``grad F(w) = (1/n) sum_i grad f(w; x_i, y_i) + lam * w``."""
        return self.loss_and_grad(w, X, y)[1]

    def predict(self, w, X) -> np.ndarray:
        """Predicted class labels (classification) or values (regression)."""
        w, X, _ = self._checked(w, X)
        return self._predict_from_output(self._forward(w, X))

    def accuracy(self, w, X, y) -> float:
        """Fraction of correctly classified rows; ``nan`` for regression models."""
        if self.task == "regression":
            return float("nan")
        w, X, y = self._checked(w, X, y)
        return float(np.mean(self._predict_from_output(self._forward(w, X)) == y))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self)))
