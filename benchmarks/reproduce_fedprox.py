"""Reproduce Li et al. 2020 (FedProx) on Synthetic(alpha, beta): F(w) and accuracy with stragglers.

    python benchmarks/reproduce_fedprox.py list                                # cells and status
    python benchmarks/reproduce_fedprox.py run synthetic_1_1-90pct-fedprox_mu1  # run (or resume)
    python benchmarks/reproduce_fedprox.py run --all                           # all 27 cells
    python benchmarks/reproduce_fedprox.py table                               # markdown + figure

Setting (the paper's Section 5 and its published run scripts): Synthetic(0, 0), (0.5, 0.5) and
(1, 1) over K = 30 devices, each keeping a random 10% of its samples for testing; multinomial
logistic regression (60 features, 10 classes); m = 10 devices per round, E = 20, B = 10,
eta = 0.01, T = 200 rounds. Systems heterogeneity: 0%, 50% or 90% of the sampled devices are
stragglers that run a uniform number of epochs in [1, E). Three methods per (data, stragglers):

    FedAvg          FedProx(mu=0, drop_stragglers=True)   stragglers are dropped
    FedProx (mu=0)  FedProx(mu=0)                         stragglers' partial work is kept
    FedProx (mu=1)  FedProx(mu=1)                         ... and the proximal term is on

The same seed gives the same data, the same devices per round and the same stragglers for all
three. Every run records its history (JSON), with how many test rows of each device are right
per round (``client_test_correct``; ``config["n_test_k"]`` has the test rows per device), and
checkpoints so it can resume.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from minifed.algorithms import FedProx
from minifed.data import cache_dir, fedprox_synthetic
from minifed.dataset import FederatedDataset
from minifed.models import SoftmaxRegression
from minifed.seeding import DATA, derived_rng
from minifed.simulation import DivergenceError, History, run
from minifed.simulation.evaluate import example_metrics

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "fedprox_synthetic"
CHECKPOINTS = cache_dir() / "checkpoints" / "fedprox_synthetic"  # outside the work tree
K, m, E, B, LR, ROUNDS, TEST_FRACTION = 30, 10, 20, 10, 0.01, 200, 0.1
DATASETS = ((0.0, 0.0), (0.5, 0.5), (1.0, 1.0))  # (alpha, beta)
STRAGGLERS = (0.0, 0.5, 0.9)
# method: (label, mu, drop_stragglers)
METHODS = {
    "fedavg": ("FedAvg", 0.0, True),
    "fedprox_mu0": ("FedProx (mu=0)", 0.0, False),
    "fedprox_mu1": ("FedProx (mu=1)", 1.0, False),
}
PAPER_GAIN = 22  # points of test accuracy, FedProx over FedAvg, "highly heterogeneous settings"
TAIL = 10  # rounds averaged for the "last 10 rounds" columns


@dataclass(frozen=True)
class Cell:
    """One curve of the figure: a data set, a straggler rate and a method."""

    alpha: float
    beta: float
    stragglers: float
    method: str

    @property
    def data_id(self) -> str:
        return f"synthetic_{self.alpha:g}_{self.beta:g}"  # the authors' directory names

    @property
    def id(self) -> str:
        return f"{self.data_id}-{round(100 * self.stragglers)}pct-{self.method}"

    @property
    def data_name(self) -> str:
        return data_name(self.alpha, self.beta)

    @property
    def label(self) -> str:
        return METHODS[self.method][0]


def data_name(alpha: float, beta: float) -> str:
    return f"Synthetic({alpha:g}, {beta:g})"


CELLS = [Cell(a, b, x, method) for a, b in DATASETS for x in STRAGGLERS for method in METHODS]


def find_cell(cell_id: str) -> Cell:
    for cell in CELLS:
        if cell.id == cell_id:
            return cell
    raise ValueError(f"unknown cell {cell_id!r}; `list` shows the cells.")


def split_devices(X, y, device_ids, K: int, rng: np.random.Generator):
    """Each device's rows in a random order, its first ``floor(0.9 n_k)`` for training and the
    rest for testing (the authors' split). Returns two lists of ``(X_k, y_k)``, one per device."""
    train, test = [], []
    for k in range(K):
        rows = rng.permutation(np.flatnonzero(device_ids == k))  # (n_k,)
        cut = int((1 - TEST_FRACTION) * len(rows))
        train.append((X[rows[:cut]], y[rows[:cut]]))
        test.append((X[rows[cut:]], y[rows[cut:]]))
    return train, test


def federation(alpha: float, beta: float, seed: int = 0, K: int = K):
    """``(data, n_test_k)``: Synthetic(alpha, beta) over ``K`` devices, trained on their 90%;
    the test set is the union of their 10% (device after device, ``n_test_k`` rows each)."""
    rng = derived_rng(seed, DATA)
    X, y, device_ids = fedprox_synthetic(alpha, beta, K, rng=rng)
    train, test = split_devices(X, y, device_ids, K, rng)
    X_test = np.concatenate([X_k for X_k, _ in test])  # (n_test, 60)
    y_test = np.concatenate([y_k for _, y_k in test])  # (n_test,)
    name = f"{data_name(alpha, beta)} (K={K})"
    data = FederatedDataset.from_clients(train, X_test, y_test, name=name)
    return data, np.array([len(y_k) for _, y_k in test])


def algorithm(cell: Cell) -> FedProx:
    _, mu, drop = METHODS[cell.method]
    model = SoftmaxRegression(60, 10)
    return FedProx(model, LR, E, B, mu=mu, stragglers=cell.stragglers, drop_stragglers=drop)


def device_test_correct(model, data: FederatedDataset, n_test_k):
    """A ``run`` callback adding ``client_test_correct`` (per device, how many of its own test
    rows ``w`` gets right) to every evaluated round's record. Device ``k``'s test accuracy is
    ``client_test_correct[k] / n_test_k[k]``; their sum over ``n_test`` is ``test_accuracy``."""
    starts = np.concatenate([[0], np.cumsum(n_test_k)[:-1]])

    def record_it(record: dict, w) -> bool:
        if record.get("test_accuracy") is not None:
            _, correct = example_metrics(model, w, data.X_test, data.y_test)
            record["client_test_correct"] = np.add.reduceat(correct, starts).astype(int).tolist()
        return False

    return record_it


def compact(history: History) -> History:
    """The history without the per-device metrics on the training splits (``client_loss``,
    ``client_accuracy``: two thirds of the JSON, unused here; the checkpoint keeps them)."""
    drop = ("client_loss", "client_accuracy")
    rounds = [{k: v for k, v in r.items() if k not in drop} for r in history.rounds]
    return History(history.config, rounds, history.stopped)


def finished(history: History, rounds: int = ROUNDS) -> bool:
    return history.stopped == "diverged" or history.rounds[-1]["round"] >= rounds


def run_cell(cell: Cell, data, n_test_k, rounds=ROUNDS, results=RESULTS, checkpoints=CHECKPOINTS,
             workers=1, seed=0, budget_minutes=None) -> History:  # fmt: skip
    """Run ``cell`` for ``rounds`` rounds, evaluating F(w) and the test metrics every round;
    resume from its checkpoint; stop (resumably) after ``budget_minutes`` of wall time."""
    saved = Path(results) / f"{cell.id}.json"
    if saved.exists() and finished(History.load(saved), rounds):
        return History.load(saved)
    fedprox = algorithm(cell)
    deadline = time.perf_counter() + 60 * (budget_minutes if budget_minutes is not None else 1e9)
    try:
        _, history = run(
            fedprox, data, rounds, fraction=min(1.0, m / data.K), seed=seed, workers=workers,
            checkpoint=Path(checkpoints) / f"{cell.id}.npz", checkpoint_every=10,
            callbacks=[device_test_correct(fedprox.model, data, n_test_k),
                       lambda record, w: time.perf_counter() > deadline],
        )  # fmt: skip
    except DivergenceError as error:
        history, history.stopped = error.history, "diverged"
    history.config.update(cell=asdict(cell), cell_id=cell.id, n_test_k=n_test_k.tolist())
    compact(history).save(saved)
    return compact(history)


def wall_minutes(history: History) -> float:
    return sum(r["seconds"] + r.get("eval_seconds", 0.0) for r in history.rounds) / 60


def load_results(results=RESULTS) -> dict[str, History]:
    return {p.stem: History.load(p) for p in sorted(Path(results).glob("*.json"))}


def final(history: History, metric: str) -> float:
    return float(history.metric(metric)[1][-1])


def tail_mean(history: History, metric: str, n: int = TAIL) -> float:
    """Mean of ``metric`` over the last ``n`` evaluated rounds."""
    return float(history.metric(metric)[1][-n:].mean())


def oscillation(history: History) -> float:
    """Mean ``|F(w_t) - F(w_{t-1})|`` over the second half of the run: 0 for a flat curve."""
    F = history.metric("train_loss")[1]
    return float(np.abs(np.diff(F[len(F) // 2 :])).mean())


def device_accuracy(history: History, n: int = TAIL) -> float:
    """Unweighted mean over devices of their own test accuracy, averaged over the last ``n``
    rounds (every device counts the same, however few its samples)."""
    correct = np.array([r["client_test_correct"] for r in history.rounds[-n:]])  # (n, K)
    return float((correct / np.array(history.config["n_test_k"])).mean())


def argmin_round(history: History) -> int:
    t, F = history.metric("train_loss")
    return int(t[np.argmin(F)])


def cell_rows(histories: dict[str, History]) -> list[str]:
    """One markdown row per recorded cell: F(w) and test accuracy, final and last-10 mean."""
    rows = []
    for cell in CELLS:
        h = histories.get(cell.id)
        if h is None:
            continue
        rounds = str(h.rounds[-1]["round"]) + " (diverged)" * (h.stopped == "diverged")
        rows.append("| " + " | ".join([
            cell.data_name, f"{cell.stragglers:.0%}", cell.label, rounds,
            f"{final(h, 'train_loss'):.3f}", f"{tail_mean(h, 'train_loss'):.3f}",
            str(argmin_round(h)), f"{oscillation(h):.3f}", f"{final(h, 'test_accuracy'):.3f}",
            f"{tail_mean(h, 'test_accuracy'):.3f}", f"{device_accuracy(h):.3f}",
            f"{wall_minutes(h):.1f} min",
        ]) + " |")  # fmt: skip
    return rows


def stat(histories, a, x, method, fn) -> float | None:
    """``fn(history)`` of the cell (Synthetic(a, a), x, method); ``None`` if not recorded."""
    h = histories.get(Cell(a, a, x, method).id)
    return None if h is None else fn(h)


def diff(histories, a, x, fn, methods=("fedprox_mu1", "fedavg")) -> float | None:
    """``fn`` of the first method's run minus the second's on (Synthetic(a, a), x)."""
    values = [stat(histories, a, x, method, fn) for method in methods]
    return None if None in values else values[0] - values[1]


def gain(histories, a, x, n: int = TAIL) -> float | None:
    """FedProx (mu=1) minus FedAvg test accuracy (points, mean of the last ``n`` rounds)."""
    g = diff(histories, a, x, lambda h: tail_mean(h, "test_accuracy", n))
    return None if g is None else 100 * g


def device_gain(histories, a, x) -> float | None:
    g = diff(histories, a, x, device_accuracy)
    return None if g is None else 100 * g


def drop_gap(histories, a, x) -> float | None:
    """F(w) of FedAvg minus FedProx (mu=0), last 10 rounds: > 0 when dropping hurts."""
    return diff(histories, a, x, lambda h: tail_mean(h, "train_loss"), ("fedavg", "fedprox_mu0"))


def drop_accuracy(histories, a, x) -> float | None:
    """Test accuracy of FedProx (mu=0) minus FedAvg, points, last 10: > 0 when dropping hurts."""
    g = diff(histories, a, x, lambda h: tail_mean(h, "test_accuracy"), ("fedprox_mu0", "fedavg"))
    return None if g is None else 100 * g


def calming(histories, a, x) -> float | None:
    """Oscillation of F(w) with mu = 0 minus with mu = 1: > 0 when the proximal term calms."""
    return diff(histories, a, x, oscillation, ("fedprox_mu0", "fedprox_mu1"))


def grid(histories, fn, stragglers=STRAGGLERS) -> list[str]:
    """A markdown table: rows the straggler rates, columns the data sets, cells
    ``fn(histories, alpha, x)`` (a string, or ``None`` when a run is missing)."""
    names = [data_name(a, b) for a, b in DATASETS]
    lines = ["| stragglers | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for x in stragglers:
        cells = [fn(histories, a, x) for a, _ in DATASETS]
        lines.append(f"| {x:.0%} | " + " | ".join(c or "-" for c in cells) + " |")
    return lines


def _cell(*parts: tuple[str, float | None]) -> str | None:
    """``format(value, spec)`` of every ``(spec, value)`` joined by " / "; ``None`` if a value
    is missing."""
    if any(v is None for _, v in parts):
        return None
    return " / ".join(format(v, f) for f, v in parts)


def gain_cell(h, a, x):
    final_gain, device = ("+.1f", gain(h, a, x, 1)), ("+.1f", device_gain(h, a, x))
    return _cell(final_gain, ("+.1f", gain(h, a, x)), device)


def drop_cell(h, a, x):
    return _cell(("+.3f", drop_gap(h, a, x)), ("+.1f", drop_accuracy(h, a, x)))


def mu_cell(h, a, x):
    o = [stat(h, a, x, m, oscillation) for m in ("fedprox_mu0", "fedprox_mu1")]
    return None if None in o else f"{o[0]:.3f} -> {o[1]:.3f}"


def mean_over_data(histories, fn, x) -> float | None:
    values = [fn(histories, a, x) for a, _ in DATASETS]
    return None if None in values else float(np.mean(values))


def count(histories, fn, stragglers) -> tuple[int, int]:
    """``(how many, out of how many)`` recorded (data set, stragglers) pairs with ``fn`` > 0."""
    values = [fn(histories, a, x) for a, _ in DATASETS for x in stragglers]
    values = [v for v in values if v is not None]
    return sum(v > 0 for v in values), len(values)


def verdict(hits: int, n: int) -> str:
    return "agrees" if n and hits == n else "disagrees" if hits == 0 else "agrees in part"


HEAD = """# FedProx on Synthetic(alpha, beta): minifed against Li et al. (2020)

Written by `python benchmarks/reproduce_fedprox.py table` from the histories in
`benchmarks/results/fedprox_synthetic/`. Settings: K = 30 devices (90% of each device's samples
for training, 10% for testing), multinomial logistic regression, m = 10 devices per round,
E = 20, B = 10, eta = 0.01, 200 rounds, seed 0; a straggler runs a uniform number of epochs in
[1, 20). FedAvg drops the stragglers; FedProx keeps their partial work. F(w) is the training
loss over all devices' training data; "test acc." is the accuracy on the union of the devices'
test data (= the devices' accuracies weighted by their test sizes, the paper's metric);
"device acc." is the unweighted mean of the 30 devices' own test accuracies. "Last 10" is the
mean over rounds 191-200; "argmin" is the round of the lowest F(w); "oscillation" is the mean
|F(w_t) - F(w_t-1)| over rounds 101-200. Wall times were measured on 2 shared cores.
"""


def dominance(histories) -> str:
    """How much of the data its largest device holds (the same sizes in the three data sets)."""
    n_test_k = next(iter(histories.values())).config["n_test_k"]
    big = max(n_test_k)
    return (f"\nIn this draw one device holds {big} of the {sum(n_test_k)} test rows "
            f"({big / sum(n_test_k):.0%}; its training rows likewise), so it dominates F(w) "
            "and the test accuracy.\n")  # fmt: skip


def table(histories: dict[str, History]) -> str:
    """Markdown: every run, the gain of FedProx over FedAvg, the paper's findings measured."""
    head = ("| data | stragglers | method | rounds | F(w) final | F(w) last 10 | argmin "
            "| oscillation | test acc. final | test acc. last 10 | device acc. last 10 "
            "| wall time |")  # fmt: skip
    lines = [HEAD + (dominance(histories) if histories else ""), "## Every run", "", head]
    lines += ["|---" * 12 + "|", *cell_rows(histories), "", GAIN_TITLE, ""]
    lines += [*grid(histories, gain_cell), "", "## The paper's findings, measured", ""]
    return "\n".join(lines + findings(histories)) + "\n"


GAIN_TITLE = ("## FedProx (mu=1) minus FedAvg, points: test acc. final / test acc. last 10 / "
              "device acc. last 10")  # fmt: skip


def findings(histories) -> list[str]:
    return [*gain_finding(histories), "", *drop_finding(histories), "", *mu_finding(histories)]


def gain_finding(histories) -> list[str]:
    g = {x: mean_over_data(histories, gain, x) for x in STRAGGLERS}
    d = mean_over_data(histories, device_gain, 0.9)
    fmt = {x: "-" if v is None else f"{v:+.1f}" for x, v in {**g, "d": d}.items()}
    word = "-" if g[0.9] is None else (
        f"{'agrees' if g[0.9] > 0 else 'disagrees'} in direction, "
        f"{abs(PAPER_GAIN - g[0.9]):.1f} points {'below' if g[0.9] < PAPER_GAIN else 'above'} "
        f"the paper's {PAPER_GAIN}")  # fmt: skip
    return [
        f"1. Test accuracy, FedProx (mu=1) minus FedAvg, mean over the three data sets (last 10 "
        f"rounds): {fmt[0.0]} points with 0% stragglers, {fmt[0.5]} with 50%, {fmt[0.9]} with "
        f"90%. The paper: about +{PAPER_GAIN} points on average in highly heterogeneous "
        f"settings (the issue: 19-22). At 90%: {word}. On the unweighted device accuracy "
        f"the gain at 90% is {fmt['d']} points.",
    ]  # fmt: skip


def drop_finding(histories) -> list[str]:
    words = []
    for x in STRAGGLERS[1:]:
        F_hits, n = count(histories, drop_gap, [x])
        acc_hits, _ = count(histories, drop_accuracy, [x])
        words.append(f"with {x:.0%} stragglers dropping raises F(w) in {F_hits} of {n} data "
                     f"sets ({verdict(F_hits, n)}) and lowers the test accuracy in {acc_hits} "
                     f"of {n} ({verdict(acc_hits, n)})")  # fmt: skip
    return [
        "2. Dropping stragglers (FedAvg) against keeping their partial work (FedProx, mu=0); "
        "the paper: dropping hurts, the more so as heterogeneity and the straggler rate grow. "
        f"Measured: {'; '.join(words)}. F(w) of FedAvg minus FedProx (mu=0) / test acc. of "
        "FedProx (mu=0) minus FedAvg (points), last 10 rounds (> 0: dropping hurts):",
        "", *grid(histories, drop_cell, STRAGGLERS[1:]),
    ]  # fmt: skip


def mu_finding(histories) -> list[str]:
    calmer, n = count(histories, calming, STRAGGLERS)
    lowest = {m: [stat(histories, a, x, m, argmin_round) for a, _ in DATASETS for x in STRAGGLERS]
              for m in ("fedprox_mu0", "fedprox_mu1")}  # fmt: skip
    span = {m: "-" if None in t else f"{min(t)}-{max(t)}" for m, t in lowest.items()}
    return [
        f"3. The proximal term: mu = 1 makes F(w) oscillate less than mu = 0 in {calmer} of "
        f"{n} settings ({verdict(calmer, n)}; the paper: mu > 0 stabilises, and makes otherwise "
        f"divergent runs converge). The lowest F(w) comes at round {span['fedprox_mu0']} with "
        f"mu = 0 and {span['fedprox_mu1']} with mu = 1. Oscillation, mu = 0 -> mu = 1:",
        "", *grid(histories, mu_cell),
    ]  # fmt: skip


COLORS = {"fedavg": "tab:green", "fedprox_mu0": "tab:blue", "fedprox_mu1": "tab:red"}


def plot(histories: dict[str, History], path):
    """The paper's Figure 1 layout: rows 0/50/90% stragglers, columns the data sets, training
    loss F(w) against rounds (left block), then the test accuracy (right block)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(20, 9), layout="constrained")
    axes = fig.subplots(len(STRAGGLERS), 2 * len(DATASETS), sharex=True)
    for i, x in enumerate(STRAGGLERS):
        for j, (a, b) in enumerate(DATASETS):
            for block, metric in enumerate(("train_loss", "test_accuracy")):
                ax = axes[i, j + block * len(DATASETS)]
                _curves(ax, histories, [Cell(a, b, x, method) for method in METHODS], metric)
                ax.set_title(f"Synthetic({a:g}, {b:g}), {x:.0%} stragglers", fontsize=10)
                ax.set_ylabel("training loss F(w)" if block == 0 else "test accuracy")
                ax.set_xlabel("# rounds" if i == len(STRAGGLERS) - 1 else "")
    fig.suptitle("FedProx on Synthetic(alpha, beta), K = 30, m = 10, E = 20, B = 10, eta = 0.01, "
                 "seed 0 (0% stragglers: FedAvg and FedProx (mu=0) are the same run)")  # fmt: skip
    fig.savefig(path, dpi=90)
    return path


def _curves(ax, histories, cells, metric):
    for cell in cells:
        if cell.id in histories:
            t, v = histories[cell.id].metric(metric)
            dashed = cell.method == "fedavg"  # on top: visible where it equals FedProx (mu=0)
            ax.plot(t, v, color=COLORS[cell.method], label=cell.label, linewidth=1.1,
                    linestyle="--" if dashed else "-", zorder=3 if dashed else 2)  # fmt: skip
    ax.grid(alpha=0.3)
    ax.set_ylim(*((0, None) if metric == "train_loss" else (0.3, 0.9)))
    if ax.lines:
        ax.legend(fontsize=8)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list")
    r = sub.add_parser("run")
    r.add_argument("cells", nargs="*")
    r.add_argument("--all", action="store_true")
    r.add_argument("--rounds", type=int, default=ROUNDS)
    r.add_argument("--workers", type=int, default=1)
    r.add_argument("--budget-minutes", type=float, default=None, help="stop (resumable) after")
    t = sub.add_parser("table")
    t.add_argument("--out", default=str(ROOT / "figures"))
    args = parser.parse_args(argv)
    if args.command == "list":
        return list_cells(load_results())
    if args.command == "run":
        return run_cells([c.id for c in CELLS] if args.all else args.cells, args)
    out, histories = Path(args.out), load_results()
    (out / "fedprox_synthetic_table.md").write_text(table(histories))
    plot(histories, out / "fedprox_synthetic.png")
    print(table(histories))
    return 0


def list_cells(histories) -> int:
    for cell in CELLS:
        h = histories.get(cell.id)
        status = "not run" if h is None else f"{h.rounds[-1]['round']} rounds"
        if h is not None:
            status += f", F(w) {final(h, 'train_loss'):.3f}, acc {final(h, 'test_accuracy'):.3f}"
        print(f"{cell.id:36} {status}")
    return 0


def run_cells(ids, args) -> int:
    datasets = {}
    for cell in map(find_cell, ids):
        key = (cell.alpha, cell.beta)
        datasets[key] = datasets.get(key) or federation(*key)
        h = run_cell(cell, *datasets[key], rounds=args.rounds, workers=args.workers,
                     budget_minutes=args.budget_minutes)  # fmt: skip
        print(f"{cell.id}: {h.rounds[-1]['round']} rounds, F(w) {final(h, 'train_loss'):.4f}, "
              f"test accuracy {final(h, 'test_accuracy'):.4f}, {wall_minutes(h):.1f} min",
              flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
