"""Closed-form pieces of training and evaluation: rate steps, class weights, top-k, split, robustness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from assets.pdf import classifiers, evaluation, variants
from assets.pdf.calculator import MODEL_GRID_A


def test_learning_rate_steps_at_the_published_epochs():
    rates, switches = (5e-4, 5e-5, 5e-6), (40, 60)
    assert [classifiers.step_learning_rate(e, rates, switches) for e in (0, 39, 40, 59, 60, 99)] == \
        [5e-4, 5e-4, 5e-5, 5e-5, 5e-6, 5e-6]


def test_inverse_frequency_weights_equalise_the_classes():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    weights = classifiers.inverse_frequency_weights(labels, 3)
    totals = [weights[k] * np.sum(labels == k) for k in range(3)]
    assert totals == pytest.approx([10 / 3] * 3)


def test_top_k_accuracy_and_metrics():
    probabilities = np.array([[0.6, 0.3, 0.1], [0.2, 0.3, 0.5], [0.1, 0.7, 0.2]])
    truth = np.array([0, 1, 0])
    assert classifiers.top_k_accuracy(probabilities, truth, 1) == pytest.approx(1 / 3)
    assert classifiers.top_k_accuracy(probabilities, truth, 2) == pytest.approx(2 / 3)
    metrics = classifiers.classification_metrics(probabilities, truth, [2, 14, 225])
    assert "top6_accuracy" not in metrics  # fewer than 6 classes
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 0, 1], [0, 0, 0]]
    assert metrics["per_class_accuracy"] == {"2": 0.5, "14": 0.0, "225": None}


def test_split_is_stratified_by_structure_and_disjoint():
    ids = np.array([f"s{i}" for i in range(40)])
    labels = np.repeat([2, 14, 225, 227], 10)
    split = classifiers.stratified_split(np.repeat(ids, 2), np.repeat(labels, 2), 0.2, 0.25, seed=0)
    assert len(split) == 40  # copies of a structure stay together
    assert split.groupby("subset").size().to_dict() == {"test": 8, "train": 24, "validation": 8}
    assert (split[split["subset"] == "test"].groupby("space_group").size() == 2).all()


def test_split_by_parent_never_trains_on_a_variant_of_a_test_parent():
    parents = np.array([f"gen-sg{g}-0-{i}" for g in (2, 14, 225, 227) for i in range(10)])
    ids = np.concatenate([parents] + [np.char.add(parents, f"-v{k}") for k in range(3)])
    labels = np.tile(np.repeat([2, 14, 225, 227], 10), 4)
    parent_ids = np.array([variants.parent_id(i) for i in ids])
    split = classifiers.stratified_split(ids, labels, 0.2, 0.25, seed=0, parent_ids=parent_ids)
    assert len(split) == 160 and (split.groupby("parent_id")["subset"].nunique() == 1).all()
    assert split.groupby("subset")["parent_id"].nunique().to_dict() == {"test": 8, "train": 24, "validation": 8}
    train = classifiers.subset_rows(ids, split, ("train",))
    test = classifiers.subset_rows(ids, split, ("test",))
    assert not set(parent_ids[train]) & set(parent_ids[test])


def test_truncated_profiles_are_g_zero_beyond_r_max_then_normalised():
    pdfs = np.random.default_rng(0).normal(0.0, 1.0, (2, len(MODEL_GRID_A)))
    truncated = evaluation.truncate_profiles(pdfs, 20.0)
    beyond = MODEL_GRID_A > 20.0
    assert np.ptp(truncated[:, beyond], axis=1) == pytest.approx([0.0, 0.0])
    zero_level = -pdfs[:, MODEL_GRID_A <= 20.0].min(axis=1) / np.ptp(pdfs[:, MODEL_GRID_A <= 20.0], axis=1)
    np.testing.assert_allclose(truncated[:, -1], zero_level, rtol=1e-6)  # G = 0 on the normalised scale
    assert truncated.min() == 0.0 and truncated.max() == 1.0


def test_cnn_stops_when_its_wall_clock_budget_is_spent():
    rng = np.random.default_rng(0)
    x, y = rng.random((64, len(MODEL_GRID_A)), dtype=np.float32), rng.integers(0, 3, 64)
    settings = classifiers.CnnSettings(epochs=50, batch_size=32, max_train_seconds=1e-6, early_stopping_patience=50)
    _, history = classifiers.train_cnn(x, y, x[:8], y[:8], 3, settings, log=lambda message: None)
    assert len(history["loss"]) == 1  # stopped inside the first epoch, not after 50


@pytest.mark.parametrize(("name", "structures", "epochs"), [("pdf_paper.yaml", 50_000, 100),
                                                             ("pdf_scale.yaml", 20_000, 100)])
def test_run_configs_are_valid_for_the_pdf_job(name, structures, epochs):
    from dagster._core.system_config.objects import ResolvedRunConfig

    from orchestration.definitions import defs

    config = yaml.safe_load((Path(__file__).parents[2] / "configs" / name).read_text())
    resolved = ResolvedRunConfig.build(defs.resolve_job_def("pdf_job"), config)
    assert resolved.ops["pdf_structures"].config["structures_per_group"] * 8 == structures
    assert resolved.ops["space_group_cnn"].config["epochs"] == epochs
