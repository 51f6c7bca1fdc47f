"""Command-line flags for the algorithms' settings, read from their constructors.

Every registered algorithm's constructor arguments (besides ``model`` and ``lr``) become flags
(``server_lr`` -> ``--server-lr``); a flag the chosen algorithm does not take is refused, and
``minifed run --help`` lists each algorithm with its settings and defaults.
"""

from __future__ import annotations

import argparse
import inspect

from minifed.algorithms import ALGORITHMS


class UsageError(Exception):
    """A problem with what the user asked for: reported in one line, exit status 2."""


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
    "threshold": "SecAggFedAvg: fraction of the sampled clients needed to unmask the sum",
    "dropout": "SecAggFedAvg: probability that a client drops out after sharing its keys",
    "bits": "SecAggFedAvg: masks and sums live in Z_R, R = 2^bits",
    "frac_bits": "SecAggFedAvg: fractional bits f of the fixed-point encoding",
    "clip_range": "SecAggFedAvg: each update coordinate is clipped to [-c, c] before encoding",
    "dh_group": "SecAggFedAvg: Diffie-Hellman group, teaching (NOT secure) or modp2048",
    "noise_multiplier": "DP-FedAvg, local DP: noise standard deviation z in units of the clip",
    "clip": "DP-FedAvg, local DP: clip norm S of each client's update",
    "delta": "DP-FedAvg, local DP: delta of the (epsilon, delta) recorded every round",
    "adaptive": "DP-FedAvg: adapt the clip norm to a quantile of the update norms",
    "target_quantile": "DP-FedAvg adaptive clipping: target quantile gamma of the norms",
    "clip_lr": "DP-FedAvg adaptive clipping: geometric step eta_C of the clip norm",
    "count_noise": "DP-FedAvg adaptive clipping: noise sigma_b on the count (default qK/20)",
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


def settings_help() -> str:
    lines = ["settings of each algorithm (defaults are the algorithm's own):"]
    for name, cls in sorted(ALGORITHMS.items()):
        params = _parameters(cls).values()
        text = [p.name if p.default is p.empty else f"{p.name}={p.default}" for p in params]
        lines.append(f"  {name:11} lr, {', '.join(text)}" if text else f"  {name:11} lr")
    return "\n".join(lines)


def algorithm_kwargs(args) -> dict:
    """The settings given on the command line; a flag the algorithm does not take is an error."""
    takes = _parameters(ALGORITHMS[args.algorithm])
    kwargs = {"lr": args.lr}
    for name in algorithm_settings():
        value = getattr(args, name, None)
        if value is None:  # not given (a batch size of 'inf' is given as None: the default)
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


def batch_size_flag(text: str) -> int | None:
    if text.lower() in ("inf", "none", "full"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number or 'inf', got {text!r}") from None
