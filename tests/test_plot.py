"""Plots draw what they are given on the Axes they are given."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from minifed.dataset import FederatedDataset
from minifed.plot import (
    metric_curve,
    plot_client_accuracy,
    plot_label_distribution,
    plot_label_heatmap,
    plot_metric,
    plot_round_diagram,
)
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


def test_a_log_bytes_axis_drops_round_zero_instead_of_drawing_a_false_segment():
    """Round 0 sent 0 bytes: on a log axis it cannot be drawn, and joining it to round 1 would
    draw a flat segment that reads as 'high accuracy after almost no bytes'."""
    history = fake_history("fedavg", [0.1, 0.8, 0.9])
    fig, ax = plt.subplots()
    plot_metric({"run": history}, x="bytes", ax=ax, log_x=True)
    xs, ys = ax.lines[0].get_data()
    assert np.all(xs > 0) and list(ys) == [0.8, 0.9]
    plot_metric({"run": history}, x="bytes", ax=ax)  # a linear axis keeps every point
    assert len(ax.lines[1].get_xdata()) == 3
    plt.close(fig)


def test_label_heatmap_shows_each_clients_shares():
    counts = np.array([[10, 0, 0], [1, 1, 2], [0, 5, 15]])
    fig, ax = plt.subplots()
    plot_label_heatmap(counts, ax=ax)
    shares = ax.images[0].get_array()  # (classes, K)
    np.testing.assert_allclose(shares.sum(axis=0), 1.0)
    np.testing.assert_allclose(shares[:, 2], [0, 0.25, 0.75])
    plt.close(fig)


def test_round_diagram_draws_the_sampled_clients_arrows():
    fig, ax = plt.subplots()
    plot_round_diagram(K=5, S=(0, 2), ax=ax)
    arrows = [t for t in ax.texts if getattr(t, "arrow_patch", None) is not None]
    assert len(arrows) == 4  # one down and one up per sampled client
    labels = [t.get_text() for t in ax.texts]
    assert sum(s.startswith("client ") for s in labels) == 5
    plt.close(fig)


def test_use_style_sets_one_look():
    import minifed.plot as plot

    applied = plot.use_style()
    assert all(matplotlib.rcParams[k] == v or k == "figure.figsize" for k, v in applied.items())


def test_plain_doc_reads_without_markup():
    from minifed import plain_doc
    from minifed.algorithms import FedAvg

    text = plain_doc(FedAvg.server_update)
    assert "``" not in text and "w_{t+1} = sum_{k in S_t} (n_k / n_S) w_k" in text
    assert "Parameters" not in plain_doc(FedAvg) and "Parameters" in plain_doc(FedAvg, full=True)


def test_examples_processed_count_each_sampled_client_E_times():
    rounds = [
        {"round": 0, "clients": [], "test_accuracy": 0.1},
        {"round": 1, "clients": [0, 2], "test_accuracy": 0.5},
        {"round": 2, "clients": [1], "test_accuracy": 0.7},
    ]
    n_k = np.array([10, 20, 30])
    xs, ys = metric_curve(History({"epochs": 5}, rounds), "test_accuracy", "examples", n_k)
    np.testing.assert_array_equal(xs, [0, 5 * 40, 5 * 40 + 5 * 20])
    np.testing.assert_array_equal(ys, [0.1, 0.5, 0.7])
    xs, _ = metric_curve(History({"algorithm": "fedsgd"}, rounds), "test_accuracy", "examples", n_k)
    np.testing.assert_array_equal(xs, [0, 40, 60])  # FedSGD: one pass, E = 1
    with pytest.raises(ValueError, match="n_k"):
        metric_curve(History({}, rounds), "test_accuracy", "examples")
