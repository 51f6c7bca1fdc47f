"""Server optimizers on FedAvg's pseudo-gradient: FedAvgM (Hsu, Qi and Brown 2019, "Measuring the
Effects of Non-Identical Data Distribution for Federated Visual Classification") and FedAdagrad,
FedAdam, FedYogi (Reddi et al. 2021, "Adaptive Federated Optimization", ICLR, Algorithm 2).

Reddi et al.'s Algorithm 2 in minifed's notation (``S_t`` the ``m`` clients of round ``t``,
``n_S = sum_{k in S_t} n_k``; squares, ``sqrt`` and ``sign`` act coordinate by coordinate):

    Initialization: w_0, m_{-1} = 0, v_{-1} >= tau^2 (here = tau^2), beta1, beta2 in [0, 1)
    for each round t = 0, 1, ...:
        S_t <- (random set of m clients)
        for each client k in S_t in parallel:
            w_k <- ClientUpdate(k, w_t)     # FedAvg's: E epochs of SGD, step eta_l, batch B
        Delta_t = sum_{k in S_t} (n_k / n_S) (w_k - w_t)      # FedOpt.pseudo_gradient
        m_t = beta1 m_{t-1} + (1 - beta1) Delta_t
        v_t = v_{t-1} + Delta_t^2                                          (FedAdagrad)
        v_t = v_{t-1} - (1 - beta2) Delta_t^2 sign(v_{t-1} - Delta_t^2)    (FedYogi)
        v_t = beta2 v_{t-1} + (1 - beta2) Delta_t^2                        (FedAdam)
        w_{t+1} = w_t + eta m_t / (sqrt(v_t) + tau)

FedAvgM (Hsu et al. 2019, Section 3) is server SGD with heavy-ball momentum on the same Delta_t:

        v_t = momentum v_{t-1} + Delta_t,   v_{-1} = 0
        w_{t+1} = w_t + eta v_t

Hsu et al. write ``Delta w = w_t - (average of the w_k)`` and ``w <- w - v`` (server step 1);
with Reddi et al.'s sign ``Delta_t = -Delta w`` it is the update above with ``eta = 1``. Their
average is weighted by ``n_k / n``, as here.

Step sizes follow the paper: ``eta_l`` is the clients' step (``lr``, the ``eta`` of
:mod:`~minifed.algorithms.fedavg`), ``eta`` the server's (``server_lr``). With server SGD
(``FedOpt``) and ``eta = 1``, ``w_t + Delta_t`` is FedAvg's average: FedOpt reduces to FedAvg.

**Weighted pseudo-gradient.** Reddi et al. average ``Delta_t^k`` uniformly, ``1/|S_t|``, because
their objective is ``(1/K) sum_k F_k``. minifed's objective is ``sum_k (n_k / n) F_k`` and its
FedAvg weights by ``n_k / n_S``, so ``Delta_t`` uses those coefficients too: then the reduction
above is exact. With equal ``n_k`` both choices agree.

**No bias correction.** Algorithm 2 has none (unlike Kingma and Ba's Adam): ``v_{-1} = tau^2``
and ``tau`` keep the first steps bounded. FedAdam's first step moves every coordinate by
``eta (1 - beta1) |Delta_0| / (sqrt(beta2 tau^2 + (1 - beta2) Delta_0^2) + tau)``, about ``eta``
with the defaults when ``|Delta_0| >> tau``.
"""

from __future__ import annotations

import numpy as np

from minifed._checks import check_nonnegative, check_positive
from minifed.algorithms.base import aggregate
from minifed.algorithms.fedavg import FedAvg
from minifed.models.base import Model


def check_decay(name: str, value) -> float:
    """Return a decay rate (``beta1``, ``beta2``, ``momentum``) in ``[0, 1)``, or raise."""
    value = check_nonnegative(name, value)
    if value >= 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}.")
    return value


class FedOpt(FedAvg):
    """FedAvg's clients with an optimizer on the server; this base class is server SGD.

    Parameters
    ----------
    model, lr, epochs, batch_size
        The clients' settings, as :class:`~minifed.algorithms.FedAvg` (``lr`` is the paper's
        ``eta_l``).
    server_lr : float
        Server step size ``eta > 0``; ``w_{t+1} = w_t + eta Delta_t``. ``1.0`` (the default)
        is FedAvg (Reddi et al. 2021, Section 2).
    """

    name = "fedopt"

    def __init__(
        self,
        model: Model,
        lr: float,
        epochs: int = 1,
        batch_size: int | None = None,
        server_lr: float = 1.0,
    ):
        super().__init__(model, lr, epochs, batch_size)
        self.server_lr = check_positive("server_lr", server_lr)

    @staticmethod
    def pseudo_gradient(w: np.ndarray, W: np.ndarray, n_S) -> np.ndarray:
        """``Delta_t = sum_{k in S_t} (n_k / n_S) w_k - w_t`` from the stack ``W`` ``(m, d)``.

        >>> W = np.array([[0.0, 1.0], [3.0, 1.0]])
        >>> FedOpt.pseudo_gradient(np.array([1.0, 1.0]), W, [1, 2])  # plain mean: [0.5, 0.]
        array([1., 0.])
        """
        return aggregate(W, n_S) - w  # (d,)

    def server_update(self, w, W, n_S) -> np.ndarray:
        """Server SGD: ``w_{t+1} = w_t + eta Delta_t``."""
        return w + self.server_lr * self.pseudo_gradient(w, W, n_S)


class FedAvgM(FedOpt):
    """FedAvg with server momentum (Hsu, Qi and Brown 2019): ``v_t = momentum v_{t-1} +
    Delta_t``, ``w_{t+1} = w_t + eta v_t``. Server state ``v`` (zeros at the start).

    Parameters
    ----------
    model, lr, epochs, batch_size
        As :class:`FedOpt`.
    server_lr : float
        Server step ``eta > 0``. Default ``1.0``: Hsu et al.'s update ``w <- w - v`` has none.
    momentum : float
        Server momentum in ``[0, 1)``; ``0`` with ``server_lr=1`` is FedAvg. Default ``0.9``:
        one of the values Hsu et al. sweep, not a default stated by them (their best momentum
        depends on the client step, as the effective step is ``eta_l / (1 - momentum)``).
    """

    name = "fedavgm"

    def __init__(
        self,
        model: Model,
        lr: float,
        epochs: int = 1,
        batch_size: int | None = None,
        server_lr: float = 1.0,
        momentum: float = 0.9,
    ):
        super().__init__(model, lr, epochs, batch_size, server_lr)
        self.momentum = check_decay("momentum", momentum)

    def init_state(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """``v_{-1} = 0``, like ``w``."""
        return {"v": np.zeros_like(w)}

    def server_update(self, w, W, n_S, v):
        """``v_t = momentum v_{t-1} + Delta_t``; ``w_{t+1} = w_t + eta v_t``."""
        Delta_t = self.pseudo_gradient(w, W, n_S)
        v_t = self.momentum * v + Delta_t
        return w + self.server_lr * v_t, {"v": v_t}


class FedAdaptive(FedOpt):
    """Reddi et al.'s Algorithm 2 without its ``v_t`` line, which each subclass gives in
    :meth:`second_moment`. Server state ``m`` (``m_{-1} = 0``) and ``v`` (``v_{-1} = tau^2``).

    Parameters
    ----------
    model, lr, epochs, batch_size
        As :class:`FedOpt`.
    server_lr : float
        Server step ``eta > 0``. Default ``1e-2``, minifed's choice: the paper tunes ``eta`` per
        task on a log grid and states no default; FedAdam's first step moves each coordinate by
        about ``eta``.
    beta1 : float
        First-moment decay in ``[0, 1)``. Default ``0.9``, the value of Reddi et al.'s
        experiments.
    tau : float
        Adaptivity ``tau > 0`` (smaller: more adaptive). Default ``1e-3``, the value Reddi et al.
        found good across their tasks (they tune it on a log grid).
    """

    def __init__(
        self,
        model: Model,
        lr: float,
        epochs: int = 1,
        batch_size: int | None = None,
        *,
        server_lr: float = 1e-2,
        beta1: float = 0.9,
        tau: float = 1e-3,
    ):
        super().__init__(model, lr, epochs, batch_size, server_lr)
        self.beta1 = check_decay("beta1", beta1)
        self.tau = check_positive("tau", tau)

    def init_state(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """``m_{-1} = 0`` and ``v_{-1} = tau^2`` (the least the paper allows), like ``w``."""
        return {"m": np.zeros_like(w), "v": np.full_like(w, self.tau**2)}

    def server_update(self, w, W, n_S, m, v):
        """``m_t = beta1 m_{t-1} + (1 - beta1) Delta_t``, ``v_t`` by :meth:`second_moment`,
        ``w_{t+1} = w_t + eta m_t / (sqrt(v_t) + tau)``."""
        Delta_t = self.pseudo_gradient(w, W, n_S)
        m_t = self.beta1 * m + (1 - self.beta1) * Delta_t
        v_t = self.second_moment(v, Delta_t * Delta_t)
        w_next = w + self.server_lr * m_t / (np.sqrt(v_t) + self.tau)
        return w_next, {"m": m_t, "v": v_t}

    def second_moment(self, v: np.ndarray, Delta2: np.ndarray) -> np.ndarray:
        """``v_t`` from ``v_{t-1}`` and ``Delta_t^2``."""
        raise NotImplementedError


class FedAdagrad(FedAdaptive):
    """FedAdagrad (Reddi et al. 2021, Algorithm 2): ``v_t = v_{t-1} + Delta_t^2``.

    Parameters as :class:`FedAdaptive` (no ``beta2``: Adagrad's ``v_t`` does not decay). The
    server settings are keyword-only in the whole family, so a ``beta2`` meant for FedAdam can
    never land silently in FedAdagrad's ``tau``: it is refused by name.
    """

    name = "fedadagrad"

    def second_moment(self, v, Delta2):
        """``v_t = v_{t-1} + Delta_t^2``."""
        return v + Delta2


class FedAdam(FedAdaptive):
    """FedAdam (Reddi et al. 2021, Algorithm 2): ``v_t = beta2 v_{t-1} + (1 - beta2) Delta_t^2``.

    Parameters
    ----------
    model, lr, epochs, batch_size, server_lr, beta1, tau
        As :class:`FedAdaptive`.
    beta2 : float
        Second-moment decay in ``[0, 1)``. Default ``0.99``, the value of Reddi et al.'s
        experiments.
    """

    name = "fedadam"

    def __init__(
        self,
        model: Model,
        lr: float,
        epochs: int = 1,
        batch_size: int | None = None,
        *,
        server_lr: float = 1e-2,
        beta1: float = 0.9,
        beta2: float = 0.99,
        tau: float = 1e-3,
    ):
        super().__init__(model, lr, epochs, batch_size, server_lr=server_lr, beta1=beta1, tau=tau)
        self.beta2 = check_decay("beta2", beta2)

    def second_moment(self, v, Delta2):
        """``v_t = beta2 v_{t-1} + (1 - beta2) Delta_t^2``."""
        return self.beta2 * v + (1 - self.beta2) * Delta2


class FedYogi(FedAdam):
    """FedYogi (Reddi et al. 2021, Algorithm 2): FedAdam with Yogi's ``v_t`` (Zaheer et al.
    2018), ``v_t = v_{t-1} - (1 - beta2) Delta_t^2 sign(v_{t-1} - Delta_t^2)``: ``v`` moves by
    ``(1 - beta2) Delta_t^2`` towards ``Delta_t^2``, never by a fraction of ``v_{t-1}``.

    Parameters as :class:`FedAdam`.
    """

    name = "fedyogi"

    def second_moment(self, v, Delta2):
        """``v_t = v_{t-1} - (1 - beta2) Delta_t^2 sign(v_{t-1} - Delta_t^2)``."""
        return v - (1 - self.beta2) * Delta2 * np.sign(v - Delta2)
