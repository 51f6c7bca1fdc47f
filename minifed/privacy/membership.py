"""Membership inference by a loss threshold (Yeom et al. 2018, "Privacy risk in machine learning:
analyzing the connection to overfitting", Sec. 3).

The attacker sees a row ``(x, y)`` and the model ``w`` and guesses "member of the training data"
when the loss is small, ``f(w; x, y) < tau``. On members (rows the model was trained on) and
non-members (rows from the same distribution it never saw)

    TPR(tau) = P(f < tau | member),   FPR(tau) = P(f < tau | non-member),
    Adv(tau) = TPR(tau) - FPR(tau)    (Yeom et al.'s membership advantage, Def. 4)

Adv is 0 for a model that treats both alike and grows with the generalization gap (their
Theorem 2 bounds it by the gap for bounded losses). :func:`membership_advantage` takes the best
``tau`` (an upper bound on what the attacker can reach, optimistic on small samples: the maximum
of ``TPR - FPR`` over ``tau`` is the Kolmogorov-Smirnov statistic, about ``1 / sqrt(n)`` for two
samples of size ``n`` from one distribution); :func:`yeom_advantage` uses Yeom et al.'s own rule,
``tau`` = the mean training loss, which the attacker can know without any non-member.
"""

from __future__ import annotations

import numpy as np


def _losses(name: str, losses) -> np.ndarray:
    losses = np.asarray(losses, dtype=float)
    if losses.ndim != 1 or losses.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of losses, got {losses.shape}.")
    if not np.isfinite(losses).all():
        raise ValueError(f"{name} contains NaN or inf.")
    return losses


def threshold_advantage(member_losses, nonmember_losses, tau: float) -> float:
    """``Adv(tau) = P(f < tau | member) - P(f < tau | non-member)``, estimated on the samples.

    >>> threshold_advantage([0.1, 0.2, 0.9], [0.5, 1.0], tau=0.3)  # 2/3 - 0
    0.6666666666666666
    """
    members = _losses("member_losses", member_losses)
    nonmembers = _losses("nonmember_losses", nonmember_losses)
    return float(np.mean(members < tau) - np.mean(nonmembers < tau))


def membership_advantage(member_losses, nonmember_losses) -> tuple[float, float]:
    """``max_tau TPR(tau) - FPR(tau)`` and the ``tau`` that reaches it (the smallest such).

    The rates only change at observed losses, so the candidates are every distinct loss ``u``
    (the rule ``f < u``) and ``inf`` (everyone is a member, ``Adv = 0``). Sorting both samples
    gives every ``TPR`` and ``FPR`` by binary search: ``O(n log n)``.

    >>> membership_advantage([0.1, 0.2, 0.9], [0.5, 1.0])  # f < 0.5: TPR 2/3, FPR 0
    (0.6666666666666666, 0.5)
    """
    members = np.sort(_losses("member_losses", member_losses))
    nonmembers = np.sort(_losses("nonmember_losses", nonmember_losses))
    taus = np.append(np.unique(np.concatenate([members, nonmembers])), np.inf)  # (u,)
    tpr = np.searchsorted(members, taus, side="left") / len(members)  # P(f < tau | member)
    fpr = np.searchsorted(nonmembers, taus, side="left") / len(nonmembers)
    best = int(np.argmax(tpr - fpr))
    return float(tpr[best] - fpr[best]), float(taus[best])


def yeom_advantage(member_losses, nonmember_losses) -> float:
    """Yeom et al.'s threshold attack: ``Adv(tau)`` at ``tau = mean(member_losses)``, the
    training loss the model reports (no non-member data needed to choose ``tau``).

    >>> yeom_advantage([0.1, 0.2, 0.9], [0.5, 1.0])  # tau = 0.4
    0.6666666666666666
    """
    tau = float(np.mean(_losses("member_losses", member_losses)))
    return threshold_advantage(member_losses, nonmember_losses, tau)


__all__ = ["membership_advantage", "threshold_advantage", "yeom_advantage"]
