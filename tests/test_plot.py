"""Plots draw what they are given on the Axes they are given."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from minifed.dataset import FederatedDataset
from minifed.plot import metric_curve, plot_client_accuracy, plot_label_distribution, plot_metric
from minifed.simulation import History


def fake_history(name, accuracies, bytes_per_round=1000):
    rounds = [
        {
            "round": t,
            "test_accuracy": a,
            "bytes_up": bytes_per_round * (t > 0),
            "bytes_down": bytes_per_round * (t > 0),
            "seconds": 0.5,
            "client_accuracy": [a, a / 2],
        }
        for t, a in enumerate(accuracies)
    ]
    return History({"algorithm": name}, rounds)


def test_metric_against_rounds_bytes_and_seconds():
    h = fake_history("fedsgd", [0.1, 0.5, 0.7])
    np.testing.assert_array_equal(metric_curve(h, "test_accuracy", "round")[0], [0, 1, 2])
    np.testing.assert_allclose(metric_curve(h, "test_accuracy", "bytes")[0], [0, 0.002, 0.004])
    np.testing.assert_allclose(metric_curve(h, "test_accuracy", "seconds")[0], [0.5, 1.0, 1.5])
    with pytest.raises(ValueError, match="x must be"):
        metric_curve(h, "test_accuracy", "minutes")


def test_plot_metric_draws_one_line_per_run_on_the_given_axes():
    fig, ax = plt.subplots()
    runs = {"a": fake_history("fedsgd", [0.1, 0.2]), "b": fake_history("fedavg", [0.1, 0.6, 0.9])}
    assert plot_metric(runs, x="bytes", ax=ax) is ax
    assert [line.get_label() for line in ax.get_lines()] == ["a", "b"]
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [0.1, 0.6, 0.9])
    assert "MB" in ax.get_xlabel() and ax.get_ylabel() == "test accuracy"
    plt.close(fig)


def test_label_distribution_bars_sum_to_client_sizes():
    y = np.array([0, 0, 1, 2, 2, 2, 1, 0])
    data = FederatedDataset(np.zeros((8, 1)), y, [np.arange(3), np.arange(3, 8)])
    fig, ax = plt.subplots()
    plot_label_distribution(data, ax=ax)
    heights = np.zeros(2)
    for patch in ax.patches:
        heights[round(patch.get_x() + patch.get_width() / 2)] += patch.get_height()
    np.testing.assert_array_equal(heights, data.n_k)
    plt.close(fig)


def test_client_accuracy_histogram_counts_clients():
    fig, ax = plt.subplots()
    plot_client_accuracy(fake_history("fedavg", [0.2, 0.8]), ax=ax)
    assert sum(p.get_height() for p in ax.patches) == 2
    plt.close(fig)
