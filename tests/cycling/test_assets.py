"""End to end: the whole cycling group materialized on a tiny config."""

import logging
import pickle

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from assets.cycling import defs as cycling_defs
from assets.cycling.synthetic import synthetic_batch

ASSETS = [cycling_defs.cycling_synthetic_cells, cycling_defs.cycling_unified, cycling_defs.cycling_split,
          cycling_defs.cycling_corpus, cycling_defs.cycling_tokenizer, cycling_defs.multiscale_encoder,
          cycling_defs.cycling_embeddings, cycling_defs.cycle_life_model]


def tiny_run_config(synthetic="always", severity="WARN"):
    return {"ops": {
        "cycling_synthetic_cells": {"config": {"n_cells": 12, "detail_stride": 30, "points_per_cycle": 40}},
        "cycling_unified": {"config": {"synthetic": synthetic, "rejected_share_severity": severity}},
        "cycling_corpus": {"config": {"time_step_stride": 10}},
        "multiscale_encoder": {"config": {"steps": 2, "batch_size": 2, "eval_every": 1, "max_windows": 4}},
    }}


def materialized(resources, assets=ASSETS, synthetic="always", severity="WARN", instance=None):
    config = tiny_run_config(synthetic, severity)
    config["ops"] = {key: value for key, value in config["ops"].items() if key in {a.key.path[-1] for a in assets}}
    return materialize(assets, resources=resources, instance=instance or DagsterInstance.ephemeral(),
                       run_config=config, raise_on_error=False)


def log_messages(instance, result, level="WARNING"):
    return [e.user_message for e in instance.all_logs(result.run_id) if e.level == getattr(logging, level)]


def metadata(result, key):
    return {k: v.value for k, v in result.asset_materializations_for_node(key)[0].metadata.items()}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One materialization shared by the assertions below (it is the expensive part)."""
    from resources.cluster import DaskResource
    from resources.compute import ComputeResource
    from resources.storage import MaterialsStorage

    root = tmp_path_factory.mktemp("data")
    raw = root / "raw" / "cycling"
    raw.mkdir(parents=True)
    # One good user pickle, one broken pickle and one CSV without the required columns.
    user_cells = synthetic_batch(2, detail_stride=50, points_per_cycle=30, seed=7)
    (raw / "user.pkl").write_bytes(pickle.dumps({f"u{key}": record for key, record in user_cells.items()}))
    (raw / "broken.pkl").write_bytes(b"not a pickle")
    pd.DataFrame({"voltage": [3.3]}).to_csv(raw / "no_keys.csv", index=False)
    resources = {"compute": ComputeResource(device="cpu", seed=0, num_threads=2),
                 "dask": DaskResource(synchronous=True), "io_manager": MaterialsStorage(root=str(root))}
    instance = DagsterInstance.ephemeral()
    raw_before = sorted(p.relative_to(root) for p in (root / "raw").rglob("*"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MATERIALS_DATA", str(root))
        result = materialized(resources, instance=instance)
        result.warnings = log_messages(instance, result)
        result.raw_before = raw_before
        result.raw_after = sorted(p.relative_to(root) for p in (root / "raw").rglob("*"))
        yield root, result


def test_the_whole_group_materializes(demo_run):
    _, result = demo_run
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    # 2 whole files rejected of 4 user records (2 cells of user.pkl + the 2 broken files): 0.5 > 0.2 bound,
    # at WARN severity in this run so that the rest materializes.
    assert checks == {"rejected_share_within_bound": False, "round_trip_lossless": True}


def test_bad_files_are_quarantined_counted_over_user_records_and_logged(demo_run):
    root, result = demo_run
    quarantine = pd.read_csv(root / "quarantine" / "cycling.csv")
    assert set(quarantine["source"]) == {"raw/cycling/broken.pkl", "raw/cycling/no_keys.csv"}
    assert quarantine["source_sha256"].str.len().eq(64).all()
    assert "not a readable pickle" in quarantine.loc[quarantine["source"].str.endswith("broken.pkl"), "reason"].iloc[0]
    unified = metadata(result, "cycling_unified")
    assert unified["n_cells"] == 14  # 12 synthetic (asked for by the config) + 2 from user.pkl
    assert set(unified["sources"].split(", ")) == {"synthetic", "user.pkl"}
    assert (unified["n_user_records"], unified["n_rejected"], unified["rejected_share"]) == (4, 2, 0.5)
    assert any("raw/cycling/broken.pkl: 1 of 1 records rejected (whole file): 1x not a readable pickle" in w
               for w in result.warnings)


def test_nothing_is_written_under_raw_and_synthetic_cells_stay_labelled(demo_run):
    root, result = demo_run
    assert result.raw_after == result.raw_before
    metrics = pd.read_csv(root / "exports" / "cycling_cycle_life_metrics.csv")
    assert set(metrics["source"]) == {"user+synthetic"}


def test_predictions_carry_model_ids_and_reuse_the_stored_split(demo_run):
    root, result = demo_run
    predictions = pd.read_csv(root / "exports" / "cycling_cycle_life_predictions.csv")
    every_model = pd.read_csv(root / "exports" / "cycling_cycle_life_model_predictions.csv")
    model = metadata(result, "cycle_life_model")
    encoder = metadata(result, "multiscale_encoder")
    assert set(predictions["model_id"]) == set(every_model["model_id"]) == {model["model_id"]}
    assert set(predictions["encoder_model_id"]) == {encoder["model_id"]}
    split = pd.read_parquet(root / "storage" / "cycling_split.parquet")
    joined = predictions.merge(split, on="cell_key", suffixes=("", "_stored"))
    assert (joined["split"] == joined["split_stored"]).all()
    assert set(every_model["model"]) == {"constant", "variance", "discharge", "full", "encoder_ridge",
                                         "encoder_variance_ridge", "encoder_change_variance_ridge"}
    assert set(predictions["source"]) == {"synthetic", "user.pkl"}  # synthetic cells are labelled as such
    # One row per cell: the selected model's, named, the same numbers as that model's rows of the comparison.
    assert predictions["cell_key"].is_unique and set(predictions["selected_model"]) == {model["selected_model"]}
    chosen = every_model.loc[every_model["model"] == model["selected_model"]].set_index("cell_key")
    np.testing.assert_allclose(predictions.set_index("cell_key")["predicted_cycle_life"],
                               chosen.loc[predictions["cell_key"], "predicted_cycle_life"])
    metrics = pd.read_csv(root / "exports" / "cycling_cycle_life_metrics.csv")
    assert set(metrics.columns) >= {"mae_cycles", "mape_percent", "rmse_cycles", "r2", "coverage80", "coverage95"}
    assert len(metrics) == 28  # 7 models x (train, train_cv, validation, test); no batches: no train_batchcv
    # The headline in the metadata is the test set's MAPE of the variance model, recomputed from the export.
    test = every_model.loc[(every_model["model"] == "variance") & (every_model["split"] == "test")]
    recomputed = 100 * np.mean(np.abs(test["predicted_cycle_life"] - test["cycle_life"]) / test["cycle_life"])
    assert model["test_mape_percent_variance"] == pytest.approx(recomputed, rel=1e-3)
    assert model["test_coverage80_selected"] == pytest.approx(
        metrics.query("split == 'test' and selected")["coverage80"].iloc[0], abs=1e-3)


def test_encoder_metadata_has_checkpoints_and_a_loss_curve(demo_run):
    _, result = demo_run
    encoder = metadata(result, "multiscale_encoder")
    assert encoder["loss_curve"].startswith("![loss curve](data:image/png;base64,")
    assert encoder["checkpoints"].count("step_") == 2


def test_rejected_share_check_blocks_downstream(test_resources, data_root):
    """With the synthetic cells off and only a broken file dropped, nothing valid is left: the
    blocking check fails and the split is not materialized."""
    raw = data_root / "raw" / "cycling"
    raw.mkdir(parents=True)
    (raw / "broken.pkl").write_bytes(b"junk")
    result = materialized(test_resources, ASSETS[:3], synthetic="auto", severity="ERROR")  # a raw file exists: synthetic stays off
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.metadata["rejected_share"].value == 1.0
    assert not result.asset_materializations_for_node("cycling_split")


# ---- the science on the synthetic cells (issue 17): measured margins, and a broken model fails them -------

BASELINES = {"constant": "constant", "variance": "least_squares", "discharge": "elastic_net", "full": "elastic_net"}


def shuffled_training_lives(cells):
    train = cells["split"] == "train"
    cells = cells.copy()
    cells.loc[train, "cycle_life"] = np.random.default_rng(0).permutation(cells.loc[train, "cycle_life"].to_numpy())
    return cells


def held_out_mape(cells, feature_sets, shuffle_training_lives=False):
    """MAPE (%) per model over all held-out cells (validation + test of the demo's 60/20/20 split)."""
    from assets.cycling import lifemodel

    if shuffle_training_lives:
        cells = shuffled_training_lives(cells)
    methods = {name: BASELINES[name] for name in feature_sets}
    predictions = lifemodel.fit_and_score(cells, feature_sets, methods)["predictions"]
    held_out = predictions.loc[predictions["split"] != "train"]
    error = (held_out["predicted_cycle_life"] - held_out["cycle_life"]).abs() / held_out["cycle_life"]
    return (100 * error).groupby(held_out["model"]).mean().to_dict()


@pytest.fixture(scope="module")
def synthetic_demo_cells():
    """The demo's 40 synthetic cells (seed 0), only the cycles the Severson features read, split as the demo."""
    from assets.cycling import lifemodel, split, unified

    batch = synthetic_batch(40, last_detail_cycle=100, detail_stride=100, points_per_cycle=80, seed=0)
    frame, _ = unified.severson_frame(batch, "synthetic")
    table, _ = unified.unify([frame], 3)
    severson = lifemodel.severson_features(table)
    feature_sets = {"constant": severson[lifemodel.VARIANCE_FEATURES], "variance": severson[lifemodel.VARIANCE_FEATURES],
                    "discharge": severson[lifemodel.DISCHARGE_FEATURES], "full": lifemodel.full_model_features(severson)}
    cells = split.split_by_ratio(sorted(table["cell_key"].unique()), (0.6, 0.2, 0.2), seed=0)
    cells["cycle_life"] = cells["cell_key"].map(table.groupby("cell_key")["cycle_life"].first())
    cells, _ = lifemodel.modelled_cells(cells, feature_sets, "test")
    return cells, feature_sets


# Measured (seeds 0-3 of the demo's cells, 2026-12-01): held-out MAPE over the constant predictor's is
# 0.19-0.28 for the variance model, 0.20-0.25 for discharge, 0.20-0.29 for full; a variance model fitted to
# shuffled training lives scores 0.47-1.03. Discharge minus variance: -4.8 to +7.2 points (16 held-out cells).
SKILL_BOUND = 0.35  # a model must reach at most this fraction of the constant predictor's MAPE
ORDER_TOLERANCE_POINTS = 10.0


def assert_beats_constant(mape, model):
    assert mape[model] <= SKILL_BOUND * mape["constant"], (model, mape)


def test_baselines_have_skill_and_follow_the_published_order(synthetic_demo_cells):
    mape = held_out_mape(*synthetic_demo_cells)
    for model in ("variance", "discharge", "full"):
        assert_beats_constant(mape, model)
    # Severson et al.: the discharge model is at least as good as the variance model (within the tolerance
    # that 16 held-out cells allow).
    assert mape["discharge"] <= mape["variance"] + ORDER_TOLERANCE_POINTS


def test_a_model_fitted_to_shuffled_lives_fails_the_same_assertion(synthetic_demo_cells):
    cells, feature_sets = synthetic_demo_cells
    subset = {name: feature_sets[name] for name in ("constant", "variance")}
    mape = held_out_mape(cells, subset, shuffle_training_lives=True)
    with pytest.raises(AssertionError):
        assert_beats_constant(mape, "variance")


# ---- the model selected by CV and its intervals (issue 22), on the same cells --------------------------------

def selected_on_held_out(cells, feature_sets, shuffle_training_lives=False):
    """The pipeline's selection and intervals (lifemodel.fit_and_score over the demo's baselines): the selected
    model's name and, for it and for the constant, held-out MAPE (%), median 80 % interval width (log10
    cycles) and the coverage of each level."""
    from assets.cycling import lifemodel

    if shuffle_training_lives:
        cells = shuffled_training_lives(cells)
    result = lifemodel.fit_and_score(cells, feature_sets, {name: BASELINES[name] for name in feature_sets})
    held_out = result["predictions"].loc[result["predictions"]["split"] != "train"]

    def quality(model):
        rows = held_out.loc[held_out["model"] == model]
        life = rows["cycle_life"]
        return {"mape": 100 * np.mean(np.abs(rows["predicted_cycle_life"] - life) / life),
                "width80": np.median(np.log10(rows["upper80_cycles"] / rows["lower80_cycles"])),
                **{level: np.mean((rows[f"lower{level}_cycles"] <= life) & (life <= rows[f"upper{level}_cycles"]))
                   for level in (80, 95)}}

    return result["selected_model"], quality(result["selected_model"]), quality("constant")


# Measured (demo cells, seed 0, 2026-12-05): the variance model is selected (CV MAPE 29 % vs constant 79 %);
# held out: MAPE 22.7 % vs 120 %, 80 % interval 0.49 vs 1.06 decades, coverage 0.88 / 0.94 on 16 cells.
# Fitted to shuffled training lives: variance selected, MAPE 56 % vs 120 %, interval 1.01 vs 1.08 decades.
WIDTH_BOUND = 0.6  # the selected model's interval must be at most this fraction of the constant's


def assert_selection_is_informative(selected, chosen, constant):
    assert selected != "constant"
    assert chosen["mape"] <= SKILL_BOUND * constant["mape"], (selected, chosen, constant)
    assert chosen["width80"] <= WIDTH_BOUND * constant["width80"], (selected, chosen, constant)
    assert chosen[80] >= 0.6 and chosen[95] >= 0.8, chosen  # 16 held-out cells: nominal 0.8 and 0.95


def test_the_selected_model_has_skill_and_sharp_intervals_that_cover(synthetic_demo_cells):
    assert_selection_is_informative(*selected_on_held_out(*synthetic_demo_cells))


def test_selection_and_intervals_from_shuffled_lives_fail_the_same_assertion(synthetic_demo_cells):
    with pytest.raises(AssertionError):
        assert_selection_is_informative(*selected_on_held_out(*synthetic_demo_cells, shuffle_training_lives=True))
