"""The fields' metrics: ROC AUC against hand-computed cases and the brute-force pair count,
recall at a fixed precision against every threshold, RMSE, accuracy, and bad input."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minifed.metrics import (
    UndefinedMetricError,
    accuracy,
    average_ranks,
    recall_at_precision,
    rmse,
    roc_auc,
)


def pairs_auc(y, s) -> float:
    """AUC as its definition: the share of (positive, negative) pairs ordered correctly, a tie
    counting 1/2, by looping over every pair."""
    pos = [si for yi, si in zip(y, s, strict=True) if yi == 1]
    neg = [si for yi, si in zip(y, s, strict=True) if yi == 0]
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def thresholds_recall(y, s, target) -> float:
    """Recall at precision by trying every threshold tau in the scores (flag s >= tau)."""
    y, s = np.asarray(y), np.asarray(s, dtype=float)
    best = 0.0
    for tau in np.unique(s):
        flagged = s >= tau
        tp = np.sum(y[flagged] == 1)
        if tp / flagged.sum() >= target:
            best = max(best, tp / np.sum(y == 1))
    return best


labelled_scores = st.lists(
    st.tuples(st.integers(0, 1), st.integers(-5, 5)), min_size=2, max_size=40
).filter(lambda rows: len({label for label, _ in rows}) == 2)


def test_auc_hand_computed_with_ties():
    y = [0, 0, 1, 1, 0, 1]
    s = [0.1, 0.5, 0.5, 0.9, 0.3, 0.3]
    # positives 0.5, 0.9, 0.3 against negatives 0.1, 0.5, 0.3:
    # 0.5 -> 1 + 1/2 + 1, 0.9 -> 3, 0.3 -> 1 + 0 + 1/2; 7 of the 9 pairs
    assert roc_auc(y, s) == pytest.approx(7 / 9)
    assert pairs_auc(y, s) == pytest.approx(7 / 9)


def test_auc_extremes_and_ties_everywhere():
    assert roc_auc([0, 0, 1, 1], [1, 2, 3, 4]) == 1.0
    assert roc_auc([1, 1, 0, 0], [1, 2, 3, 4]) == 0.0
    assert roc_auc([0, 1, 0, 1], [7, 7, 7, 7]) == 0.5  # every pair tied
    assert roc_auc(np.array([False, True]), np.array([0.2, 0.1], dtype=np.float32)) == 0.0


def test_average_ranks_share_the_mean_rank_of_ties():
    np.testing.assert_array_equal(average_ranks(np.array([2.0, 2.0, 2.0])), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(average_ranks(np.array([5.0, 1.0, 5.0, 0.0])), [3.5, 2, 3.5, 1])


@settings(max_examples=200, deadline=None)
@given(labelled_scores)
def test_auc_is_the_share_of_correctly_ordered_pairs(rows):
    y, s = zip(*rows, strict=True)
    assert roc_auc(y, s) == pytest.approx(pairs_auc(y, s), abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(labelled_scores)
def test_auc_is_invariant_to_increasing_transforms_and_flips_with_decreasing(rows):
    y, s = zip(*rows, strict=True)
    s = np.asarray(s, dtype=np.float64)
    auc = roc_auc(y, s)
    for f in (lambda v: 3 * v + 1, np.exp, lambda v: v**3, lambda v: 1 / (1 + np.exp(-v))):
        assert roc_auc(y, f(s)) == pytest.approx(auc, abs=1e-12)
    assert roc_auc(y, -s) == pytest.approx(1 - auc, abs=1e-12)


def test_auc_of_a_large_random_case_matches_the_pairs():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=300)
    s = np.round(rng.normal(size=300) + y, 1)  # rounding makes many ties
    assert roc_auc(y, s) == pytest.approx(pairs_auc(y.tolist(), s.tolist()), abs=1e-12)


def test_auc_bad_input_says_what_is_wrong():
    with pytest.raises(UndefinedMetricError, match="both classes"):
        roc_auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="y_true and scores"):
        roc_auc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="binary labels"):
        roc_auc([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="scores contains NaN"):
        roc_auc([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="1-D"):
        roc_auc([[0, 1]], [[0.1, 0.2]])
    with pytest.raises(ValueError, match="empty"):
        roc_auc([], [])
    with pytest.raises(TypeError, match="numbers"):
        roc_auc(["a", "b"], [0.1, 0.2])


def test_recall_at_precision_hand_computed_with_tied_scores():
    y = [1, 1, 0, 1, 0, 0, 1]
    s = [0.9, 0.8, 0.8, 0.7, 0.6, 0.6, 0.2]
    # tau:       0.9   0.8 (two rows)  0.7   0.6 (two rows)  0.2
    # precision  1/1   2/3             3/4   3/6             4/7
    # recall     1/4   2/4             3/4   3/4             4/4
    assert recall_at_precision(y, s, 1.0) == 0.25  # the tie at 0.8 is flagged together
    assert recall_at_precision(y, s, 0.75) == 0.75
    assert recall_at_precision(y, s, 0.7) == 0.75
    assert recall_at_precision(y, s, 0.5) == 1.0
    assert recall_at_precision(y, s, 0.2) == 1.0


def test_recall_at_precision_is_zero_when_no_threshold_is_precise_enough():
    assert recall_at_precision([0, 1], [0.9, 0.1], 0.6) == 0.0


@settings(max_examples=200, deadline=None)
@given(labelled_scores, st.sampled_from([0.1, 0.3, 0.5, 2 / 3, 0.75, 0.9, 1.0]))
def test_recall_at_precision_is_the_best_threshold(rows, target):
    y, s = zip(*rows, strict=True)
    assert recall_at_precision(y, s, target) == pytest.approx(thresholds_recall(y, s, target))


def test_recall_at_precision_bad_input():
    with pytest.raises(ValueError, match="precision must be in"):
        recall_at_precision([0, 1], [0.1, 0.2], 0.0)
    with pytest.raises(UndefinedMetricError, match="positive"):
        recall_at_precision([0, 0], [0.1, 0.2], 0.5)
    with pytest.raises(ValueError, match="one value per row"):
        recall_at_precision([0, 1], [0.1], 0.5)


def test_rmse_and_accuracy():
    assert rmse([0.0, 0.0, 0.0, 0.0], [1.0, -1.0, 1.0, -1.0]) == 1.0
    assert rmse(np.float32([1.5]), np.float32([1.5])) == 0.0
    assert accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    with pytest.raises(ValueError, match="y_true and y_pred"):
        rmse([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="y_pred contains NaN"):
        accuracy([1, 2], [1, np.nan])
