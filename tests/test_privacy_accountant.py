"""The Renyi-DP accountant of the sampled Gaussian mechanism (minifed.privacy.accountant).

Reference values are facts from papers and from the test suites of other accountants, quoted with
their source; the independent check integrates the privacy-loss moments numerically, here.
"""

import math
import time

import numpy as np
import pytest

from minifed.privacy import DEFAULT_ORDERS, Accountant, epsilon, epsilon_from_rdp, rdp
from minifed.privacy.accountant import log_a_integer

# The orders of Opacus' RDPAccountant (DEFAULT_ALPHAS); minifed's default is TF Privacy's grid.
OPACUS_ORDERS = [1 + x / 10 for x in range(1, 100)] + list(range(12, 64))


# (a) Reference values ----------------------------------------------------------------------------


def test_abadi_example_moments_accountant():
    """Abadi et al. 2016, Sec. 3.1: q = 0.01, sigma = 4, T = 10,000, delta = 1e-5 give
    eps ~ 1.26 with the moments accountant. Their conversion is the classic one (Mironov 2017),
    which gives 1.2586 here; Balle et al. 2020's conversion gives a smaller bound."""
    classic = epsilon(4.0, 0.01, 10_000, 1e-5, conversion="mironov2017")
    assert round(classic, 2) == 1.26
    default = epsilon(4.0, 0.01, 10_000, 1e-5)
    assert default == pytest.approx(1.0355, abs=1e-4)
    assert default < classic


@pytest.mark.parametrize(
    "n, batch, z, epochs, delta, eps, order",
    [
        (60_000, 150, 1.3, 15, 1e-5, 0.7242234026109595, 19),
        (100_000, 100, 1.0, 30, 1e-7, 1.4154988495444842, 13),
    ],
)
def test_tf_privacy_compute_dp_sgd_privacy(n, batch, z, epochs, delta, eps, order):
    """TF Privacy, compute_dp_sgd_privacy_test.py (Test0, Test1): q = batch / n,
    T = ceil(epochs n / batch), orders = our DEFAULT_ORDERS, conversion of dp_accounting
    (Canonne, Kamath and Steinke 2020, Prop. 12 = balle2020). Both best orders are integers."""
    q, T = batch / n, math.ceil(epochs * n / batch)
    assert epsilon(z, q, T, delta) == pytest.approx(eps, rel=1e-9)
    total = T * rdp(z, q)
    at_order = epsilon_from_rdp(total[DEFAULT_ORDERS == order], [order], delta)
    assert at_order == pytest.approx(eps, rel=1e-9)


def test_opacus_rdp_accountant():
    """Opacus, accountants_test.py::test_rdp_accountant: z = 1.5, q = 0.04, 2250 steps,
    delta = 1e-5 give 7.32911117143 with Opacus' orders and Balle et al. 2020's conversion."""
    acc = Accountant(delta=1e-5, orders=OPACUS_ORDERS)
    for _ in range(int(90 / 0.04)):
        acc.step(noise_multiplier=1.5, sample_rate=0.04)
    assert acc.epsilon() == pytest.approx(7.32911117143, rel=1e-9)


def test_rdp_values_of_tf_privacy_and_dp_accounting():
    """RDP of 50 steps at q = 0.01, z = 2.5. TF Privacy's rdp_accountant_test.py
    (test_compute_rdp_sequence, places of 1e-5): [0.00065, 0.001085, 0.00218075, 0.023846,
    167.416307] at orders [1.5, 2.5, 5, 50, 100]. dp_accounting's rdp_privacy_accountant_test.py
    (rtol 1e-4): [6.70579741e-04, 1.08548710e-03, 2.18075656e-03, 2.38460375e-02, 1.67416308e02].
    The two agree at integer orders; at 1.5 dp_accounting is 3 % higher because its series
    adds the absolute values of the alternating terms (an upper bound). minifed sums the signed
    series, which the numerical integration below confirms."""
    ours = 50 * rdp(2.5, 0.01, [1.5, 2.5, 5, 50, 100])
    tf_privacy = [0.00065, 0.001085, 0.00218075, 0.023846, 167.416307]
    dp_accounting = [6.70579741e-04, 1.08548710e-03, 2.18075656e-03, 2.38460375e-02, 1.67416308e02]
    np.testing.assert_allclose(ours, tf_privacy, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ours[2:], dp_accounting[2:], rtol=1e-7)
    assert np.all(ours[:2] <= dp_accounting[:2])
    # TF Privacy, test_compute_rdp_scalar: q = 0.1, z = 2, 10 steps, order 5 -> 0.07737.
    assert 10 * rdp(2.0, 0.1, [5])[0] == pytest.approx(0.07737, abs=5e-6)


def test_conversion_reference_values():
    """TF Privacy / dp_accounting, test_compute_epsilon_delta_pure_dp: RDP 1.1 at orders 2..32
    and delta = 1e-5 give eps = 1.32783806176 (best order 32). test_compute_epsilon_delta_gaussian:
    the Gaussian (q = 1) with z = 4.530877117 is (1, 1e-6)-DP over the orders 1.001..99.999."""
    orders = np.arange(2, 33)
    assert epsilon_from_rdp(np.full(31, 1.1), orders, 1e-5) == pytest.approx(1.32783806176)
    fine = np.arange(1001, 100_000) / 1000
    assert epsilon(4.530877117, 1.0, 1, 1e-6, orders=fine) == pytest.approx(1.0, abs=1e-7)


def test_composition_with_changing_settings_classic_conversion():
    """TF Privacy's rdp_accountant_test.py::test_check_composition, with the old (classic)
    conversion: 40,000 steps at q = 1e-4, z = 0.4, then 100 steps at q = 0.1, z = 2, give
    eps = 8.509656 at delta = 1e-5 over its orders (best order 2.5)."""
    orders = (1.25, 1.5, 1.75, 2, 2.5, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 64, 256)
    acc = Accountant(delta=1e-5, orders=orders, conversion="mironov2017")
    acc.step(noise_multiplier=0.4, sample_rate=1e-4, steps=40_000)
    assert acc.step(noise_multiplier=2.0, sample_rate=0.1, steps=100) == pytest.approx(
        8.509656, abs=1e-6
    )
    assert Accountant(1e-5, orders).step(0.4, 1e-4, 40_000) < acc.epsilon()


# (b) Independent check: numerical integration of the privacy-loss moments -----------------------


def log_moment_numeric(q, z, alpha, direction):
    """``log E_{x ~ P}[(P(x) / Q(x))^(alpha - 1)]`` on a trapezoid grid, in log space, for
    ``(P, Q) = (mu, mu_0)`` ("forward") or ``(mu_0, mu)`` ("backward"), with
    ``mu_0 = N(0, z^2)`` and ``mu = (1 - q) N(0, z^2) + q N(1, z^2)``. Written from the
    definitions: both densities are evaluated, nothing of the library is used."""
    h = z / 40  # the integrand is a mixture of Gaussians of width z: spectral accuracy
    x = np.arange(-15 * z - 2, alpha + 15 * z + 2, h)
    log_mu0 = -0.5 * (x / z) ** 2 - math.log(z * math.sqrt(2 * math.pi))
    log_mu1 = -0.5 * ((x - 1) / z) ** 2 - math.log(z * math.sqrt(2 * math.pi))
    log_mu = np.logaddexp(math.log1p(-q) + log_mu0, math.log(q) + log_mu1)
    log_p, log_q = (log_mu, log_mu0) if direction == "forward" else (log_mu0, log_mu)
    log_f = alpha * log_p + (1 - alpha) * log_q  # P^alpha Q^(1 - alpha)
    top = log_f.max()
    f = np.exp(log_f - top)
    return top + math.log(h * (f.sum() - 0.5 * (f[0] + f[-1])))


def rdp_numeric(q, z, orders):
    """``max`` of the two Renyi divergences of one step, at each order, by integration."""
    return np.array(
        [
            max(log_moment_numeric(q, z, a, d) for d in ("forward", "backward")) / (a - 1)
            for a in orders
        ]
    )


def epsilon_cks(rdp_total, orders, delta):
    """Canonne, Kamath and Steinke 2020, Prop. 12, solved for epsilon: (alpha, tau)-RDP gives
    delta = exp((alpha - 1)(tau - eps)) / (alpha - 1) * (1 - 1/alpha)^alpha."""
    a = np.asarray(orders)
    eps = rdp_total + (a * np.log(1 - 1 / a) - np.log(a - 1) - math.log(delta)) / (a - 1)
    return max(eps.min(), 0.0)


@pytest.mark.parametrize("q", [0.001, 0.01, 0.1, 0.5])
@pytest.mark.parametrize("z", [0.7, 1.0, 2.0, 5.0])
def test_epsilon_equals_numerical_integration(q, z):
    """Over a grid of (q, z, steps), epsilon agrees within 1 % with the one built from
    numerically integrated moments (all default orders, integer and fractional)."""
    numeric = rdp_numeric(q, z, DEFAULT_ORDERS)
    np.testing.assert_allclose(rdp(z, q), numeric, rtol=1e-6, atol=1e-13)
    for steps in (1, 10, 100, 1_000, 10_000):
        expected = epsilon_cks(steps * numeric, DEFAULT_ORDERS, 1e-5)
        assert epsilon(z, q, steps, 1e-5) == pytest.approx(expected, rel=0.01, abs=1e-9)


def test_forward_direction_dominates():
    """MTZ 2019: D_alpha(mu || mu_0) >= D_alpha(mu_0 || mu), so rdp() needs only A_alpha."""
    for q, z, a in [(0.01, 1.0, 1.5), (0.1, 0.7, 8), (0.5, 2.0, 2.5), (0.9, 1.0, 32)]:
        forward = log_moment_numeric(q, z, a, "forward")
        assert forward >= log_moment_numeric(q, z, a, "backward")
        assert rdp(z, q, [a])[0] == pytest.approx(forward / (a - 1), rel=1e-6)


def test_integer_orders_equal_plain_binomial_sum():
    """The ``A_alpha - 1`` form of log_a_integer equals the textbook sum in exact binomials."""
    for q, z, alpha in [(0.01, 1.0, 2), (0.2, 2.0, 7), (0.5, 3.0, 30), (0.9, 1.5, 12)]:
        plain = sum(
            math.comb(alpha, k) * (1 - q) ** (alpha - k) * q**k * math.exp((k * k - k) / (2 * z**2))
            for k in range(alpha + 1)
        )
        assert log_a_integer(q, z, alpha) == pytest.approx(math.log(plain), rel=1e-12)


def test_tiny_sample_rate_keeps_relative_accuracy():
    """At order 2, A_2 = 1 + q^2 (e^{1/z^2} - 1) exactly: eps_RDP(2) = log1p(q^2 expm1(1/z^2)).
    Summing ``A_alpha - 1`` keeps full relative accuracy even at q = 1e-10."""
    for q in (1e-4, 1e-7, 1e-10):
        exact = math.log1p(q**2 * math.expm1(1 / 4.0**2))
        assert rdp(4.0, q, [2])[0] == pytest.approx(exact, rel=1e-12)


# (c) Monotonicity --------------------------------------------------------------------------------


def test_epsilon_grows_with_steps_and_q_and_falls_with_z():
    qs, zs, steps = [0.001, 0.01, 0.05, 0.2, 0.6, 1.0], [0.6, 1.0, 2.0, 5.0], [1, 10, 100, 10_000]
    eps = np.array([[[epsilon(z, q, T, 1e-5) for T in steps] for z in zs] for q in qs])  # (q, z, T)
    assert np.all(np.diff(eps, axis=0) > 0)  # more sampling, more leak
    assert np.all(np.diff(eps, axis=1) < 0)  # more noise, less leak
    assert np.all(np.diff(eps, axis=2) > 0)  # more rounds, more leak


# (d) Special cases -------------------------------------------------------------------------------


def test_full_participation_is_the_gaussian_mechanism():
    z = 1.7
    np.testing.assert_array_equal(rdp(z, 1.0), DEFAULT_ORDERS / (2 * z**2))
    np.testing.assert_allclose(rdp(z, 1 - 1e-9), rdp(z, 1.0), rtol=1e-6)  # series -> closed form
    T, delta = 50, 1e-5
    a = DEFAULT_ORDERS
    closed = np.min(T * a / (2 * z**2) + np.log1p(-1 / a) - (math.log(delta) + np.log(a)) / (a - 1))
    assert epsilon(z, 1.0, T, delta) == pytest.approx(closed, rel=1e-12)


def test_degenerate_settings():
    assert epsilon(1.0, 0.0, 1000, 1e-5) == 0.0  # nobody sampled
    assert epsilon(0.0, 0.0, 1000, 1e-5) == 0.0
    assert epsilon(1.0, 0.1, 0, 1e-5) == 0.0  # no round yet
    assert epsilon(0.0, 0.1, 0, 1e-5) == 0.0
    assert epsilon(0.0, 0.1, 1, 1e-5) == math.inf  # no noise: no privacy
    assert np.all(rdp(0.0, 1.0) == np.inf)
    assert epsilon(1e4, 0.01, 1, 0.5) == 0.0  # never negative
    # Tiny RDP: the Bretagnolle-Huber rule gives exactly 0, the conversions alone 0.008 at 512.
    assert epsilon(10.0, 1e-5, 1, 1e-5) == 0.0
    assert 0.008 < epsilon(10.0, 1e-3, 1, 1e-5) < 0.0085


def test_conversions_differ_by_the_stated_amount_at_each_order():
    a = np.array([2.0, 10.0, 32.0])
    total = np.array([0.3, 0.3, 0.3])
    gap = [
        epsilon_from_rdp([r], [o], 1e-5, "mironov2017") - epsilon_from_rdp([r], [o], 1e-5)
        for r, o in zip(total, a, strict=True)
    ]
    np.testing.assert_allclose(gap, np.log(a / (a - 1)) + np.log(a) / (a - 1))
    np.testing.assert_allclose(gap, [1.386, 0.361, 0.144], atol=1e-3)  # as the docstring says


def test_balle2020_is_never_worse_than_mironov2017():
    for z, q, T in [(4.0, 0.01, 10_000), (1.0, 0.1, 100), (0.8, 0.5, 10), (10.0, 1e-3, 10**6)]:
        new = epsilon(z, q, T, 1e-5)
        assert 0 < new < epsilon(z, q, T, 1e-5, conversion="mironov2017")


# (e) The Accountant ------------------------------------------------------------------------------


def test_accountant_equals_epsilon_for_constant_settings():
    acc = Accountant(delta=1e-5)
    history = [acc.step(noise_multiplier=1.1, sample_rate=0.05) for _ in range(200)]
    assert acc.steps == 200
    assert history[-1] == pytest.approx(epsilon(1.1, 0.05, 200, 1e-5), rel=1e-12)
    assert history[49] == pytest.approx(epsilon(1.1, 0.05, 50, 1e-5), rel=1e-12)
    assert np.all(np.diff(history) > 0)
    bulk = Accountant(delta=1e-5)
    assert bulk.step(1.1, 0.05, steps=200) == epsilon(1.1, 0.05, 200, 1e-5)
    assert acc.epsilon(delta=1e-3) < acc.epsilon()


def test_accountant_adds_rdp_of_different_rounds():
    acc = Accountant(delta=1e-6)
    acc.step(2.0, 0.01, steps=300)
    acc.step(0.9, 0.2, steps=20)
    acc.step(2.0, 0.01, steps=300)
    total = 600 * rdp(2.0, 0.01) + 20 * rdp(0.9, 0.2)
    assert acc.epsilon() == pytest.approx(epsilon_from_rdp(total, DEFAULT_ORDERS, 1e-6))
    assert "steps=620" in repr(acc)


# (f) Argument errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        (dict(sample_rate=-0.1), ValueError, "sample_rate"),
        (dict(sample_rate=1.5), ValueError, "sample_rate"),
        (dict(sample_rate=True), TypeError, "sample_rate"),
        (dict(noise_multiplier=-1.0), ValueError, "noise_multiplier"),
        (dict(noise_multiplier=math.inf), ValueError, "noise_multiplier"),
        (dict(noise_multiplier="1"), TypeError, "noise_multiplier"),
        (dict(steps=-1), ValueError, "steps"),
        (dict(steps=10.5), TypeError, "steps"),
        (dict(delta=0.0), ValueError, "delta"),
        (dict(delta=1.0), ValueError, "delta"),
        (dict(delta=-1e-5), ValueError, "delta"),
        (dict(orders=[1.0, 2.0]), ValueError, "orders"),
        (dict(orders=[]), ValueError, "orders"),
        (dict(orders=[2.0, math.inf]), ValueError, "orders"),
        (dict(orders=[2.0, math.nan]), ValueError, "orders"),
        (dict(conversion="renyi"), ValueError, "conversion"),
    ],
)
def test_argument_errors_name_the_argument(kwargs, error, name):
    args = dict(noise_multiplier=1.0, sample_rate=0.01, steps=100, delta=1e-5) | kwargs
    with pytest.raises(error, match=name):
        epsilon(**args)


def test_accountant_argument_errors():
    with pytest.raises(ValueError, match="delta"):
        Accountant(delta=2.0)
    with pytest.raises(ValueError, match="conversion"):
        Accountant(delta=1e-5, conversion="tight")
    acc = Accountant(delta=1e-5)
    with pytest.raises(ValueError, match="sample_rate"):
        acc.step(1.0, 2.0)
    with pytest.raises(ValueError, match="steps"):
        acc.step(1.0, 0.1, steps=-3)
    assert acc.steps == 0 and acc.epsilon() == 0.0


def test_epsilon_is_fast():
    """Milliseconds, not seconds: Abadi's T = 10,000 over the default grid (2-5 ms measured)."""
    start = time.perf_counter()
    for _ in range(10):
        epsilon(4.0, 0.01, 10_000, 1e-5)
    assert (time.perf_counter() - start) / 10 < 0.1
