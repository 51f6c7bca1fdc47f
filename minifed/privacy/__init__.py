"""Privacy for federated learning: a Renyi-DP accountant for the sampled Gaussian mechanism, and
the attacks that show why it is needed.

``epsilon(noise_multiplier, sample_rate, steps, delta)`` answers "what (epsilon, delta)-DP do
``steps`` rounds of DP-FedAvg with noise multiplier ``z`` and client sampling rate ``q`` give?".
:mod:`~minifed.privacy.reconstruction` recovers inputs and labels from a shared gradient or update
(analytically, and by gradient matching); :mod:`~minifed.privacy.membership` measures how well a
loss threshold tells training rows from others. :func:`secure_sum` runs secure aggregation with
dropouts (Bonawitz et al. 2017: :mod:`~minifed.privacy.secagg`, :mod:`~minifed.privacy.dh`,
:mod:`~minifed.privacy.shamir`); ``minifed.algorithms.SecAggFedAvg`` puts it under FedAvg.
"""

from minifed.privacy.accountant import (
    DEFAULT_ORDERS,
    Accountant,
    epsilon,
    epsilon_from_rdp,
    rdp,
)
from minifed.privacy.cohort import Cohort, secure_sum
from minifed.privacy.membership import membership_advantage, threshold_advantage, yeom_advantage
from minifed.privacy.reconstruction import (
    DLGResult,
    dlg,
    infer_label,
    infer_labels,
    matching_loss_and_grad,
    mse,
    psnr,
    reconstruct_input,
    soft_label_grad,
)
from minifed.privacy.secagg import ThresholdError

__all__ = [
    "DEFAULT_ORDERS",
    "Accountant",
    "Cohort",
    "DLGResult",
    "ThresholdError",
    "dlg",
    "epsilon",
    "epsilon_from_rdp",
    "infer_label",
    "infer_labels",
    "matching_loss_and_grad",
    "membership_advantage",
    "mse",
    "psnr",
    "rdp",
    "reconstruct_input",
    "secure_sum",
    "soft_label_grad",
    "threshold_advantage",
    "yeom_advantage",
]
