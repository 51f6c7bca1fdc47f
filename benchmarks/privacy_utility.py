"""Privacy against utility for DP-FedAvg: test accuracy and membership-inference advantage against
epsilon, measured on Fashion-MNIST (or MNIST).

    python benchmarks/privacy_utility.py                    # figure and table (~1.5 min)
    python benchmarks/privacy_utility.py --quick            # a slice, few rounds (the test's path)
    python benchmarks/privacy_utility.py --dataset mnist    # MNIST from $MINIFED_DATA

Writes ``figures/privacy_utility.png`` and ``figures/privacy_utility_table.md`` and prints the
table (``--out DIR`` writes elsewhere; ``--quick`` writes nothing unless given ``--out``). The
data are never downloaded. Everything follows from one seed. Settings of the full run:

1. Accuracy against epsilon. The 60,000 training images split IID into ``K = 100`` or ``1000``
   clients (600 or 60 images each). Softmax regression (784-10, 7,850 parameters: cheap, and
   its updates are what DP-FedAvg clips) trained by :class:`~minifed.algorithms.DPFedAvg` for
   ``T = 30`` rounds with Poisson sampling at ``q = 50 / K`` (an expected cohort of 50 either
   way, so the noise on the average, ``z S / (q K)``, is the same; the larger federation has
   the smaller ``q`` and so the smaller epsilon). Each client runs 30 local steps of ``B = 20``
   (``E = 1`` epoch for K = 100, ``E = 10`` for K = 1000), ``eta = 0.1``; updates are clipped
   to ``S = 1`` (about half the update norm at ``w_0``, twice it after 10 rounds); ``z`` in
   {0.5, 1, 2, 4}, and ``z = 0`` (clipping only, no privacy) as the reference. One run with
   adaptive clipping to the median (Andrew et al. 2021, ``C_0 = S``) and runs of
   :class:`~minifed.algorithms.LocalDPFedAvg` (each client adds ``N(0, z^2 S^2)`` itself) at
   K = 1000 complete the picture. Epsilon at ``delta = 1e-5`` is the one recorded in the
   history (the RDP accountant of :mod:`minifed.privacy`); for local DP it is the guarantee of a
   client present in every round with clients.
2. Membership inference (if :mod:`minifed.privacy.membership` is there). A federation made to
   overfit: 200 training images on ``K = 50`` clients of 4, ``q = 0.5``, 100 rounds of 20
   full-batch local epochs at ``eta = 0.5`` (softmax regression), clip ``S = 2`` (about half the
   first updates' norm), ``z`` in {1, 2, 4, 8}, and without clipping nor noise (``z = 0``,
   ``S = inf``: FedAvg with uniform weights). Members are the 200 training rows, non-members as
   many test rows; the attack thresholds the loss (Yeom et al. 2018), at the best ``tau``
   (:func:`membership_advantage`, optimistic: on rows of one distribution it reaches the
   Kolmogorov-Smirnov critical value by chance, the "noise level") and at Yeom's ``tau`` = the
   mean training loss (:func:`yeom_advantage`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from minifed.algorithms import DPFedAvg, LocalDPFedAvg
from minifed.data import load_fashion_mnist, load_mnist
from minifed.dataset import FederatedDataset
from minifed.models import SoftmaxRegression
from minifed.partition import iid
from minifed.simulation import run

try:  # written by another part of the project; the benchmark runs without it
    from minifed.privacy.membership import membership_advantage, yeom_advantage
except ImportError:  # pragma: no cover
    membership_advantage = yeom_advantage = None

FIGURES = Path(__file__).resolve().parent.parent / "figures"
SEED, DELTA = 0, 1e-5
LOADERS = {"fashion-mnist": load_fashion_mnist, "mnist": load_mnist}
FULL = {
    "n_train": None,
    "n_test": None,
    "Ks": (100, 1000),
    "cohort": 50,
    "rounds": 30,
    "eval_every": 5,
    "zs": (0.0, 0.5, 1.0, 2.0, 4.0),
    "local_zs": (1.0, 4.0),
    "steps": 30,
    "B": 20,
    "lr": 0.1,
    "clip": 1.0,
    "adaptive_z": 1.0,
    "count_noise": None,  # q K / 20
    "mem": {
        "K": 50,
        "n_k": 4,
        "q": 0.5,
        "rounds": 100,
        "E": 20,
        "lr": 0.5,
        "clip": 2.0,
        "zs": (0.0, 1.0, 2.0, 4.0, 8.0),
    },
}
QUICK = {
    **FULL,
    "n_train": 4000,
    "n_test": 1000,
    "Ks": (20, 200),
    "cohort": 10,
    "rounds": 4,
    "eval_every": 2,
    "zs": (0.0, 1.0),
    "local_zs": (1.0,),
    "steps": 20,
    "B": 10,
    "count_noise": 1.0,
    "mem": {**FULL["mem"], "K": 10, "rounds": 6, "E": 5, "zs": (0.0, 2.0)},
}


def finite_or_inf(epsilon: float | None) -> float:
    """The history records an infinite epsilon (no noise) as None."""
    return np.inf if epsilon is None else epsilon


def federation(X, y, X_test, y_test, K: int) -> FederatedDataset:
    parts = iid(len(y), K, rng=np.random.default_rng([SEED, K]))
    return FederatedDataset(X, y, parts, X_test, y_test, name=f"iid-{K}")


def one_run(algorithm, data, cfg: dict, q: float) -> tuple[dict, list]:
    """Run, and return the last record and the trace ``[(epsilon_t, accuracy_t), ...]``."""
    _, history = run(
        algorithm,
        data,
        cfg["rounds"],
        fraction=q,
        seed=SEED,
        sampling="poisson",
        eval_every=cfg["eval_every"],
        eval_train=False,
        client_metrics_every=0,
        progress=False,
    )
    trace = [
        (finite_or_inf(r["epsilon"]), r["test_accuracy"])
        for r in history.rounds[1:]
        if r["test_accuracy"] is not None
    ]
    return history.rounds[-1], trace


def grid(K: int, cfg: dict, local: dict) -> list[tuple[str, float, object]]:
    """``(mechanism, z, algorithm)`` of the runs on ``K`` clients."""
    model, S = SoftmaxRegression(784, 10), cfg["clip"]
    runs = []
    for z in cfg["zs"]:
        dp = DPFedAvg(model, **local, noise_multiplier=z, clip=S, delta=DELTA)
        runs.append(("none" if z == 0 else "central", z, dp))
    if K == max(cfg["Ks"]):  # adaptive clipping (C_0 = S) and local DP on the larger federation
        z = cfg["adaptive_z"]
        dp = DPFedAvg(model, **local, noise_multiplier=z, clip=S, delta=DELTA, adaptive=True,
                      count_noise=cfg["count_noise"])  # fmt: skip
        runs.append(("central, adaptive clip", z, dp))
        for z in cfg["local_zs"]:
            ldp = LocalDPFedAvg(model, **local, noise_multiplier=z, clip=S, delta=DELTA)
            runs.append(("local", z, ldp))
    return runs


def utility_rows(X, y, X_test, y_test, cfg: dict) -> list[dict]:
    """Every run of the accuracy-against-epsilon grid, one row each."""
    rows = []
    for K in cfg["Ks"]:
        data = federation(X, y, X_test, y_test, K)
        q = cfg["cohort"] / K
        E = max(1, round(cfg["steps"] * cfg["B"] / int(data.n_k.min())))  # about `steps` steps
        local = {"lr": cfg["lr"], "epochs": E, "batch_size": cfg["B"]}
        for mechanism, z, algorithm in grid(K, cfg, local):
            start = time.perf_counter()
            last, trace = one_run(algorithm, data, cfg, q)
            local_dp = mechanism == "local"
            rows.append({
                "mechanism": mechanism, "K": K, "q": q, "z": z, "E": E, "trace": trace,
                "epsilon": finite_or_inf(last["epsilon"]), "accuracy": last["test_accuracy"],
                "final_clip": last["clip_norm"] if "adaptive" in mechanism else None,
                "epsilon_round": algorithm.epsilon_per_round() if local_dp else None,
                "seconds": time.perf_counter() - start,
            })  # fmt: skip
    return rows


def membership_rows(X, y, X_test, y_test, cfg: dict) -> list[dict]:
    """The overfitted federation under each ``z``: accuracy, epsilon, attack advantages."""
    if membership_advantage is None:
        return []
    c = cfg["mem"]
    n = c["K"] * c["n_k"]
    rows_ = np.random.default_rng([SEED, 1]).permutation(len(y))[:n]
    parts = iid(n, c["K"], rng=np.random.default_rng([SEED, 2]))
    data = FederatedDataset(X[rows_], y[rows_], parts, X_test[:n], y_test[:n], name="members")
    model, rows = SoftmaxRegression(X.shape[1], 10), []
    for z in c["zs"]:
        algorithm = DPFedAvg(
            model,
            lr=c["lr"],
            epochs=c["E"],
            noise_multiplier=z,
            clip=c["clip"] if z else None,
            delta=DELTA,
        )
        w, history = run(
            algorithm,
            data,
            c["rounds"],
            fraction=c["q"],
            seed=SEED,
            eval_every=c["rounds"],
            eval_train=False,
            progress=False,
        )
        members = model.example_losses(w, data.X, data.y)  # (n,)
        others = model.example_losses(w, data.X_test, data.y_test)  # (n,)
        rows.append(
            {
                "z": z,
                "clip": algorithm.clip or np.inf,
                "epsilon": finite_or_inf(history.rounds[-1]["epsilon"]),
                "accuracy": history.rounds[-1]["test_accuracy"],
                "train_loss": members.mean(),
                "test_loss": others.mean(),
                "advantage": membership_advantage(members, others)[0],
                "yeom": yeom_advantage(members, others),
                "noise": 1.36 * np.sqrt(2 / n),
            }
        )
    return rows


def figure(rows: list[dict], members: list[dict], path: Path, name: str) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12 if members else 6.5, 4.8), layout="constrained")
    axes = fig.subplots(1, 2 if members else 1, squeeze=False)[0]
    accuracy_panel(axes[0], rows, name)
    if members:
        membership_panel(axes[1], members)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def accuracy_panel(ax, rows: list[dict], name: str) -> None:
    """One curve per run along its rounds: colour = K, marker = z, line = mechanism."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullFormatter

    Ks, zs = sorted({r["K"] for r in rows}), sorted({r["z"] for r in rows if r["z"]})
    colors = dict(zip(Ks, ["tab:blue", "tab:orange", "tab:green", "tab:red"], strict=False))
    markers = dict(zip(zs, "osD^v<>p*", strict=False))
    lines = {
        "central": ("-", "central DP"),
        "local": (":", "local DP"),
        "central, adaptive clip": ("--", "central DP, adaptive clip"),
    }
    for r in rows:
        if r["mechanism"] == "none":
            ax.axhline(r["accuracy"], color=colors[r["K"]], lw=1, alpha=0.6)
            continue
        eps, acc = np.array(r["trace"], dtype=float).T
        ls = lines[r["mechanism"]][0]
        ax.plot(eps, acc, ls, color=colors[r["K"]], marker=markers[r["z"]], ms=4)
    handles = [Line2D([], [], color=c, label=f"K = {K}") for K, c in colors.items()]
    handles += [
        Line2D([], [], color="gray", marker=m, ls="", label=f"z = {z:g}")
        for z, m in markers.items()
    ]
    handles += [Line2D([], [], color="gray", ls=ls, label=text) for ls, text in lines.values()]
    handles.append(Line2D([], [], color="gray", lw=1, alpha=0.6, label="z = 0 (no DP)"))
    ax.legend(handles=handles, fontsize="x-small", ncol=2, loc="lower left")
    ax.set(
        xscale="log",
        ylim=(0, 0.9),
        xlabel=f"epsilon (delta = {DELTA:g}) over the rounds",
        ylabel="test accuracy",
        title=f"DP-FedAvg on {name}: accuracy against epsilon",
    )
    ax.xaxis.set_minor_formatter(NullFormatter())


def membership_panel(ax, members: list[dict]) -> None:
    """Advantage of the loss-threshold attack against epsilon, one point per ``z``."""
    from matplotlib.ticker import NullFormatter

    finite = [m["epsilon"] for m in members if np.isfinite(m["epsilon"])]
    far = 3 * max(finite) if finite else 1.0  # where "no DP" (epsilon = inf) is drawn
    eps = [m["epsilon"] if np.isfinite(m["epsilon"]) else far for m in members]
    ax.plot(eps, [m["advantage"] for m in members], "o-", label="best tau")
    ax.plot(eps, [m["yeom"] for m in members], "s-", label="Yeom's tau (mean train loss)")
    ax.axhline(members[0]["noise"], color="gray", ls=":", label="noise level (KS 95 %)")
    for m, e in zip(members, eps, strict=True):
        text = f"z = {m['z']:g}" if m["z"] else "no DP"
        ax.annotate(
            text, (e, m["advantage"]), fontsize="x-small", textcoords="offset points", xytext=(4, 4)
        )
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(
        xscale="log",
        xlabel="epsilon (no DP drawn at the right)",
        ylabel="membership advantage (TPR - FPR)",
        title="Loss-threshold membership inference",
    )
    ax.legend(fontsize="x-small")


def report(rows, members, cfg, name, quick, seconds) -> str:
    lines = [
        f"# Privacy against utility: DP-FedAvg on {name}" + (" (--quick)" if quick else ""),
        "",
        "Command: `python benchmarks/privacy_utility.py"
        + (" --quick" if quick else "")
        + f"`, {seconds:.0f} s. Softmax regression, {cfg['rounds']} rounds, Poisson "
        f"sampling with an expected cohort of {cfg['cohort']}, clip S = {cfg['clip']:g}, "
        f"delta = {DELTA:g}.",
        "",
        "| mechanism | K | q | z | E | epsilon | epsilon per round | final clip | "
        "test accuracy | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        per_round = "" if r["epsilon_round"] is None else f"{r['epsilon_round']:.3g}"
        clip = "" if r["final_clip"] is None else f"{r['final_clip']:.3g}"
        lines.append(
            f"| {r['mechanism']} | {r['K']} | {r['q']:.3g} | {r['z']:g} | {r['E']} | "
            f"{r['epsilon']:.3g} | {per_round} | {clip} | {r['accuracy']:.4f} | "
            f"{r['seconds']:.1f} |"
        )
    lines += [
        "",
        "Central epsilon: the history's, for every client over all rounds (RDP "
        "accountant, add/remove one client). Local: a client present in every round "
        "with clients; 'per round' is one round of one client's Gaussian mechanism "
        "(sensitivity 2S, no amplification by sampling).",
    ]
    if members:
        c = cfg["mem"]
        lines += [
            "",
            f"## Membership inference ({c['K'] * c['n_k']} members on K = {c['K']} "
            f"clients, q = {c['q']:g}, {c['rounds']} rounds, E = {c['E']})",
            "",
            "| z | clip S | epsilon | test accuracy | train loss | test loss | "
            "advantage (best tau) | advantage (Yeom) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for m in members:
            lines.append(
                f"| {m['z']:g} | {m['clip']:g} | {m['epsilon']:.3g} | "
                f"{m['accuracy']:.4f} | {m['train_loss']:.3f} | {m['test_loss']:.3f} | "
                f"{m['advantage']:.3f} | {m['yeom']:.3f} |"
            )
        lines += [
            "",
            f"Noise level of the best-tau advantage: {members[0]['noise']:.3f} (the "
            "two-sample Kolmogorov-Smirnov 95 % critical value for these sample sizes).",
        ]
    return "\n".join(lines) + "\n"


def load(name: str, cfg: dict):
    X, y = LOADERS[name]("train", download=False)
    X_test, y_test = LOADERS[name]("test", download=False)
    return (
        X[: cfg["n_train"]],
        y[: cfg["n_train"]],
        X_test[: cfg["n_test"]],
        y_test[: cfg["n_test"]],
    )


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a slice of the data, few rounds")
    parser.add_argument("--dataset", choices=sorted(LOADERS), default="fashion-mnist")
    parser.add_argument(
        "--out",
        default=None,
        help="folder for the table and figure (default: figures/; with --quick: write nothing)",
    )
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    out = Path(args.out) if args.out else (None if args.quick else FIGURES)
    start = time.perf_counter()
    X, y, X_test, y_test = load(args.dataset, cfg)
    rows = utility_rows(X, y, X_test, y_test, cfg)
    members = membership_rows(X, y, X_test, y_test, cfg)
    name = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST"}[args.dataset]
    text = report(rows, members, cfg, name, args.quick, time.perf_counter() - start)
    print(text)
    if out is not None:
        print(f"written: {figure(rows, members, out / 'privacy_utility.png', name)}")
        (out / "privacy_utility_table.md").write_text(text)
        print(f"written: {out / 'privacy_utility_table.md'}")
    print(f"total: {time.perf_counter() - start:.0f} s")
    return rows


if __name__ == "__main__":
    main()
    sys.exit(0)
