"""The README's promises: its test command is what CI runs, and its code example runs."""

import re
from pathlib import Path

import numpy as np

from conftest import load_script, require_dataset

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_ci_runs_exactly_the_readme_test_command():
    quick_start = README.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick_start.strip().splitlines()]
    assert len(commands) == 2 and "minifed demo" in commands[0]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in [line.strip() for line in ci]


def test_readme_code_example_runs(tmp_path, monkeypatch):
    require_dataset("fashion-mnist")
    section = README.split("## In code", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in section.split("```python")[1:]]
    assert len(blocks) == 2  # FedAvg, then SCAFFOLD with workers and a checkpoint
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for code in blocks:
        code = re.sub(r"rounds=\d+", "rounds=1", code)  # the same code, one round
        exec(compile(code, "README.md", "exec"), namespace)
        assert namespace["history"].rounds[-1]["round"] == 1
    assert (tmp_path / "fedavg.json").exists() and (tmp_path / "scaffold.npz").exists()
    assert namespace["history"].config["algorithm"] == "scaffold"


def test_reproduction_table_matches_the_recorded_histories():
    from minifed.simulation import History

    section = README.split("## Reproducing the FedAvg paper", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if re.match(r"\| (non-)?IID \|", line)]
    assert len(rows) == 8
    results = ROOT / "benchmarks" / "results" / "fedavg_mnist"
    for row in rows:
        data, C, B, lr, _paper, ours = [c.strip() for c in row.strip("|").split("|")][:6]
        cell = f"2nn-{data.lower().replace('-', '')}-C{C}-E1-B{B}"
        history = History.load(results / f"{cell}.json")
        assert history.rounds_to(0.97) == int(ours), cell
        assert history.config["lr"] == float(lr), cell


def test_cnn_reproduction_rows_match_the_recorded_histories():
    from minifed.simulation import History

    section = README.split("## Reproducing the FedAvg paper", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| CNN ")]
    assert rows and rows[0].startswith("| CNN data")
    results = ROOT / "benchmarks" / "results" / "fedavg_mnist"
    for row in rows[1:]:
        data, E, B, lr, _paper, ours = [c.strip() for c in row.strip("|").split("|")]
        part = data.split()[1].lower().replace("-", "")
        history = History.load(results / f"cnn-{part}-C0.1-E{E}-B{B}.json")
        if ours.startswith("not reached"):  # e.g. "not reached in 530 (best 0.9891 at 496)"
            t, acc = history.metric("test_accuracy")
            assert history.rounds_to(0.99) is None
            assert ours == f"not reached in {t[-1]} (best {acc.max():.4f} at {t[acc.argmax()]})"
        else:
            assert history.rounds_to(0.99) == int(ours)
        assert history.config["lr"] == float(lr)


def test_fedprox_reproduction_rows_match_the_recorded_histories():
    rp = load_script("reproduce_fedprox")
    histories = rp.load_results()
    section = README.split("## Reproducing the FedProx paper", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| Synthetic(")]
    assert len(rows) == 9
    for row in rows:
        data, x, F, acc, gain = [c.strip() for c in row.strip("|").split("|")]
        a = float(data[len("Synthetic(") :].split(",")[0])
        x = int(x.rstrip("%")) / 100
        runs = [histories[rp.Cell(a, a, x, m).id] for m in ("fedavg", "fedprox_mu0", "fedprox_mu1")]
        assert F == " / ".join(f"{rp.tail_mean(h, 'train_loss'):.3f}" for h in runs)
        assert acc == " / ".join(f"{rp.tail_mean(h, 'test_accuracy'):.3f}" for h in runs)
        assert gain == f"{rp.gain(histories, a, x):+.1f}"
    # the prose: mu = 1 the steadiest everywhere; at 90 % dropping stragglers hurts everywhere
    for a in (0.0, 0.5, 1.0):
        for x in (0.0, 0.5, 0.9):
            steadiness = [rp.stat(histories, a, x, m, rp.oscillation)
                          for m in ("fedavg", "fedprox_mu0", "fedprox_mu1")]  # fmt: skip
            assert steadiness[2] < min(steadiness[:2])
            assert rp.stat(histories, a, x, "fedprox_mu0", rp.argmin_round) <= 10
            assert rp.device_gain(histories, a, x) > 0
        assert rp.drop_gap(histories, a, 0.9) > 0 and rp.drop_accuracy(histories, a, 0.9) > 0


def test_algorithm_comparison_rows_match_the_recorded_histories():
    cm = load_script("compare_mnist")
    histories = cm.load(cm.RESULTS)
    section = README.split("## Comparing the algorithms", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| Fed") or
            line.startswith("| SCAFFOLD")]  # fmt: skip
    runs = list(cm.comparison().items())
    assert len(rows) == len(runs) == 8
    for row, (name, candidate) in zip(rows, runs, strict=True):
        label, settings, r90, r95, best, mb95 = [c.strip() for c in row.strip("|").split("|")]
        h = histories[name]
        t, acc = h.metric("test_accuracy")
        assert label == cm.LABELS[candidate.algorithm]
        assert f"lr={h.config['lr']}" in settings
        shown = [key for key in ("mu", "rho", "momentum", "tau") if key in h.config]
        shown += ["server_lr"] if "server_lr=" in settings else []  # SCAFFOLD's 1.0: omitted
        for key in shown:
            assert f"{key}={h.config[key]}" in settings, (name, key)
        assert (r90, mb95) == (cm._reached(h, 0.90)[0], cm._reached(h, 0.95)[1])
        assert r95 == cm._reached(h, 0.95)[0]
        assert best == f"{acc.max():.4f} ({t[np.argmax(acc)]})"
    assert histories["scaffold"].config["diverged_at"] == 176
    sweep = cm.load(cm.RESULTS / "sweep")  # the weakest pull was chosen for FedProx and FedADMM
    for name, key in (("fedprox", "mu"), ("fedadmm", "rho")):
        grid = [h.config[key] for n, h in sweep.items() if n.startswith(name)]
        assert len(grid) >= 4 and histories[name].config[key] == min(grid)
    fedavg, scaffold = histories["fedavg-lr0.1"], histories["scaffold-lr0.1"]
    assert 2 * scaffold.rounds_to(0.95) <= fedavg.rounds_to(0.95)  # half the rounds
    ratio = cm.megabytes(scaffold, scaffold.rounds_to(0.95)) / cm.megabytes(
        fedavg, fedavg.rounds_to(0.95)
    )
    assert 0.9 < ratio < 1.1  # about the same megabytes
    at_02 = [n for n, c in runs if histories[n].config["lr"] == 0.2 and n != "scaffold"]
    fewest = min(at_02, key=lambda n: cm.megabytes(histories[n], histories[n].rounds_to(0.95)))
    assert fewest == "fedadam"
    best = max(histories, key=lambda n: histories[n].metric("test_accuracy")[1].max())
    assert best == "fedadam"


def test_readme_links_reach_files_and_built_pages():
    """Relative links name files of the repository; ``site/X.html`` links name the page that
    ``mkdocs build`` makes from ``X.ipynb`` or ``X.md`` (docs/hooks.py), which must exist."""
    missing = []
    for target in re.findall(r"\]\(([^)#\s]+)", README):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        if target.startswith("site/"):
            stem = target.removeprefix("site/").removesuffix(".html")
            if not any((ROOT / f"{stem}{suffix}").is_file() for suffix in (".ipynb", ".md")):
                missing.append(target)
        elif not (ROOT / target).exists():
            missing.append(target)
    assert not missing, missing
    chapters = sorted(p.stem for p in (ROOT / "tutorials").glob("[0-9][0-9]_*.ipynb"))
    for stem in chapters:  # every chapter has its row, with the notebook and the page
        assert f"(tutorials/{stem}.ipynb) ([page](site/tutorials/{stem}.html))" in README, stem
