"""benchmarks.cycling_real, every path on a tiny Qdlin-layout folder: training (with the Severson reproduction
lines), --ship DIR (a frozen model written with its card), --model DIR and --model shipped (scored, nothing trained)."""

import json
import re
import sys

import pytest

from assets.cycling import frozen
from tests.cycling.test_unknown_life import write_sets

TINY = ["--steps", "2", "--voltage-stride", "25", "--threads", "1", "--batches", "none"]


def run_benchmark(monkeypatch, capsys, tmp_path, *arguments) -> dict[str, str]:
    from benchmarks import cycling_real

    monkeypatch.setattr(sys, "argv", ["cycling_real", *arguments])
    monkeypatch.setenv("MATERIALS_DATA", str(tmp_path / "unused"))
    assert cycling_real.main() == 0
    lines = capsys.readouterr().out.splitlines()
    return dict(line.split(": ", 1) for line in lines if re.match(r"^[a-z0-9_]+: ", line))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("severson_like")
    write_sets(folder)
    return folder


def test_training_prints_the_severson_reproduction_beside_the_published_figures(data, tmp_path, monkeypatch, capsys):
    printed = run_benchmark(monkeypatch, capsys, tmp_path, "--data", str(data), *TINY, "--unlabelled-from", "none",
                            "--exclude")
    assert printed["selected_model"] in frozen.FREEZABLE_MODELS
    for model, published in (("variance", 138), ("discharge", 91), ("full", 118)):
        value, note = printed[f"severson_reproduced_rmse_test1_{model}"].split(" ", 1)
        assert float(value) == pytest.approx(float(printed[f"rmse_cycles_test1_{model}"]), rel=1e-3)
        assert note == f"(published {published})"


def test_ship_writes_a_frozen_model_that_model_folder_scores_without_training(data, tmp_path, monkeypatch, capsys):
    target = tmp_path / "shipped"
    printed = run_benchmark(monkeypatch, capsys, tmp_path, "--data", str(data), *TINY, "--ship", str(target))
    model = frozen.load(target)
    assert model.model_id == printed["model_id"] and model.name == printed["selected_model"]
    assert model.card["training_cells"] == 15  # train and test1 together: every labelled cell
    assert "--ship assets/cycling/shipped" in model.card["command"]
    assert "A123 APR18650M1A" in model.card["domain"]["cells"] and "leverage" in model.card["domain"]["checks"]
    scored = run_benchmark(monkeypatch, capsys, tmp_path, "--data", str(data), *TINY, "--model", str(target))
    assert scored["model_id"] == model.model_id
    for name in ("train", "test1"):
        assert float(scored[f"mape_percent_{name}_shipped"]) >= 0
        assert 0 <= float(scored[f"coverage80_{name}_shipped"]) <= float(scored[f"coverage95_{name}_shipped"]) <= 1
        assert int(scored[f"n_cells_out_of_domain_{name}"]) >= 0
    assert "n_cells_test2" not in scored  # lives unknown: predicted, not scored


def test_model_shipped_scores_the_model_in_the_repository(data, tmp_path, monkeypatch, capsys):
    printed = run_benchmark(monkeypatch, capsys, tmp_path, "--data", str(data), *TINY, "--model", "shipped")
    assert printed["model_id"] == json.loads((frozen.SHIPPED_DIR / frozen.CARD_FILE).read_text())["model_id"]
    assert int(printed["n_cells_train"]) == 12 and int(printed["n_cells_test1"]) == 3
