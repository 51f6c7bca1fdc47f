"""Attacks that show the leak: what a client's gradient or update reveals, measured on MNIST.

    python benchmarks/privacy_attacks.py            # the full tables and figure (~2 min)
    python benchmarks/privacy_attacks.py --quick    # small sizes, few trials (the test's path)

MNIST comes from ``$MINIFED_DATA`` (see the README's Data section). A run prints the tables and
writes ``figures/privacy_attacks_table.md`` and ``figures/privacy_reconstruction.png`` (original
digits beside their reconstructions); ``--out DIR`` writes them elsewhere (``--quick`` writes
nothing unless given ``--out``). Settings, all from one seed:

1. Analytic reconstruction (:func:`minifed.privacy.reconstruct_input`) from a client holding
   ``n_k`` random training digits, against the 2NN (784-200-200-10 ReLU) at its initial ``w_0``,
   in float64. The client shares FedSGD's gradient on its ``n_k`` rows, or FedAvg's update
   ``(w_0 - w_k) / eta`` (``eta = 0.1``) after E = 1 or 5 local epochs of single-row steps
   (B = 1), or after E = 5 full-batch steps (B = n_k; E = 1 would be FedSGD's gradient). The
   attack returns one image; its quality is the PSNR / MSE against the closest of the client's
   rows (pixels clipped to [0, 1], the attacker knows the range). "Mean digit" is what an
   attacker gets without the update: the training set's mean image against the closest row.
   Labels: the share of the batch's distinct labels that :func:`infer_labels` finds (it never
   names a label that is absent).
2. Deep leakage from gradients (:func:`minifed.privacy.dlg`, 1000 Adam steps, lr 0.1) on
   FedSGD's gradient of ``B`` test digits: softmax regression at ``w ~ N(0, 0.01^2)`` with the
   labels learned (Zhu et al. 2019) or given (as :func:`infer_label` gives them for B = 1,
   Zhao et al. 2020; an assumption for B > 1), and a one-hidden-layer MLP 784-32-10 at its
   initialization, tanh or ReLU, labels given. The reconstructed rows are matched one-to-one to
   the true rows (greedy by MSE); a trial's quality is the mean over rows.
3. Membership inference by the loss threshold (:mod:`minifed.privacy.membership`): FedAvg (E = 5,
   B = 10, eta = 0.1, every client every round, 30 rounds) trains an MLP 784-200-10 on K = 10
   clients of ``n_k`` training digits; members are those rows, non-members as many test digits.
   The control row attacks two halves of unseen test digits (both non-members) with the last
   model: its advantage is chance. "Noise level" is the two-sample Kolmogorov-Smirnov 95 %
   critical value for each row's sample sizes, what the best-tau advantage reaches by chance.

Every cell of tables 1 and 2 is the median over trials (PSNR above 100 dB means exact up to
float64 rounding, about 300 dB).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from minifed.algorithms import FedAvg, FedSGD
from minifed.data import load_mnist
from minifed.dataset import FederatedDataset
from minifed.models import MLP, SoftmaxRegression
from minifed.privacy import (
    dlg,
    infer_label,
    infer_labels,
    membership_advantage,
    mse,
    psnr,
    reconstruct_input,
    yeom_advantage,
)
from minifed.simulation import run

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "figures"
SEED, ETA = 0, 0.1
KS_95 = 1.358  # two-sample Kolmogorov-Smirnov: P(sup |F_n - G_m| > KS_95 sqrt((n+m)/nm)) = 5 %
FULL = {"batches": (1, 2, 4, 8, 16, 32), "trials": 10, "dlg_batches": (1, 2, 4, 8),
        "dlg_trials": 4, "dlg_steps": 1000, "members": (10, 100, 500), "rounds": 30,
        "figure_digits": 6}  # fmt: skip
QUICK = {"batches": (1, 4), "trials": 2, "dlg_batches": (1, 2), "dlg_trials": 1,
         "dlg_steps": 200, "members": (10,), "rounds": 3, "figure_digits": 2}  # fmt: skip
# column -> (E, local B or None for the whole client), None = FedSGD's gradient
SHARES = {"FedSGD gradient": None, "FedAvg E=1, B=1": (1, 1), "FedAvg E=5, B=1": (5, 1),
          "FedAvg E=5, B=n_k": (5, None)}  # fmt: skip


def quality(x_rec: np.ndarray, X_true: np.ndarray) -> tuple[float, float]:
    """``(PSNR, MSE)`` of one reconstructed row against the closest row of ``X_true``."""
    x = np.clip(x_rec, 0, 1)
    errors = [mse(x, row) for row in X_true]
    j = int(np.argmin(errors))
    return psnr(x, X_true[j]), errors[j]


def matched_quality(X_rec: np.ndarray, X_true: np.ndarray) -> tuple[float, float]:
    """Mean ``(PSNR, MSE)`` over rows after a greedy one-to-one matching by MSE."""
    X_rec = np.clip(X_rec, 0, 1)
    M = ((X_rec[:, None, :] - X_true[None]) ** 2).mean(axis=2)  # (B, B) pairwise MSE
    pairs = []
    for _ in range(len(X_true)):
        i, j = np.unravel_index(np.argmin(M), M.shape)
        pairs.append((psnr(X_rec[i], X_true[j]), M[i, j]))
        M[i, :], M[:, j] = np.inf, np.inf
    return tuple(float(v) for v in np.mean(pairs, axis=0))


def shared_update(model, w, X_k, y_k, share, rng) -> np.ndarray:
    """What the client sends, as a gradient: ``g_k`` or ``(w - w_k) / eta``."""
    if share is None:
        return FedSGD(model, ETA).client_update(w, X_k, y_k)
    E, B = share
    return (w - FedAvg(model, ETA, E, B).local_sgd(w, X_k, y_k, rng)) / ETA


def analytic_table(X, y, cfg, rng) -> list[dict]:
    """Table 1: one row per client size ``n_k``, one column per kind of shared update."""
    model = MLP([784, 200, 200, 10])
    w = model.init(rng, np.float64)
    mean_digit, rows = X.mean(axis=0, dtype=np.float64), []
    for n_k in cfg["batches"]:
        cells = {name: [] for name in [*SHARES, "Mean digit"]}
        found = []
        for _ in range(cfg["trials"]):
            idx = rng.choice(len(X), n_k, replace=False)
            X_k, y_k = X[idx].astype(np.float64), y[idx]
            for name, share in SHARES.items():
                g = shared_update(model, w, X_k, y_k, share, rng)
                cells[name].append(quality(reconstruct_input(model, g), X_k))
                if share is None:
                    found.append(len(infer_labels(model, g)) / len(np.unique(y_k)))
            cells["Mean digit"].append(quality(mean_digit, X_k))
        rows.append({"n_k": n_k, **_medians(cells), "labels": float(np.mean(found))})
    return rows


def _medians(cells: dict) -> dict:
    return {name: tuple(np.median(np.array(v), axis=0)) for name, v in cells.items()}


def dlg_models(rng) -> dict:
    """Table 2's columns: ``name -> (model, w, labels given)``."""
    soft = SoftmaxRegression(784, 10)
    w_soft = rng.normal(0, 0.01, size=soft.num_params)
    tanh, relu = MLP([784, 32, 10], "tanh"), MLP([784, 32, 10], "relu")
    return {
        "softmax reg., labels learned": (soft, w_soft, False),
        "softmax reg., labels given": (soft, w_soft, True),
        "MLP tanh, labels given": (tanh, tanh.init(rng, np.float64), True),
        "MLP ReLU, labels given": (relu, relu.init(rng, np.float64), True),
    }


def dlg_table(X, y, cfg, rng) -> list[dict]:
    """Table 2: one row per batch size, one column per model; cells ``(PSNR, MSE)``."""
    models, rows = dlg_models(rng), []
    for B in cfg["dlg_batches"]:
        cells = {name: [] for name in models}
        for _ in range(cfg["dlg_trials"]):
            idx = rng.choice(len(X), B, replace=False)
            X_B, y_B = X[idx].astype(np.float64), y[idx]
            for name, (model, w, given) in models.items():
                g = model.grad(w, X_B, y_B)
                result = dlg(model, w, g, B, rng, steps=cfg["dlg_steps"],
                             labels=y_B if given else None)  # fmt: skip
                cells[name].append(matched_quality(result.X, X_B))
        rows.append({"B": B, **_medians(cells)})
    return rows


def membership_table(X, y, X_test, y_test, cfg, rng) -> list[dict]:
    """Table 3: one row per client size ``n_k``, then the control: two halves of unseen test
    rows, attacked as if one were the members (with the last model)."""
    model, K, rows = MLP([784, 200, 10]), 10, []
    for n_k in cfg["members"]:
        idx = rng.choice(len(X), K * n_k, replace=False)
        out = rng.choice(len(X_test), K * n_k, replace=False)
        data = FederatedDataset(X[idx], y[idx], np.split(np.arange(K * n_k), K), X_test[out],
                                y_test[out], name=f"mnist-{n_k}")  # fmt: skip
        w, _ = run(FedAvg(model, ETA, 5, 10), data, cfg["rounds"], fraction=1.0, seed=SEED,
                   eval_train=False, progress=False)  # fmt: skip
        rows.append(_attack_row(f"n_k = {n_k}", model, w, data.X, data.y, data.X_test,
                                data.y_test))  # fmt: skip
    half = len(out) // 2
    rest = rng.permutation(np.setdiff1d(np.arange(len(X_test)), out))[: 2 * half]  # shuffled:
    # MNIST's test set is ordered (its first half is the harder one)
    a, b = rest[:half], rest[half:]
    name = f"control: 2 x {half} held-out rows, model of n_k = {n_k}"
    rows.append(_attack_row(name, model, w, X_test[a], y_test[a], X_test[b], y_test[b]))
    return rows


def _attack_row(name, model, w, X_in, y_in, X_out, y_out) -> dict:
    member, other = model.example_losses(w, X_in, y_in), model.example_losses(w, X_out, y_out)
    advantage, tau = membership_advantage(member, other)
    n, m = len(member), len(other)
    return {"setting": name, "noise": KS_95 * np.sqrt((n + m) / (n * m)),
            "acc_in": model.accuracy(w, X_in, y_in),
            "acc_out": model.accuracy(w, X_out, y_out), "loss_in": member.mean(),
            "loss_out": other.mean(), "advantage": advantage, "tau": tau,
            "yeom": yeom_advantage(member, other)}  # fmt: skip


def _cell(value: tuple) -> str:
    return f"{value[0]:.1f} dB / {value[1]:.1e}"


def _markdown(header: list[str], lines: list[list[str]]) -> str:
    rows = [header, ["---"] * len(header), *lines]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def report(analytic, leak, members, quick: bool, seconds: float) -> str:
    """The Markdown of a run: three tables and their reading."""
    command = "python benchmarks/privacy_attacks.py" + (" --quick" if quick else "")
    t1 = _markdown(["n_k", *SHARES, "Mean digit", "labels found"],
                   [[str(r["n_k"]), *(_cell(r[c]) for c in [*SHARES, "Mean digit"]),
                     f"{r['labels']:.0%}"] for r in analytic])  # fmt: skip
    names = [k for k in leak[0] if k != "B"]
    t2 = _markdown(["B", *names], [[str(r["B"]), *(_cell(r[n]) for n in names)] for r in leak])
    t3 = _markdown(["members", "acc. in", "acc. out", "loss in", "loss out",
                    "advantage (best tau)", "tau", "Yeom (tau = mean loss in)", "noise level"],
                   [[r["setting"], f"{r['acc_in']:.3f}", f"{r['acc_out']:.3f}",
                     f"{r['loss_in']:.3f}", f"{r['loss_out']:.3f}", f"{r['advantage']:.3f}",
                     f"{r['tau']:.3g}", f"{r['yeom']:.3f}", f"{r['noise']:.3f}"]
                    for r in members])  # fmt: skip
    return "\n\n".join([
        "# Attacks that show the leak",
        f"Written by `{command}` in {seconds:.0f} s; the settings are in the script's docstring. "
        "Cells of tables 1 and 2: median PSNR / MSE over trials (PSNR > 100 dB: exact up to "
        "float64 rounding).",
        "## 1. Analytic reconstruction through the first layer of the 2NN",
        t1, "## 2. Deep leakage from gradients (FedSGD gradient of B digits)", t2,
        "## 3. Membership inference by loss threshold, FedAvg MLP 784-200-10, K = 10", t3,
        "In: the clients' rows (members); out: as many test rows. Noise level: the 95 % "
        "critical value of the two-sample Kolmogorov-Smirnov statistic, which the best-tau "
        "advantage reaches by chance on rows of one distribution.",
    ]) + "\n"  # fmt: skip


def figure(X, y, path: Path, rng, cfg: dict) -> Path:
    """Originals beside their reconstructions: analytic from one digit's gradient and from a
    batch of 8 holding it; DLG on softmax regression and on the tanh MLP, with the label read
    off the gradient by :func:`infer_label`. A DLG run can end in a local minimum (its matching
    loss stays high, which the attacker sees, and another start usually succeeds): a noise
    image, left in the figure as the attack produced it."""
    from matplotlib.figure import Figure

    mlp, soft = MLP([784, 200, 200, 10]), SoftmaxRegression(784, 10)
    tanh = MLP([784, 32, 10], "tanh")
    w_mlp, w_tanh = mlp.init(rng, np.float64), tanh.init(rng, np.float64)
    w_soft = rng.normal(0, 0.01, size=soft.num_params)
    count, steps = cfg["figure_digits"], cfg["dlg_steps"]
    idx = rng.choice(len(X), 8 * count, replace=False).reshape(count, 8)  # row 0 of each: shown
    images = {"original": [], "analytic, 1 digit": [], "analytic, batch of 8": [],
              "DLG softmax reg.": [], "DLG MLP tanh": []}  # fmt: skip
    for batch in idx:
        X_8, x, label = X[batch].astype(np.float64), X[batch[:1]].astype(np.float64), y[batch[:1]]
        images["original"].append(x[0])
        images["analytic, 1 digit"].append(reconstruct_input(mlp, mlp.grad(w_mlp, x, label)))
        g8 = mlp.grad(w_mlp, X_8, y[batch])
        images["analytic, batch of 8"].append(reconstruct_input(mlp, g8))
        for name, model, w in [("DLG softmax reg.", soft, w_soft), ("DLG MLP tanh", tanh, w_tanh)]:
            g = model.grad(w, x, label)  # the label is read off g, exactly (iDLG)
            result = dlg(model, w, g, 1, rng, steps=steps, labels=[infer_label(model, g)])
            images[name].append(result.X[0])
    fig = Figure(figsize=(1.3 * count, 1.45 * len(images)), layout="constrained")
    axes = fig.subplots(len(images), count, squeeze=False)
    for i, (name, row) in enumerate(images.items()):
        for j, image in enumerate(row):
            axes[i, j].imshow(np.clip(image, 0, 1).reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
            axes[i, j].set_xticks([]), axes[i, j].set_yticks([])
        axes[i, 0].set_ylabel(name, fontsize="small")
    fig.suptitle("What one client's gradient reveals (MNIST)", fontsize="medium")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few trials")
    parser.add_argument("--out", default=None,
                        help="folder for the table and figure (default: figures/; "
                             "with --quick: write nothing)")  # fmt: skip
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    out = Path(args.out) if args.out else (None if args.quick else FIGURES)
    start = time.perf_counter()
    X, y = load_mnist("train", download=False)
    X_test, y_test = load_mnist("test", download=False)
    rng = np.random.default_rng(SEED)
    analytic = analytic_table(X, y, cfg, rng)
    leak = dlg_table(X_test, y_test, cfg, rng)
    members = membership_table(X, y, X_test, y_test, cfg, rng)
    if out is not None:
        path = figure(X_test, y_test, out / "privacy_reconstruction.png", rng, cfg)
        print(f"written: {path}")
    text = report(analytic, leak, members, args.quick, time.perf_counter() - start)
    print(text)
    if out is not None:
        (out / "privacy_attacks_table.md").write_text(text)
        print(f"written: {out / 'privacy_attacks_table.md'}")
    print(f"total: {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
