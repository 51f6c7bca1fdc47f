"""Compare FedAvg, FedProx, SCAFFOLD, FedAdam, FedAvgM and FedADMM on pathological non-IID MNIST.

    python benchmarks/compare_mnist.py list                       # the runs and their status
    python benchmarks/compare_mnist.py run --sweep --workers 2    # the short settings sweep
    python benchmarks/compare_mnist.py run fedprox --workers 2    # one comparison run (resumes)
    python benchmarks/compare_mnist.py run --all --workers 2      # all eight comparison runs
    python benchmarks/compare_mnist.py table                      # markdown table + figure

Setting, the same for every algorithm: MNIST split as in McMahan et al. (2017) into 100 clients of
two 300-example shards each, sorted by label (``shards:2``: most clients see two digits); the 2NN
(784-200-200-10 ReLU MLP); C = 0.1 (10 clients per round); E = 5 local epochs of minibatches
B = 10 (300 local steps per client and round); client step eta = LR; seed 0 (same data split,
same w_0, same sampled clients every round); ROUNDS = 200 rounds; the test accuracy is evaluated
after every round on the 10,000 test images (``eval_train=False``: no pass over the clients'
data; 0.02-0.1 s against 0.4-0.8 s for the round's training with 2 workers on a shared 2-core
machine, so evaluating every round was kept).

Settings of each algorithm, and why (scores: mean test accuracy over sweep rounds 21-40):

- FedAvg: none. The client step is shared by all: LR = 0.2 from {0.05, 0.1, 0.2} (scores 0.874,
  0.898, 0.910). 0.1 is the FedAvg reproduction's rate for E = 1, B = 10; 0.1 won over 0.05, so
  the grid was extended once to 0.2, which won again; larger steps were not tried.
- FedProx (Li et al. 2020): mu from the paper's candidate set {0.001, 0.01, 0.1, 1} (0.909,
  0.906, 0.889, 0.820): the pull towards w only slowed the clients down. mu = 0.001 is chosen;
  below it FedProx is FedAvg (mu = 0 is FedAvg bit for bit), so the grid was not extended.
- SCAFFOLD (Karimireddy et al. 2020): option II and global step eta_g = 1, the paper's choice in
  its experiments; not swept. Sends twice FedAvg's bytes each way (w and c down, dy and dc up).
  With LR = 0.2 it was the fastest to 90 % and then diverged at round 176 (test loss 5e22 at
  round 175, NaN next); LR_CHECK repeats SCAFFOLD and FedAvg with lr = 0.1 for 200 rounds (the
  FedAvg run continues its sweep candidate fedavg-lr0.1), a fair pair at the step that is stable.
- FedAdam (Reddi et al. 2021): beta1 = 0.9, beta2 = 0.99, tau = 1e-3 (the paper's values);
  server step eta in {0.003, 0.01, 0.03} (0.899, 0.915, 0.904): 0.01, inside the grid. The
  paper tunes eta on a log grid per task; a step moves each coordinate by about eta, so 0.1 is
  out of scale for the 2NN's weights.
- FedAvgM (Hsu et al. 2019): momentum 0.9; server step in {0.1, 0.3, 1} (0.8975, 0.8973, 0.845):
  1 is Hsu et al.'s ``w <- w - v`` (effective step 10x FedAvg's), 0.1 = 1 - momentum keeps
  FedAvg's effective step. 0.1 is chosen (a tie with 0.3); smaller steps were not tried.
- FedADMM (consensus ADMM, minifed.algorithms.admm): rho in {1e-4, 1e-3, 0.01, 0.1, 1} (0.907,
  0.906, 0.885, 0.815, 0.713); the first grid was {0.01, 0.1, 1}, extended twice downwards as
  the smallest value kept winning. The score is flat below 1e-3; 1e-4 is chosen by the rule.

The sweep: every candidate runs SWEEP_ROUNDS = 40 rounds with the comparison's seed and data;
the one with the highest mean test accuracy over rounds 21-40 (:func:`sweep_score`, which
rewards both speed and the level reached and smooths the non-IID oscillations) is CHOSEN, and its
run continues from its checkpoint to ROUNDS (so its first 40 rounds are the sweep's). The FedAvg
candidates (LR) ran first; the others use the chosen LR. tests/test_compare_mnist.py checks
CHOSEN against the recorded sweep. A 40-round window favours fast starters, and one seed cannot
separate scores that differ in the third decimal.

Histories (``History.save`` JSON) go to benchmarks/results/compare_mnist/ (the comparison runs,
named by algorithm) and its sweep/ folder (the candidates); checkpoints to the user cache
(``MINIFED_CACHE`` moves it), so an interrupted run resumes; ``table`` writes
figures/compare_mnist.png and figures/compare_mnist_table.md from the recorded histories only.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # reproduce_fedavg, beside this file
import reproduce_fedavg as rf

from minifed.algorithms import ALGORITHMS
from minifed.data import cache_dir
from minifed.federations import make_model
from minifed.simulation import DivergenceError, History, load_checkpoint, run

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "compare_mnist"
CHECKPOINTS = cache_dir() / "checkpoints" / "compare_mnist"
C, E, B, LR = 0.1, 5, 10, 0.2
ROUNDS, SWEEP_ROUNDS = 200, 40
TARGETS = (0.90, 0.95)
LABELS = {"fedavg": "FedAvg", "fedprox": "FedProx", "scaffold": "SCAFFOLD",
          "fedadam": "FedAdam", "fedavgm": "FedAvgM", "fedadmm": "FedADMM"}  # fmt: skip


@dataclass
class Candidate:
    """One algorithm with its settings; ``settings`` are the algorithm-specific arguments."""

    name: str
    algorithm: str  # a key of minifed.algorithms.ALGORITHMS
    settings: dict = field(default_factory=dict)
    lr: float = LR

    def describe(self) -> str:
        extra = [f"{k}={v}" for k, v in self.settings.items()]
        return ", ".join([f"lr={self.lr}", f"E={E}", f"B={B}", *extra])


def _grid(algorithm: str, key: str, values, fixed=None, short=None) -> list[Candidate]:
    return [Candidate(f"{algorithm}-{short or key}{v}", algorithm, {**(fixed or {}), key: v})
            for v in values]  # fmt: skip


SWEEP = {
    "fedavg": [Candidate(f"fedavg-lr{lr}", "fedavg", lr=lr) for lr in (0.05, 0.1, 0.2)],
    "fedprox": _grid("fedprox", "mu", (0.001, 0.01, 0.1, 1.0)),
    "fedadam": _grid("fedadam", "server_lr", (0.003, 0.01, 0.03), {"tau": 1e-3}, "eta"),
    "fedavgm": _grid("fedavgm", "server_lr", (0.1, 0.3, 1.0), {"momentum": 0.9}, "eta"),
    "fedadmm": _grid("fedadmm", "rho", (0.0001, 0.001, 0.01, 0.1, 1.0)),
}
SCAFFOLD_SETTINGS = {"option": "II", "server_lr": 1.0}
FIXED = {
    "scaffold": Candidate("scaffold", "scaffold", SCAFFOLD_SETTINGS),
    "scaffold-lr0.1": Candidate("scaffold-lr0.1", "scaffold", SCAFFOLD_SETTINGS, lr=0.1),
}
CHOSEN = {
    "fedavg": "fedavg-lr0.2",
    "fedprox": "fedprox-mu0.001",
    "scaffold": "scaffold",
    "fedadam": "fedadam-eta0.01",
    "fedavgm": "fedavgm-eta0.1",
    "fedadmm": "fedadmm-rho0.0001",
}
CANDIDATES = {c.name: c for c in [*FIXED.values(), *(c for g in SWEEP.values() for c in g)]}


# SCAFFOLD diverged at round 176 with LR = 0.2 (tuned on FedAvg): FedAvg and SCAFFOLD again at 0.1.
LR_CHECK = ("fedavg-lr0.1", "scaffold-lr0.1")


def comparison() -> dict[str, Candidate]:
    """The comparison runs in the order of the table: the six algorithms at LR (named by
    algorithm), then the LR_CHECK runs."""
    runs = {name: CANDIDATES[CHOSEN[name]] for name in LABELS}
    return runs | {name: CANDIDATES[name] for name in LR_CHECK}


def federation(seed: int = 0, data_dir=None):
    """MNIST over 100 clients, the FedAvg paper's 200 shards of 300 (two per client)."""
    return rf.federation(rf.Cell("2nn", "noniid", C, E, B, LR), seed, data_dir)


def algorithm(candidate: Candidate, data):
    model = make_model("2nn", data)
    cls = ALGORITHMS[candidate.algorithm]
    return cls(model, candidate.lr, epochs=E, batch_size=B, **candidate.settings)


def run_candidate(candidate: Candidate, data, rounds: int, out: Path, checkpoints=CHECKPOINTS,
                  workers: int = 1, seed: int = 0) -> History:  # fmt: skip
    """Run ``candidate`` for ``rounds`` rounds (resuming its checkpoint), save the history to
    ``out``. A checkpoint further on (the sweep asked for after the full run) already holds the
    same first rounds: they are taken from it. A run that diverges is saved up to the divergence."""
    if out.exists():
        saved = History.load(out)
        if len(saved) > rounds or "diverged_at" in saved.config:
            return saved
    checkpoint = Path(checkpoints) / f"{candidate.name}.npz"
    algo = algorithm(candidate, data)
    history = load_checkpoint(checkpoint).history if checkpoint.exists() else None
    if history is None or len(history) <= rounds:
        try:
            _, history = run(algo, data, rounds, fraction=C, seed=seed, eval_train=False,
                             workers=workers, checkpoint=checkpoint)  # fmt: skip
        except DivergenceError as err:
            history = err.history
            history.config["diverged_at"] = err.round
    elif any(history.config[k] != v for k, v in algo.config().items()):
        raise ValueError(f"checkpoint {checkpoint} belongs to other settings; delete it.")
    history.rounds = history.rounds[: rounds + 1]
    history.config.update(rounds=rounds, candidate=candidate.name, settings=candidate.settings)
    history.save(out)
    return history


def sweep_score(history: History, rounds: int = SWEEP_ROUNDS) -> float:
    """Mean test accuracy over rounds ``rounds/2 + 1 .. rounds``; a round not recorded (after a
    divergence) counts as 0."""
    acc = [r["test_accuracy"] for r in history.rounds if rounds // 2 < r["round"] <= rounds]
    return sum(a for a in acc if a is not None) / (rounds - rounds // 2)


def choose(histories: dict[str, History]) -> str:
    """The candidate whose history has the highest :func:`sweep_score`."""
    return max(histories, key=lambda name: sweep_score(histories[name]))


def load(folder: Path) -> dict[str, History]:
    return {p.stem: History.load(p) for p in sorted(Path(folder).glob("*.json"))}


def megabytes(history: History, through: int | None = None) -> float:
    """Bytes sent up plus down in rounds ``1 .. through`` (default: all), in MB (1e6 bytes)."""
    return sum(r["bytes_up"] + r["bytes_down"] for r in history.rounds
               if through is None or r["round"] <= through) / 1e6  # fmt: skip


def _reached(history: History, target: float) -> tuple[str, str]:
    """``(rounds to target, MB to target)`` as table cells."""
    t = history.rounds_to(target)
    if t is None:
        return f"not reached in {history.rounds[-1]['round']}", "-"
    return str(t), f"{megabytes(history, t):,.0f}"


def table(histories: dict[str, History]) -> str:
    """Markdown, one row per comparison run: settings, rounds and MB to 90 % / 95 %, accuracy."""
    lines = [
        "| algorithm | settings | rounds to 90% | rounds to 95% | best test acc. (round) "
        "| final | mean of last 10 | MB per round | MB to 90% | MB to 95% | wall time |",
        "|" + "---|" * 11,
    ]
    for name, candidate in comparison().items():
        h = histories.get(name)
        if h is None:
            continue
        t, acc = h.metric("test_accuracy")
        (r90, mb90), (r95, mb95) = (_reached(h, target) for target in TARGETS)
        final, last10 = f"{acc[-1]:.4f}", f"{acc[-10:].mean():.4f}"
        if "diverged_at" in h.config:
            final, last10 = f"diverged at round {h.config['diverged_at']}", "-"
        lines.append("| " + " | ".join([
            LABELS[candidate.algorithm], candidate.describe(), r90, r95,
            f"{acc.max():.4f} ({t[np.argmax(acc)]})", final, last10,
            f"{megabytes(h) / (len(h) - 1):.2f}", mb90, mb95, f"{rf.wall_minutes(h):.1f} min",
        ]) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def sweep_table(sweep: dict[str, History]) -> str:
    """Markdown, one row per recorded sweep candidate: its score and whether it was chosen."""
    lo, hi = SWEEP_ROUNDS // 2 + 1, SWEEP_ROUNDS
    lines = [f"| algorithm | candidate | settings | mean test acc., rounds {lo}-{hi} | chosen |",
             "|---|---|---|---|---|"]  # fmt: skip
    for algo, group in SWEEP.items():
        for c in group:
            if c.name in sweep:
                h = sweep[c.name]
                score = f"{sweep_score(h):.4f}"
                if "diverged_at" in h.config:
                    score += f" (diverged at round {h.config['diverged_at']})"
                chosen = "yes" if CHOSEN[algo] == c.name else ""
                lines.append(f"| {LABELS[algo]} | {c.name} | {c.describe()} | {score} | {chosen} |")
    return "\n".join(lines) + "\n"


def markdown(histories: dict[str, History], sweep: dict[str, History]) -> str:
    return (
        f"Pathological non-IID MNIST (100 clients, two label-sorted shards of 300 each), 2NN, "
        f"C = {C}, E = {E}, B = {B}, seed 0, {ROUNDS} rounds, test accuracy after every round. "
        f"Every algorithm uses the client step lr = {LR}; the last rows repeat FedAvg and "
        "SCAFFOLD with lr = 0.1, as SCAFFOLD diverged with 0.2. "
        "MB = 1e6 bytes sent up plus down, cumulative to the round the target was first "
        "reached. Written by `python benchmarks/compare_mnist.py table` from "
        "`benchmarks/results/compare_mnist/`.\n\n"
        + table(histories)
        + f"\nSettings sweep ({SWEEP_ROUNDS} rounds each, same seed and data; the chosen "
        "candidate has the highest mean test accuracy over the second half):\n\n"
        + sweep_table(sweep)
    )


def running_best(acc: np.ndarray) -> np.ndarray:
    """``max(acc[0..i])`` for every ``i``.

    >>> running_best(np.array([0.5, 0.9, 0.7, 0.95])).tolist()
    [0.5, 0.9, 0.9, 0.95]
    """
    return np.maximum.accumulate(acc)


def plot(histories: dict[str, History], path):
    """Test accuracy against rounds and against MB communicated at lr = LR, and against rounds for
    the LR_CHECK runs: each run faint, its running best bold; the targets dashed."""
    from matplotlib.figure import Figure

    from minifed.plot import X_AXES, metric_curve

    runs = {n: c for n, c in comparison().items() if n in histories}
    main = {n: c for n, c in runs.items() if n not in LR_CHECK}
    check = {n: c for n, c in runs.items() if n in LR_CHECK}
    fig = Figure(figsize=(16, 4.8), layout="constrained")
    panels = [(main, "round", f"lr = {LR}"), (main, "bytes", f"lr = {LR}"),
              (check, "round", "lr = 0.1")]  # fmt: skip
    for ax, (group, x, title) in zip(fig.subplots(1, 3), panels, strict=True):
        for name, candidate in group.items():
            h, color = histories[name], f"C{list(LABELS).index(candidate.algorithm)}"
            xs, acc = metric_curve(h, "test_accuracy", x)
            label = LABELS[candidate.algorithm]
            if "diverged_at" in h.config:
                label += f" (diverged at round {h.config['diverged_at']})"
            ax.plot(xs, acc, color=color, alpha=0.3, linewidth=0.8)
            ax.plot(xs, running_best(acc), color=color, linewidth=1.8, label=label)
        for target in TARGETS:
            ax.axhline(target, color="gray", linestyle="--", linewidth=1)
        ax.set(xlabel=X_AXES[x], ylabel="test accuracy", ylim=(0.8, 1.0), title=title)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    fig.suptitle(f"2NN on pathological non-IID MNIST, C = {C}, E = {E}, B = {B}: running best "
                 "(bold) and every round (faint)")  # fmt: skip
    fig.savefig(path, dpi=110)
    return path


def _jobs(names, every: bool, sweep: bool, rounds: int) -> list[tuple[str, Candidate, Path, int]]:
    """``(name, candidate, history path, rounds)`` of the comparison runs ``names`` (all with
    ``every``) and of the named sweep candidates (all with ``sweep``)."""
    runs = comparison()
    jobs = [(n, runs[n], RESULTS / f"{n}.json", rounds) if n in runs else
            (n, CANDIDATES[n], RESULTS / "sweep" / f"{n}.json", SWEEP_ROUNDS)
            for n in [*names, *(runs if every else ())]]  # fmt: skip
    candidates = [c for group in SWEEP.values() for c in group] if sweep else []
    return jobs + [(c.name, c, RESULTS / "sweep" / f"{c.name}.json", SWEEP_ROUNDS)
                   for c in candidates]  # fmt: skip


def _run(jobs, workers: int, data_dir) -> None:
    """Run (or resume) every job; print a summary of each."""
    data = federation(data_dir=data_dir)
    for name, candidate, out, T in jobs:
        h = run_candidate(candidate, data, T, out, workers=workers)
        _, acc = h.metric("test_accuracy")
        print(f"{name}: {len(h) - 1} rounds, best {acc.max():.4f}, score {sweep_score(h):.4f}, "
              f"to 90%: {h.rounds_to(0.9)}, to 95%: {h.rounds_to(0.95)}", flush=True)  # fmt: skip


def _list() -> None:
    done, sweep = load(RESULTS), load(RESULTS / "sweep")
    for name, c in comparison().items():
        h = done.get(name)
        status = "not run" if h is None else f"{len(h) - 1} rounds, to 95%: {h.rounds_to(0.95)}"
        print(f"{name:10} {c.name:18} {c.describe():44} {status}")
    for c in (c for group in SWEEP.values() for c in group):
        h = sweep.get(c.name)
        status = "not run" if h is None else f"score {sweep_score(h):.4f}"
        print(f"  sweep  {c.name:18} {c.describe():44} {status}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list")
    r = sub.add_parser("run", help="comparison runs by algorithm, or sweep candidates by name")
    r.add_argument("names", nargs="*")
    r.add_argument("--all", action="store_true", help="every comparison run")
    r.add_argument("--sweep", action="store_true", help="every sweep candidate")
    r.add_argument("--rounds", type=int, default=ROUNDS)
    r.add_argument("--workers", type=int, default=1)
    r.add_argument("--data-dir", default=None)
    t = sub.add_parser("table")
    t.add_argument("--out", default=str(ROOT / "figures"))
    args = parser.parse_args(argv)
    if args.command == "list":
        _list()
    elif args.command == "run":
        unknown = [n for n in args.names if n not in comparison() and n not in CANDIDATES]
        jobs = [] if unknown else _jobs(args.names, args.all, args.sweep, args.rounds)
        if not jobs:
            parser.error(f"unknown runs {unknown}; `list` shows them" if unknown else "no run")
        _run(jobs, args.workers, args.data_dir)
    else:
        histories, sweep = load(RESULTS), load(RESULTS / "sweep")
        out = Path(args.out)
        (out / "compare_mnist_table.md").write_text(markdown(histories, sweep))
        plot(histories, out / "compare_mnist.png")
        print(markdown(histories, sweep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
