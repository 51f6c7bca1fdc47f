"""The FedProx-paper reproduction script's pieces on tiny settings, and its recorded results."""

from pathlib import Path

import numpy as np
import pytest

from conftest import load_script

from minifed.data import fedprox_synthetic
from minifed.seeding import DATA, derived_rng
from minifed.simulation import History

ROOT = Path(__file__).resolve().parent.parent
rp = load_script("reproduce_fedprox")


def test_cells_cover_data_sets_stragglers_and_methods():
    assert len(rp.CELLS) == 27 and len({c.id for c in rp.CELLS}) == 27
    cell = rp.find_cell("synthetic_0.5_0.5-50pct-fedprox_mu1")
    assert (cell.alpha, cell.beta, cell.stragglers, cell.method) == (0.5, 0.5, 0.5, "fedprox_mu1")
    assert rp.find_cell("synthetic_1_1-90pct-fedavg").data_name == "Synthetic(1, 1)"
    with pytest.raises(ValueError, match="unknown cell"):
        rp.find_cell("synthetic_2_2-0pct-fedavg")


@pytest.mark.parametrize(
    "method, mu, drop", [("fedavg", 0.0, True), ("fedprox_mu0", 0.0, False),
                         ("fedprox_mu1", 1.0, False)],
)  # fmt: skip
def test_methods_are_fedprox_with_the_papers_settings(method, mu, drop):
    fedprox = rp.algorithm(rp.Cell(1.0, 1.0, 0.9, method))
    assert (fedprox.mu, fedprox.drop_stragglers, fedprox.stragglers) == (mu, drop, 0.9)
    assert (fedprox.lr, fedprox.epochs, fedprox.batch_size) == (0.01, 20, 10)
    assert fedprox.model.num_params == 60 * 10 + 10


def test_each_device_keeps_a_random_tenth_for_testing():
    data, n_test_k = rp.federation(1.0, 1.0, K=6)
    X, _, device_ids = fedprox_synthetic(1.0, 1.0, 6, rng=derived_rng(0, DATA))
    n_k = np.bincount(device_ids)
    assert n_k.tolist() == (data.n_k + n_test_k).tolist()
    assert data.n_k.tolist() == [int(0.9 * n) for n in n_k]  # the authors' floor(0.9 n_k)
    assert len(data.y_test) == n_test_k.sum()
    starts = np.concatenate([[0], np.cumsum(n_test_k)])
    for k in range(6):  # train and test rows of device k are exactly its generated rows
        X_k, _ = data.client(k)
        mine = np.concatenate([X_k, data.X_test[starts[k] : starts[k + 1]]])
        assert np.array_equal(np.sort(mine[:, 0]), np.sort(X[device_ids == k, 0].astype("f4")))
    again, _ = rp.federation(1.0, 1.0, K=6)
    assert np.array_equal(again.X_test, data.X_test)  # seeded: the same split every time
    assert not np.array_equal(rp.federation(1.0, 1.0, seed=1, K=6)[0].X_test[:5], data.X_test[:5])


def test_a_tiny_run_records_what_the_table_reads_and_resumes(tmp_path):
    data, n_test_k = rp.federation(1.0, 1.0, K=4)
    cell = rp.Cell(1.0, 1.0, 0.5, "fedprox_mu1")
    dirs = {"results": tmp_path / "results", "checkpoints": tmp_path / "ckpt"}
    first = rp.run_cell(cell, data, n_test_k, rounds=1, **dirs)
    resumed = rp.run_cell(cell, data, n_test_k, rounds=2, **dirs)
    direct = rp.run_cell(cell, data, n_test_k, rounds=2, results=tmp_path / "r2",
                         checkpoints=tmp_path / "c2")  # fmt: skip
    assert len(first) == 2 and len(resumed) == 3
    assert resumed.metric("test_accuracy")[1].tolist() == direct.metric("test_accuracy")[1].tolist()
    saved = rp.load_results(tmp_path / "results")[cell.id]
    assert saved.config["cell_id"] == cell.id and saved.config["n_test_k"] == n_test_k.tolist()
    for r in saved.rounds:  # per-device counts add up to the accuracy on the union
        assert "client_loss" not in r and len(r["client_test_correct"]) == 4
        assert sum(r["client_test_correct"]) / n_test_k.sum() == pytest.approx(r["test_accuracy"])
    text = rp.table({cell.id: saved})
    row = next(line for line in text.splitlines() if "FedProx (mu=1)" in line and "50%" in line)
    assert f"| {rp.final(saved, 'train_loss'):.3f} |" in row
    assert f"| {rp.final(saved, 'test_accuracy'):.3f} |" in row
    assert rp.plot({cell.id: saved}, tmp_path / "f.png").stat().st_size > 0


def fake(acc: float, F) -> History:
    """A run whose two devices (10 test rows each) both score ``acc``, with losses ``F``."""
    record = {"test_accuracy": acc, "client_test_correct": [round(10 * acc)] * 2}
    record.update(seconds=1.0, eval_seconds=0.0)
    rounds = [{"round": t, "train_loss": f, **record} for t, f in enumerate(F)]
    return History({"n_test_k": [10, 10]}, rounds)


def test_findings_compare_the_methods():
    smooth, zigzag = [1.0] * 20, [1.0, 2.0] * 10
    histories = {
        rp.Cell(1.0, 1.0, 0.9, "fedavg").id: fake(0.5, [3.0] * 20),
        rp.Cell(1.0, 1.0, 0.9, "fedprox_mu0").id: fake(0.6, zigzag),
        rp.Cell(1.0, 1.0, 0.9, "fedprox_mu1").id: fake(0.8, smooth),
    }
    assert rp.gain(histories, 1.0, 0.9) == pytest.approx(30.0)
    assert rp.device_gain(histories, 1.0, 0.9) == pytest.approx(30.0)
    assert rp.drop_gap(histories, 1.0, 0.9) == pytest.approx(3.0 - 1.5)
    assert rp.drop_accuracy(histories, 1.0, 0.9) == pytest.approx(10.0)
    assert rp.calming(histories, 1.0, 0.9) == pytest.approx(1.0 - 0.0)
    text = rp.table(histories)
    assert "| 90% | - | - | +30.0 / +30.0 / +30.0 |" in text
    assert "with 90% stragglers dropping raises F(w) in 1 of 1 data sets (agrees)" in text
    assert "oscillate less than mu = 0 in 1 of 1 settings (agrees" in text
    assert "10 of the 20 test rows" in text


def test_recorded_runs_match_the_committed_table_and_settings():
    histories = rp.load_results()
    assert sorted(histories) == sorted(c.id for c in rp.CELLS)
    table = ROOT / "figures" / "fedprox_synthetic_table.md"
    assert table.read_text() == rp.table(histories)
    assert (ROOT / "figures" / "fedprox_synthetic.png").exists()
    for cell in rp.CELLS:
        h = histories[cell.id]
        c, (_, mu, drop) = h.config, rp.METHODS[cell.method]
        assert (c["mu"], c["drop_stragglers"], c["stragglers"]) == (mu, drop, cell.stragglers)
        assert (c["lr"], c["epochs"], c["batch_size"], c["m"], c["K"], c["seed"]) == (
            0.01, 20, 10, 10, 30, 0)  # fmt: skip
        assert [r["round"] for r in h.rounds] == list(range(201))
        n_test = sum(c["n_test_k"])
        assert all(sum(r["client_test_correct"]) == round(r["test_accuracy"] * n_test)
                   for r in h.rounds)  # fmt: skip


def test_the_three_methods_sample_the_same_devices_every_round():
    histories = rp.load_results()
    for a, b in rp.DATASETS:
        for x in rp.STRAGGLERS:
            runs = [histories[rp.Cell(a, b, x, method).id] for method in rp.METHODS]
            clients = [[r["clients"] for r in h.rounds] for h in runs]
            assert clients[0] == clients[1] == clients[2]


def test_without_stragglers_fedavg_is_fedprox_with_mu_0():
    histories = rp.load_results()
    for a, b in rp.DATASETS:
        fedavg, mu0 = (histories[rp.Cell(a, b, 0.0, m).id] for m in ("fedavg", "fedprox_mu0"))
        assert fedavg.metric("train_loss")[1].tolist() == mu0.metric("train_loss")[1].tolist()
