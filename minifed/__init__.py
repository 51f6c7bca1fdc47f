"""minifed: federated learning in readable NumPy.

The federated objective is ``min_w F(w) = sum_k (n_k/n) F_k(w)``; every model keeps its parameters
in one flat vector ``w`` so that FedSGD and FedAvg are vector arithmetic, line by line as in
McMahan et al. (2017).
"""

__version__ = "0.1.0"

from minifed._docstrings import plain_doc, show_doc

__all__ = ["plain_doc", "show_doc"]
