"""Privacy for federated learning: a Renyi-DP accountant for the sampled Gaussian mechanism.

``epsilon(noise_multiplier, sample_rate, steps, delta)`` answers "what (epsilon, delta)-DP do
``steps`` rounds of DP-FedAvg with noise multiplier ``z`` and client sampling rate ``q`` give?".
"""

from minifed.privacy.accountant import (
    DEFAULT_ORDERS,
    Accountant,
    epsilon,
    epsilon_from_rdp,
    rdp,
)

__all__ = ["DEFAULT_ORDERS", "Accountant", "epsilon", "epsilon_from_rdp", "rdp"]
