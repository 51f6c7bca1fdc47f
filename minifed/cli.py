"""Command line: ``python -m minifed demo`` and ``python -m minifed run ...``.

Bad flags and missing data end with exit status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path

import numpy as np

from minifed._checks import check_fraction, check_int
from minifed.algorithms import ALGORITHMS
from minifed.data import DatasetNotFoundError
from minifed.federations import DATASETS, MODELS, load_federation, make_model
from minifed.simulation import DivergenceError, History, run
from minifed.seeding import DATA, derived_rng


class UsageError(Exception):
    """A problem with what the user asked for: reported in one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minifed", description="Federated learning in readable NumPy: FedSGD and FedAvg."
    )

    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="FedSGD against FedAvg on built-in data, with a figure")
    demo.add_argument("--out", default="minifed-demo.png", help="where to write the figure")
    demo.add_argument("--dataset", default="auto", choices=["auto", "synthetic", "fashion-mnist"])
    demo.add_argument("--seed", type=int, default=0)
    r = sub.add_parser(
        "run",
        help="any algorithm, dataset, partition and model",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("--algorithm", choices=sorted(ALGORITHMS), default="fedavg")
    r.add_argument("--dataset", choices=DATASETS, default="synthetic")
    r.add_argument("--model", default="softmax", help=f"one of {', '.join(MODELS)}")
    r.add_argument("--partition", default="iid", help="iid, shards[:S], dirichlet:ALPHA, ...")
    r.add_argument("--clients", type=int, default=100, help="K (ignored by natural partitions)")
    r.add_argument("--fraction", type=float, default=0.1, help="C, clients per round over K")
    r.add_argument("--lr", type=float, default=0.1, help="eta")
    for name, kind in algorithm_settings().items():
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            r.add_argument(
                flag, action="store_const", const=True, default=None, help=SETTINGS[name]
            )
        else:
            kind = _batch_size if name == "batch_size" else kind
            r.add_argument(flag, type=kind, default=None, help=SETTINGS[name])
    r.add_argument("--rounds", type=int, default=20)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--target-accuracy", type=float, default=None)
    r.add_argument("--eval-every", type=int, default=1)
    r.add_argument("--data-dir", default=None)
    r.add_argument("--no-download", action="store_true", help="only use local files")
    r.add_argument("--checkpoint", default=None, help="save and resume from this .npz file")
    r.add_argument("--workers", type=int, default=1, help="worker processes for the clients")
    r.add_argument("--out", default=None, help="write the history as JSON here")
    r.add_argument("--plot", default=None, help="write an accuracy-against-round figure here")
    return parser


SETTINGS = {  # an algorithm's constructor argument -> its flag's help
    "epochs": "E, local epochs",
    "batch_size": "B, local minibatch size; 'inf' = full batch",
    "mu": "FedProx: weight of the proximal term (mu/2) ||w_k - w||^2",
    "stragglers": "FedProx: fraction of sampled clients that run fewer local epochs",
    "drop_stragglers": "FedProx: drop the stragglers' updates, as FedAvg does in the paper",
    "server_lr": "server step size eta_g (SCAFFOLD, FedAvgM, FedAdagrad, FedAdam, FedYogi)",
    "option": "SCAFFOLD: control-variate update, I or II",
    "weighting": "SCAFFOLD: n_k (minifed's objective) or uniform (the paper's)",
    "momentum": "FedAvgM: server momentum beta",
    "beta1": "FedAdagrad/FedAdam/FedYogi: first-moment decay",
    "beta2": "FedAdam/FedYogi: second-moment decay",
    "tau": "FedAdagrad/FedAdam/FedYogi: adaptivity tau",
    "rho": "FedADMM: penalty rho of the augmented Lagrangian",
}


def _parameters(cls) -> dict[str, inspect.Parameter]:
    """The settings an algorithm's constructor takes, besides the model and ``lr``."""
    params = inspect.signature(cls).parameters
    return {k: v for k, v in params.items() if k not in ("model", "lr")}


def algorithm_settings() -> dict[str, type]:
    """Every setting of a registered algorithm and its flag's type (that of its default)."""
    found = {}
    for cls in ALGORITHMS.values():
        for name, param in _parameters(cls).items():
            default = param.default
            found.setdefault(name, float if default in (None, param.empty) else type(default))
    unknown = set(found) - set(SETTINGS)
    if unknown:  # a new algorithm's setting needs a help text here
        raise RuntimeError(f"settings without a help text in minifed.cli.SETTINGS: {unknown}")
    return found


def _settings_help() -> str:
    lines = ["settings of each algorithm (defaults are the algorithm's own):"]
    for name, cls in sorted(ALGORITHMS.items()):
        params = _parameters(cls).values()
        text = [p.name if p.default is p.empty else f"{p.name}={p.default}" for p in params]
        lines.append(f"  {name:11} lr, {', '.join(text)}" if text else f"  {name:11} lr")
    return "\n".join(lines)


def _algorithm_kwargs(args) -> dict:
    """The settings given on the command line; a flag the algorithm does not take is an error."""
    takes = _parameters(ALGORITHMS[args.algorithm])
    kwargs = {"lr": args.lr}
    for name in algorithm_settings():
        value = getattr(args, name)
        if value is None:
            continue
        if name not in takes:
            flag = "--" + name.replace("_", "-")
            raise UsageError(
                f"{flag} does not apply to {args.algorithm}, whose settings are "
                f"{', '.join(['lr', *takes])}; see 'minifed run --help'."
            )
        kwargs[name] = value
    missing = [k for k, p in takes.items() if p.default is p.empty and k not in kwargs]
    if missing:
        flags = ", ".join("--" + k.replace("_", "-") for k in missing)
        raise UsageError(f"{args.algorithm} needs {flags}.")
    return kwargs


def _batch_size(text: str) -> int | None:
    if text.lower() in ("inf", "none", "full"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number or 'inf', got {text!r}") from None


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"demo": demo, "run": run_command}[args.command](args)
    except (UsageError, ValueError, TypeError, DatasetNotFoundError, DivergenceError) as error:
        message = " ".join(line.strip() for line in str(error).splitlines())  # one line
        print(f"minifed {args.command}: error: {message}", file=sys.stderr)
        return 2


def run_command(args) -> int:
    check_fraction("fraction", args.fraction)  # cheap checks before any data is loaded
    check_int("rounds", args.rounds, minimum=0)
    check_int("eval_every", args.eval_every, minimum=1)
    settings = _algorithm_kwargs(args)
    data = load_federation(
        args.dataset,
        args.partition,
        args.clients,
        rng=derived_rng(args.seed, DATA),
        data_dir=args.data_dir,
        download=not args.no_download,
    )
    model = make_model(args.model, data)
    algorithm = ALGORITHMS[args.algorithm](model, **settings)
    print(f"{data}\n{algorithm}")
    _, history = run(
        algorithm,
        data,
        args.rounds,
        fraction=args.fraction,
        seed=args.seed,
        eval_every=args.eval_every,
        target_accuracy=args.target_accuracy,
        checkpoint=args.checkpoint,
        workers=args.workers,
    )
    history.config["partition"] = args.partition
    last = history.rounds[-1]
    print(
        f"round {last['round']}: test accuracy {last['test_accuracy']}, "
        f"test loss {last['test_loss']:.4f}"
    )
    if args.out:
        print(f"history written to {history.save(args.out)}")
    if args.plot:
        print(f"figure written to {save_figure({algorithm.name: history}, args.plot)}")
    return 0


def save_figure(runs: dict[str, History], path, metric="test_accuracy", title="") -> Path:
    """Accuracy against rounds and against bytes, side by side, written to ``path``."""
    from matplotlib.figure import Figure

    from minifed.plot import plot_metric

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_round, ax_bytes = fig.subplots(1, 2)
    plot_metric(runs, metric, x="round", ax=ax_round)
    plot_metric(runs, metric, x="bytes", ax=ax_bytes)
    ax_round.set_title("per communication round")
    ax_bytes.set_title("per megabyte communicated")
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def demo(args) -> int:
    """FedSGD against FedAvg: rounds and bytes to a target accuracy, and the figure."""
    from minifed.demo import demo_runs

    start = time.perf_counter()
    runs, target, data = demo_runs(args.dataset, args.seed)
    print(f"{data}: FedSGD against FedAvg, target test accuracy {target:.0%}\n")
    print(f"{'run':34} {'rounds to target':>17} {'MB to target':>13} {'final accuracy':>15}")
    for label, history in runs.items():
        t = history.rounds_to(target)
        mb = np.nan if t is None else history.cumulative("bytes_up")[t] / 1e6
        mb += 0 if t is None else history.cumulative("bytes_down")[t] / 1e6
        final = history.metric("test_accuracy")[1][-1]
        print(f"{label:34} {t if t is not None else 'not reached':>17} {mb:>13.1f} {final:>15.3f}")
    C = next(iter(runs.values())).config["fraction"]
    title = f"FedSGD against FedAvg: {data.name}, C = {C}"
    path = save_figure(runs, args.out, title=title)
    print(f"\nfigure written to {path} ({time.perf_counter() - start:.0f} s)")
    return 0
