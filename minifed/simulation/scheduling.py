"""Which worker runs which clients, and how long a round may take before a worker counts as hung."""

from __future__ import annotations

FIRST_ROUND = 1800.0  # seconds for the start and a job's first round, before any measurement
FACTOR, FLOOR = 20.0, 60.0  # then FACTOR x the expected time, at least FLOOR seconds


def assign(costs, workers: int) -> list[list[int]]:
    """Split positions ``0..m-1`` among ``workers``: longest first, each to the least loaded.

    Greedy longest-processing-time scheduling, with ``costs[i]`` (here ``n_k``) as the cost of
    position ``i``; ties go to the lower position and the lower worker.

    >>> assign([5, 1, 4, 2, 3], 2)
    [[0, 3, 1], [2, 4]]
    """
    loads, plan = [0] * workers, [[] for _ in range(workers)]
    for i in sorted(range(len(costs)), key=lambda i: -costs[i]):
        j = loads.index(min(loads))
        plan[j].append(i)
        loads[j] += costs[i]
    return plan


def adaptive_limit(rates, loads) -> float:
    """Seconds the awaited workers get to answer in a round, under ``timeout="auto"``.

    ``rates = (r_s, r_c)`` are the slowest seconds per sample and per client seen so far in this
    job's rounds (``None`` before any answer), ``loads`` the ``(n_j, c_j)`` samples and clients
    of each awaited worker ``j``. A worker's expected time is ``max(r_s n_j, r_c c_j)`` (work
    grows with ``n_k`` for FedAvg's epochs, with the client count for a fixed number of steps),
    and the limit ``max(FLOOR, FACTOR max_j expected_j)``, or ``FIRST_ROUND`` with no rates yet.

    >>> adaptive_limit(None, [(600, 1)])
    1800.0
    >>> adaptive_limit((0.01, 0.5), [(600, 1), (3000, 2)])  # 20 x 30 s
    600.0
    >>> adaptive_limit((0.001, 0.5), [(600, 1)])  # 20 x 0.6 s is under the floor
    60.0
    """
    if rates is None:
        return FIRST_ROUND
    r_s, r_c = rates
    expected = max((max(r_s * n_j, r_c * c_j) for n_j, c_j in loads), default=0.0)
    return max(FLOOR, FACTOR * expected)
