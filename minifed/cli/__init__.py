"""Command line: ``python -m minifed demo`` and ``python -m minifed run ...``.

Every flag is checked before any data is loaded or any round is run. Errors end with one line on
stderr, never a traceback: exit status 2 for what the user asked (bad flags, missing data,
unwritable outputs), 1 for a run that failed (divergence, a client's error, a dead worker), 130
for Ctrl-C; a run that stops early first writes its finished rounds to ``--out`` (and to
``--checkpoint``, from which the same command resumes).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from argparse import SUPPRESS

import numpy as np

from minifed._checks import check_fraction, check_int
from minifed.algorithms import ALGORITHMS
from minifed.cli.flags import (
    SETTINGS,
    UsageError,
    algorithm_kwargs,
    algorithm_settings,
    batch_size_flag,
    settings_help,
)
from minifed.cli.outputs import (
    check_output,
    keep_history,
    per_client_summary,
    save_figure,
    summary,
)
from minifed.data import DatasetNotFoundError
from minifed.federations import (
    DATASETS,
    MODELS,
    REGRESSION_DATASETS,
    SILO_DATASETS,
    load_federation,
    make_model,
)
from minifed.seeding import DATA, derived_rng
from minifed.simulation import ClientError, DivergenceError, WorkerError, clients_per_round, run

REGRESSION_MODELS = ("linreg",)  # the models that fit real-valued targets
NATURAL = ("synthetic", "heart-disease", *SILO_DATASETS)  # data sets with natural clients


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Help with every flag's default, and the epilog's lines kept as written."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minifed", description="Federated learning in readable NumPy: FedSGD and FedAvg."
    )

    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="FedSGD against FedAvg on built-in data, with a figure",
        formatter_class=_Formatter,
    )
    demo.add_argument("--out", default="minifed-demo.png", help="where to write the figure")
    demo.add_argument("--dataset", default="auto", choices=["auto", "synthetic", "fashion-mnist"],
                      help="auto: Fashion-MNIST if installed, else Synthetic(1, 1)")  # fmt: skip
    demo.add_argument("--seed", type=int, default=0, help="the one seed of both runs")
    r = sub.add_parser(
        "run",
        help="any algorithm, dataset, partition and model",
        epilog=settings_help(),
        formatter_class=_Formatter,
    )
    r.add_argument("--algorithm", choices=sorted(ALGORITHMS), default="fedavg", help="what to run")
    r.add_argument("--dataset", choices=DATASETS, default="synthetic", help="the data")
    r.add_argument("--model", default="softmax", help=f"one of {', '.join(MODELS)}")
    r.add_argument("--partition", default="iid",
                   help="iid, shards[:S], dirichlet:ALPHA, ..., or natural: the data's own "
                        f"clients ({', '.join(NATURAL)}); natural silos of "
                        f"{', '.join(SILO_DATASETS)} have their own test sets")  # fmt: skip
    r.add_argument("--clients", type=int, default=100, help="K (ignored by natural partitions)")
    r.add_argument("--fraction", type=float, default=0.1, help="C, clients per round over K")
    r.add_argument("--lr", type=float, default=0.1, help="eta")
    for name, kind in algorithm_settings().items():
        flag = "--" + name.replace("_", "-")
        text = SETTINGS[name] + " (default: the algorithm's own)"
        if kind is bool:
            r.add_argument(flag, action="store_const", const=True, default=SUPPRESS, help=text)
        else:
            kind = batch_size_flag if name == "batch_size" else kind
            r.add_argument(flag, type=kind, default=SUPPRESS, help=text)
    r.add_argument("--rounds", type=int, default=20, help="T, communication rounds")
    r.add_argument("--seed", type=int, default=0, help="the one seed of the run")
    r.add_argument("--target-accuracy", type=float, default=None, help="stop once reached")
    r.add_argument("--eval-every", type=int, default=1, help="evaluate every N rounds")
    r.add_argument("--data-dir", default=None, help="where the data set's files are")
    r.add_argument("--no-download", action="store_true", help="only use local files")
    r.add_argument("--checkpoint", default=None, help="save and resume from this .npz file")
    r.add_argument("--workers", type=int, default=1, help="worker processes (capped at m, cores)")
    r.add_argument("--out", default=None, help="write the history as JSON here")
    r.add_argument("--plot", default=None, help="write an accuracy-against-round figure here")
    return parser


def main(argv=None) -> int:
    """Run a command; errors end with one line on stderr: status 2 for what the user asked
    (bad flags, missing data), 1 for a run that failed, 130 for Ctrl-C."""
    args = build_parser().parse_args(argv)
    try:
        return {"demo": demo, "run": run_command}[args.command](args)
    except KeyboardInterrupt as error:
        return _fail(args, "interrupted", error, 130)
    except (UsageError, ValueError, TypeError, DatasetNotFoundError) as error:
        return _fail(args, "error", error, 2)
    except (DivergenceError, ClientError, WorkerError) as error:
        return _fail(args, "error", error, 1)


def _fail(args, what: str, error: BaseException, status: int) -> int:
    text = " ".join(line.strip() for line in str(error).splitlines())  # one line
    kept = getattr(error, "kept", "")
    message = "; ".join(part for part in (text.rstrip("."), kept) if part)
    print(f"minifed {args.command}: {what}{': ' if message else ''}{message}", file=sys.stderr)
    return status


def run_command(args) -> int:
    _check_run_flags(args)  # every flag before any data is loaded
    settings = algorithm_kwargs(args)
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
    workers = _cap_workers(args.workers, clients_per_round(data.K, args.fraction))
    try:
        _, history = run(
            algorithm,
            data,
            args.rounds,
            fraction=args.fraction,
            seed=args.seed,
            eval_every=args.eval_every,
            target_accuracy=args.target_accuracy,
            checkpoint=args.checkpoint,
            workers=workers,
        )
    except BaseException as error:  # keep what was computed: --out gets every finished round
        if getattr(error, "history", None) is not None:
            error.kept = keep_history(error.history, args)
        raise
    history.config["partition"] = args.partition
    if data.client_names is not None:  # natural silos: whose client_test_* metrics are whose
        history.config["client_names"] = data.client_names
    print(summary(history.rounds[-1]))
    if history.rounds[-1].get("client_test_loss") is not None:
        print(per_client_summary(history.rounds[-1], data.client_names))
    if args.out:
        print(f"history written to {history.save(args.out)}")
    if args.plot:
        metric = "test_loss" if model.task == "regression" else "test_accuracy"  # no accuracy
        path = save_figure(
            {algorithm.name: history}, args.plot, data.n_k, metric, target=args.target_accuracy
        )
        print(f"figure written to {path}")
    return 0


def _check_run_flags(args) -> None:
    check_fraction("fraction", args.fraction)
    check_int("rounds", args.rounds, minimum=0)
    check_int("eval_every", args.eval_every, minimum=1)
    check_int("seed", args.seed, minimum=0)
    check_int("workers", args.workers, minimum=1)
    if args.target_accuracy is not None and not 0 < args.target_accuracy <= 1:
        raise UsageError(f"--target-accuracy must be in (0, 1], got {args.target_accuracy}.")
    regression = args.dataset in REGRESSION_DATASETS
    if regression and args.target_accuracy is not None:
        raise UsageError(f"--target-accuracy does not apply to --dataset {args.dataset}, a "
                         "regression without an accuracy.")  # fmt: skip
    if regression != (args.model in REGRESSION_MODELS):
        kind = "real-valued targets" if regression else "class labels"
        raise UsageError(
            f"--model {args.model} does not fit --dataset {args.dataset}, which has {kind}; "
            f"use {'linreg' if regression else 'softmax, logreg, 2nn or cnn'}."
        )
    for flag in ("out", "plot", "checkpoint"):
        check_output(f"--{flag}", getattr(args, flag))


def _cap_workers(workers: int, m: int) -> int:
    """No more worker processes than clients per round or cores: the rest would idle."""
    cap = min(m, os.cpu_count() or 1)
    if workers > cap:
        why = "clients per round" if cap == m else "cores"
        print(f"note: --workers {workers} capped at {cap}, the number of {why}")
    return min(workers, cap)


def demo(args) -> int:
    """FedSGD against FedAvg: rounds and bytes to a target accuracy, and the figure."""
    from minifed.demo import demo_runs

    check_output("--out", args.out)
    check_int("seed", args.seed, minimum=0)
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
    path = save_figure(runs, args.out, data.n_k, title=title, target=target)
    print(f"\nfigure written to {path} ({time.perf_counter() - start:.0f} s)")
    return 0
