"""What ``minifed run`` writes and prints: output paths checked before any work, the history
kept when a run stops early, the closing summary, and the figure."""

from __future__ import annotations

import os
from pathlib import Path

from minifed.cli.flags import UsageError
from minifed.simulation import History


def keep_history(history: History, args) -> str:
    """Write the finished rounds of a run that stopped early to ``--out``; say where they are."""
    done = f"{len(history.rounds)} finished rounds"
    if args.out:
        return f"the history of its {done} is in {history.save(args.out)}"
    if args.checkpoint:
        return f"its {done} are saved in {args.checkpoint}: run the same command to resume"
    return f"its {done} were not saved (give --out or --checkpoint)"


def summary(record: dict) -> str:
    """The last round in words, numbers rounded."""

    def value(name):
        v = record.get(name)
        return "not evaluated" if v is None else f"{v:.4f}"

    parts = [f"test loss {value('test_loss')}"]
    if record.get("train_accuracy") is not None or record.get("test_accuracy") is not None:
        parts.insert(0, f"test accuracy {value('test_accuracy')}")
    return f"round {record['round']}: " + ", ".join(parts)


def per_client_summary(record: dict, names=None) -> str:
    """The last round on each client's own test set (natural silos): one line per client with
    its test accuracy (classification) and test loss, numbers rounded."""
    losses = record["client_test_loss"]
    accuracies = record.get("client_test_accuracy") or [None] * len(losses)
    names = names or [f"client {k}" for k in range(len(losses))]
    width = max(len(str(name)) for name in names)
    head = "test accuracy  " if accuracies[0] is not None else ""
    lines = [f"per client, on its own test set:\n  {'client':{width}}  {head}test loss"]
    for name, acc, loss in zip(names, accuracies, losses, strict=True):
        acc = "" if acc is None else f"{acc:>13.4f}  "
        lines.append(f"  {name:{width}}  {acc}{loss:>9.4f}")
    return "\n".join(lines)


def check_output(flag: str, path) -> None:
    """Refuse, before any work, an output path that cannot be written."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a file name inside it.")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: {parent} is a file, not a folder.")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{flag} {path}: {parent} is not writable.")


def save_figure(runs: dict[str, History], path, n_k, metric="test_accuracy", title="",
                target=None):  # fmt: skip
    """``metric`` against rounds and against the clients' computation (examples processed;
    ``n_k`` the clients' sizes), side by side, written to ``path``; ``target`` draws the target.

    FedSGD and FedAvg send the same bytes a round; FedAvg's clients compute ``E`` epochs of
    minibatch steps where FedSGD's compute one gradient: the second panel shows that trade.
    """
    from matplotlib.figure import Figure

    from minifed.plot import plot_metric

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_round, ax_work = fig.subplots(1, 2)
    plot_metric(runs, metric, x="round", ax=ax_round)
    plot_metric(runs, metric, x="examples", ax=ax_work, n_k=n_k, log_x=True)
    ax_round.set_title("per communication round")
    ax_work.set_title("per unit of local computation")
    if target is not None:
        for ax in (ax_round, ax_work):
            ax.axhline(target, color="grey", linestyle="--", linewidth=1, label="target")
            ax.legend()
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
