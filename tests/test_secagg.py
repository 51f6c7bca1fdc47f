"""Secure aggregation (Bonawitz et al. 2017): the protocol, its parts, and FedAvg on top of it.

The sum is exact (integers) under dropouts; a masked vector looks uniform while the same test
flags the update it hides; any t Shamir shares determine a secret and t - 1 are consistent with
every secret; both Diffie-Hellman sides agree; below the threshold the protocol refuses to
unmask; bytes match a count by hand; FedAvg with secure aggregation equals FedAvg up to the
fixed-point step.
"""

import math

import numpy as np
import pytest
from conftest import blobs_federation, load_script

from minifed.algorithms import FedAvg, SecAggFedAvg
from minifed.models import SoftmaxRegression
from minifed.privacy import dh, shamir
from minifed.privacy.cohort import SECAGG, Cohort, secure_sum
from minifed.privacy.fixedpoint import decode, encode
from minifed.privacy.secagg import (
    Settings,
    ThresholdError,
    User,
    expected_ledger,
    pair_key,
    prg,
    self_key,
)
from minifed.seeding import derived_rng
from minifed.simulation import run

# ----- helpers -----


def looks_uniform(v: np.ndarray, bits: int = 32) -> bool:
    """Chi-square on the top byte (256 bins) and Kolmogorov-Smirnov on ``v / 2^bits``, each at
    level 1e-4: the critical values are the Wilson-Hilferty approximation of the chi-square
    quantile (255 degrees of freedom) and the asymptotic KS bound ``sqrt(ln(2/alpha) / 2n)``."""
    n, k, z = len(v), 255, 3.719  # z: the standard normal's 1 - 1e-4 quantile
    counts = np.bincount((v.astype(np.uint64) >> np.uint64(bits - 8)).astype(int), minlength=256)
    chi2 = np.sum((counts - n / 256) ** 2 / (n / 256))
    chi2_crit = k * (1 - 2 / (9 * k) + z * math.sqrt(2 / (9 * k))) ** 3  # about 347.7
    u = np.sort(v.astype(np.float64) / 2.0**bits)
    ks = max(np.max(np.arange(1, n + 1) / n - u), np.max(u - np.arange(n) / n))
    return bool(chi2 < chi2_crit and ks < math.sqrt(math.log(2 / 1e-4) / (2 * n)))


def is_probable_prime(n: int, rounds: int = 8) -> bool:
    """Miller-Rabin with the first ``rounds`` primes as bases."""
    if n < 2 or n % 2 == 0:
        return n == 2
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)[:rounds]:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def pi_times_power_of_two(bits: int) -> int:
    """``floor(2^bits * pi)`` by Machin's formula ``pi = 16 atan(1/5) - 4 atan(1/239)`` in
    integers (64 guard bits)."""
    one = 1 << (bits + 64)

    def atan_inv(x: int) -> int:  # atan(1/x) * one
        total, term, k, sign = 0, one // x, 1, 1
        while term:
            total += sign * (term // k)
            term, k, sign = term // (x * x), k + 2, -sign
        return total

    return (16 * atan_inv(5) - 4 * atan_inv(239)) >> 64


def quantized_update(d: int, seed: int = 0) -> np.ndarray:
    """A realistic client input: an update ``N(0, 0.01^2)``, ``f = 16``, ``n_k = 30``."""
    delta = np.random.default_rng(seed).normal(0.0, 0.01, size=d)
    return encode(delta, 30, frac_bits=16, clip=1.0, bits=32)


def dropped_users(n: int, fraction: float, seed: int = 0) -> dict[int, str]:
    rng = np.random.default_rng(seed)
    return dict.fromkeys(rng.choice(n, round(fraction * n), replace=False).tolist(), "masked")


# ----- the protocol -----


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.3])
def test_the_server_obtains_exactly_the_sum_of_the_senders_inputs(fraction):
    n, d = 20, 500
    X = np.random.default_rng(1).integers(0, 2**32, size=(n, d), dtype=np.uint64)
    drops = dropped_users(n, fraction)
    z, _ = secure_sum(X, threshold=12, seed=2, drops=drops)
    senders = [u for u in range(n) if u not in drops]
    assert len(senders) == n - round(fraction * n)
    np.testing.assert_array_equal(z, X[senders].sum(axis=0) % 2**32)


def test_dropouts_at_every_round_and_other_moduli():
    n, d = 9, 64
    X = np.random.default_rng(3).integers(-1000, 1000, size=(n, d))
    drops = {0: "advertise", 1: "share", 2: "masked", 3: "unmask"}  # 3 sent y_3, then left
    for bits in (20, 32, 64):
        z, _ = secure_sum(X, threshold=5, seed=4, drops=drops, bits=bits)
        total = X[[3, 4, 5, 6, 7, 8]].sum(axis=0)  # int64, some negative
        expected = total.view(np.uint64) & np.uint64(2**bits - 1)  # mod 2^bits
        np.testing.assert_array_equal(z.astype(np.uint64), expected)
        assert z.dtype == Settings(5, bits).dtype


def test_a_masked_vector_is_uniform_and_the_test_flags_the_update_it_hides():
    d = 2**16
    x = quantized_update(d)  # values near 0 and near 2^32 (negative): far from uniform
    assert not looks_uniform(x)
    assert not looks_uniform(np.random.default_rng(0).integers(0, 2**31, d))  # half the range
    settings = Settings(threshold=2)
    users = [User(u, derived_rng(5, SECAGG, u), settings) for u in range(3)]
    cohort = Cohort(users)
    for u in range(3):
        assert looks_uniform(cohort.users[u].masked_input(x))


def test_double_masking_a_late_input_stays_hidden_after_its_pairwise_masks_are_removed():
    """User 2 drops (the server rebuilds s_2^SK); if y_2 then arrives late, removing its
    pairwise masks leaves x_2 + PRG(b_2): still uniform, because b_2 was never revealed. With
    b_2 as well (what a single mask would amount to) the server would read x_2 exactly."""
    d, settings = 2**16, Settings(threshold=2)
    users = [User(u, derived_rng(6, SECAGG, u), settings) for u in range(3)]
    cohort, x_2 = Cohort(users, drops={2: "masked"}), quantized_update(d)
    late = cohort.users[2].masked_input(x_2)
    s_2 = users[2].s_sk  # what the server reconstructs in Unmasking
    for v in (0, 1):  # y_2 holds -PRG(s_2v) for v < 2
        late = late + prg(pair_key(settings.group, s_2, users[v].s_pk), d, settings)
    assert looks_uniform(late)
    exposed = settings.reduce(late - prg(self_key(settings.group, users[2].b), d, settings))
    np.testing.assert_array_equal(exposed, x_2)


def test_below_the_threshold_the_protocol_refuses_to_unmask():
    X = np.ones((6, 8), dtype=np.int64)
    with pytest.raises(ThresholdError, match=r"MaskedInputCollection: only 3 users remain.*t = 4"):
        secure_sum(X, threshold=4, drops={0: "masked", 1: "masked", 2: "masked"})
    with pytest.raises(ThresholdError, match=r"Unmasking: only 3 users remain.*does not unmask"):
        secure_sum(X, threshold=4, drops={0: "unmask", 1: "unmask", 2: "unmask"})
    with pytest.raises(ThresholdError, match=r"user \d, ShareKeys: only 3 users"):  # clients too
        secure_sum(X, threshold=4, drops={0: "advertise", 1: "advertise", 2: "advertise"})
    z, _ = secure_sum(X, threshold=4, drops={0: "masked", 1: "masked"})  # exactly t: fine
    np.testing.assert_array_equal(z, np.full(8, 4))


def test_survivors_reveal_b_of_the_senders_and_s_of_the_dropped_never_both():
    settings = Settings(threshold=2)
    cohort = Cohort([User(u, derived_rng(7, SECAGG, u), settings) for u in range(4)])
    U3 = [0, 1, 3]  # user 2 dropped after sharing its keys
    answers = {v: cohort.users[v].unmask(U3) for v in (0, 1)}  # t = 2 survivors answer
    assert all(sorted(a) == [0, 1, 2, 3] for a in answers.values())  # one share per user of U2

    def rebuild(u):
        return shamir.reconstruct([(v + 1, answers[v][u]) for v in (0, 1)], settings.group.q)

    assert rebuild(2) == cohort.users[2].s_sk  # the dropout's key: its pairwise masks go
    assert [rebuild(u) for u in U3] == [cohort.users[u].b for u in U3]  # the senders' self-masks
    with pytest.raises(ValueError, match="not a subset of U2"):
        cohort.users[0].unmask([0, 1, 9])


# ----- bytes -----


def test_bytes_by_hand_for_three_users_and_one_dropout():
    """n = 3, d = 5, uint32, user 2 drops after ShareKeys. A public key and a Z_q element are 32
    bytes (256-bit group), an id 4, an encrypted pair of shares 4 + 4 + 32 + 32 + 32 (tag)."""
    X = np.arange(15).reshape(3, 5)
    _, ledger = secure_sum(X, threshold=2, drops={2: "masked"})
    assert ledger.up == {
        "advertise": 3 * 2 * 32,  # 3 users x (c_pk, s_pk)
        "share": 3 * 2 * 104,  # 3 users x 2 ciphertexts
        "masked": 2 * 5 * 4,  # 2 masked vectors of 5 uint32
        "unmask": 2 * 3 * (4 + 32),  # 2 survivors x 3 (id, share)
    }
    assert ledger.down == {
        "advertise": 3 * 3 * (4 + 2 * 32),  # the list of 3 (id, keys) to each of 3 users
        "share": 3 * 2 * 104,  # each of U2 receives 2 ciphertexts
        "masked": 0,
        "unmask": 2 * 2 * 4,  # the list U3 (2 ids) to each of the 2 survivors
    }
    assert ledger == expected_ledger(3, 3, 2, 2, 5 * 4, Settings(2))


def test_the_closed_form_ledger_matches_every_measured_one():
    n, d = 12, 16
    X = np.zeros((n, d), dtype=np.int64)
    drops = {0: "advertise", 1: "share", 2: "share", 3: "masked", 4: "unmask"}
    _, ledger = secure_sum(X, threshold=6, drops=drops, bits=16)
    assert ledger == expected_ledger(11, 9, 8, 7, d * 2, Settings(6, 16))


def test_the_round_loop_counts_the_masked_vectors_and_the_protocol_traffic():
    fed = blobs_federation()  # K = 10: fraction 0.3 gives m = 3; d = 15
    algorithm = SecAggFedAvg(SoftmaxRegression(4, 3), lr=0.1)
    _, history = run(algorithm, fed, 2, fraction=0.3, seed=1)
    for r in history.rounds[1:]:
        assert r["bytes_up"] == 3 * 15 * 4 and r["bytes_down"] == 3 * 15 * 4
        assert r["secagg_bytes_up"] == 3 * 2 * 32 + 3 * 2 * 104 + 3 * 3 * 36  # keys, shares, Unmask
        assert r["secagg_bytes_down"] == 9 * 68 + 3 * 2 * 104 + 3 * 3 * 4  # key list, relay, U3
        assert r["dropped"] == 0 and r["aborted"] == 0


# ----- the parts -----


def test_shamir_any_t_shares_reconstruct():
    q, rng = dh.TEACHING_GROUP.q, np.random.default_rng(8)
    secret, xs = dh.random_below(rng, q), [1, 2, 3, 4, 5, 6]
    ys = shamir.share(secret, xs, t=3, P=q, rng=rng)
    points = list(zip(xs, ys, strict=True))
    for i in range(6):
        for j in range(i + 1, 6):
            for k in range(j + 1, 6):
                assert shamir.reconstruct([points[i], points[j], points[k]], q) == secret
    assert shamir.reconstruct(points, q) == secret  # more than t: the same polynomial
    assert shamir.reconstruct(points[:2], q) != secret


def test_shamir_t_minus_one_shares_do_not_determine_the_secret():
    """In Z_13 with t = 3: every secret is consistent with the same two shares through exactly
    one polynomial, and the two shares are uniformly distributed whatever the secret."""
    P, xs = 13, (1, 2)
    for y1, y2 in [(0, 0), (5, 11)]:
        consistent = np.zeros(P, dtype=int)  # per candidate secret: polynomials through the shares
        for s in range(P):
            for a1 in range(P):
                for a2 in range(P):
                    f = [(s + a1 * x + a2 * x * x) % P for x in xs]
                    consistent[s] += f == [y1, y2]
        assert (consistent == 1).all()
    for secret in (0, 7):
        counts = np.zeros((P, P), dtype=int)  # the two shares over all coefficient choices
        for a1 in range(P):
            for a2 in range(P):
                y1, y2 = ((secret + a1 * x + a2 * x * x) % P for x in xs)
                counts[y1, y2] += 1
        assert (counts == 1).all()


def test_both_sides_of_diffie_hellman_agree_and_bad_keys_are_refused():
    for group in (dh.TEACHING_GROUP, dh.MODP_2048):
        rng = np.random.default_rng(9)
        (a, A), (b, B) = dh.keygen(group, rng), dh.keygen(group, rng)
        assert dh.agree(group, a, B) == dh.agree(group, b, A)
        assert len(dh.agree(group, a, B)) == group.key_bytes
    group = dh.TEACHING_GROUP
    non_square = next(a for a in range(2, 100) if dh.jacobi(a, group.p) == -1)
    for bad in (0, 1, group.p - 1, non_square, group.p):  # outside the subgroup of squares
        with pytest.raises(ValueError, match="order-q subgroup"):
            dh.agree(group, 5, bad)


def test_the_groups_are_safe_prime_groups_and_modp_is_rfc_3526():
    for group in (dh.TEACHING_GROUP, dh.MODP_2048):
        assert is_probable_prime(group.p) and is_probable_prime(group.q)
        assert pow(group.g, group.q, group.p) == 1 != group.g  # g generates the order-q subgroup
    assert dh.TEACHING_GROUP.key_bytes == 32 and dh.MODP_2048.key_bytes == 256
    small = math.prod(p for p in range(3, 2000, 2) if is_probable_prime(p))
    larger = [2**256 - c for c in range(5, 36113, 12)]  # safe primes > 7 are 11 mod 12
    larger = [p for p in larger if math.gcd(p * (p // 2), small) == 1]  # sieve p and q first
    assert not any(is_probable_prime(p) and is_probable_prime(p // 2) for p in larger)
    formula = 2**2048 - 2**1984 - 1 + 2**64 * (pi_times_power_of_two(1918) + 124476)
    assert dh.MODP_2048.p == formula


def test_share_encryption_round_trips_and_detects_tampering():
    key, header = dh.kdf(b"shared secret", b"test"), b"\x00\x00\x00\x01\x00\x00\x00\x02"
    e = dh.encrypt(key, header, b"two shares")
    assert dh.decrypt(key, header, e) == b"two shares" and len(e) == 10 + dh.TAG_BYTES
    tampered = bytes([e[0] ^ 1]) + e[1:]
    for k, h, c in [(dh.kdf(b"other", b"test"), header, e), (key, header[::-1], e),
                    (key, header, tampered)]:  # fmt: skip
        with pytest.raises(ValueError, match="authentication"):
            dh.decrypt(k, h, c)


def test_fixed_point_round_trip_and_its_error_bound():
    f, rng = 12, np.random.default_rng(10)
    delta = rng.normal(0, 0.1, size=(5, 1000))
    n_k = np.array([3, 10, 1, 7, 30])
    x = [encode(delta[i], n_k[i], f, clip=1.0, bits=32) for i in range(5)]
    mean = decode(np.sum(x, axis=0) % 2**32, bits=32) / (2.0**f * n_k.sum())
    exact = n_k @ delta / n_k.sum()
    assert np.abs(mean - exact).max() <= 2.0 ** -(f + 1)
    assert np.abs(mean - exact).max() > 2.0 ** -(f + 1) / 4  # the bound is not loose


# ----- FedAvg with secure aggregation -----


@pytest.mark.parametrize("frac_bits", [16, 8])
def test_fedavg_with_secure_aggregation_matches_fedavg_up_to_the_quantization(frac_bits):
    """One round: ``|w_secagg - w_fedavg| <= 2^-(f+1)`` (rounding) plus float32 rounding of both
    (FedAvg's weighted sum of m = 10 float32 vectors). Ten rounds: softmax regression is convex
    and the local steps small, so the round map does not expand differences and the errors at
    most add up, ``10 (2^-(f+1) + slack)``."""
    fed, model = blobs_federation(), SoftmaxRegression(4, 3)
    local = {"lr": 0.1, "epochs": 2, "batch_size": 8}
    step = 2.0 ** -(frac_bits + 1)
    for rounds in (1, 10):
        w_s, h_s = run(SecAggFedAvg(model, **local, frac_bits=frac_bits), fed, rounds,
                       fraction=1.0, seed=3)  # fmt: skip
        w_f, _ = run(FedAvg(model, **local), fed, rounds, fraction=1.0, seed=3)
        slack = 11 * np.finfo(np.float32).eps * np.abs(w_f).max()
        gap = np.abs(w_s - w_f).max()
        assert gap <= rounds * (step + slack), (rounds, gap)
        assert all(r["aborted"] == 0 for r in h_s.rounds)
    assert gap > step / 10  # the difference is the quantization's, not zero


def test_dropouts_in_the_loop_are_drawn_per_client_and_abandon_rounds_below_the_threshold():
    fed, model = blobs_federation(), SoftmaxRegression(4, 3)
    algorithm = SecAggFedAvg(model, lr=0.1, dropout=0.5)
    ws = []
    _, history = run(algorithm, fed, 12, fraction=0.3, seed=2,
                     callbacks=[lambda r, w: ws.append(w.copy())])  # fmt: skip
    rounds = history.rounds[1:]
    assert {r["aborted"] for r in rounds} == {0, 1} and max(r["dropped"] for r in rounds) >= 2
    for t, r in enumerate(rounds, start=1):  # ws[t] is w after round t
        assert r["aborted"] == int(3 - r["dropped"] < 2)  # m = 3, t_s = ceil(2/3 * 3) = 2
        if r["aborted"]:
            np.testing.assert_array_equal(ws[t], ws[t - 1])  # an abandoned round keeps w
        else:
            assert not np.array_equal(ws[t], ws[t - 1])


def test_settings_that_could_wrap_around_are_refused():
    fed = blobs_federation()  # 40 examples per client, 3 clients a round: 120
    algorithm = SecAggFedAvg(SoftmaxRegression(4, 3), lr=0.1, bits=16, frac_bits=10)
    with pytest.raises(ValueError, match="wrap around"):
        run(algorithm, fed, 1, fraction=0.3, seed=0)


def test_the_benchmark_quick_path(capsys):
    assert load_script("secagg_cost").main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "| 2^10 | 2^20 | 1.73x | 1.734x |" in out and "| 2^14 | 2^24 | 1.98x | 1.984x |" in out
    assert "SecAggFedAvg, 30 % dropout" in out
