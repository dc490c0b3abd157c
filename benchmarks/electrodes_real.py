"""Electrode voltages on a real Battery Explorer export, through the pipeline's own assets.

    python -m benchmarks.electrodes_real --data ../shared/data/electrodes [--holdout FILE] [--partition all]

Copies the export(s) into raw/electrodes/ of a fresh temporary data root, materializes
the `electrodes` assets in process for one partition (default `all`: every working
ion) with every row in a 5-fold CV (test_fraction 0), and prints per model (forest,
boosting, network, the torch composition model, median baseline) and ensemble the CV
MAE / R2 over all ions and over the Li rows. With --holdout FILE (same export format)
the holdout rows become the candidates of `electrode_predictions`, so the models
trained on all of --data score them exactly as a user's predictions are made:
`holdout_mae_V_<model>`, `holdout_mae_V` (the model the pipeline predicts with, the
best by CV MAE) and `holdout_coverage80` / `holdout_coverage95`, the share of holdout
rows inside the pipeline's 80 % / 95 % conformal intervals (calibrated on --data only).

The published anchor (Magpie features + working-ion one-hot, random forest, 5-fold
CV over the whole 3.2k-row export): MAE 0.41 V (R2 0.81); predicting the median 1.08 V.
Ensembles (`trees`: mean of forest and boosting; `ensemble`: mean of forest, boosting and network) are scored
on the same out-of-fold rows. Headline (last line): the best model's all-ion CV MAE.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("forest", "boosting", "network", "composition", "median")
ANCHOR = {"anchor_magpie_forest_cv_mae_V": 0.41, "anchor_magpie_forest_cv_r2": 0.81, "anchor_median_cv_mae_V": 1.08}
# Known electrodes (experimental average voltages, V vs the metal) printed beside the predictions.
SANITY = [
    ("LiCoO2", "Li0.5–1CoO2", "Li", 3.9), ("LiNiO2", "Li0–1NiO2", "Li", 3.8), ("LiMn2O4", "Li0–1Mn2O4", "Li", 4.05),
    ("LiFePO4", "Li0–1FePO4", "Li", 3.45), ("Li4Ti5O12", "Li4–7Ti5O12", "Li", 1.55),
    ("Mg-Mo6S8", "Mg0–2Mo6S8", "Mg", 1.1), ("Zn-V2O5", "Zn0–1V2O5", "Zn", 0.9),
]


def export_files(data: Path) -> list[Path]:
    if data.is_file():
        return [data]
    files = sorted(p for p in data.glob("*.csv") if p.name != "candidates.csv")
    if not files:
        raise SystemExit(f"no *.csv export in {data}")
    return files


def holdout_candidates(holdout: Path | None, destination: Path):
    """candidates.csv from the holdout export (id, formula, working_ion, spacegroup) plus the sanity set; the truth."""
    import pandas as pd

    rows, truth = [], {}
    if holdout:
        table = pd.read_csv(holdout, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        for _, row in table.iterrows():
            ion = row["Battid"].rsplit("_", 1)[-1]
            rows.append({"id": row["Battid"], "formula": row["Reduced Cell Formula"], "working_ion": ion,
                         "spacegroup": row.get("Spacegroup", ""), "type": row.get("Type", "")})
            truth[row["Battid"]] = float(row["Average Voltage"])
    for name, formula, ion, _ in SANITY:
        rows.append({"id": f"sanity-{name}", "formula": formula, "working_ion": ion, "spacegroup": "", "type": ""})
    destination.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(destination, index=False)
    return truth


def print_cv_scores(name: str, evaluation, ions: dict) -> float:
    """Print one model's 5-fold CV MAE / R2 over all ions and on the Li rows; return the all-ion MAE (V)."""
    from assets.electrodes.evaluation import regression_metrics

    cv = evaluation.query("subset == 'cv'")
    li = cv[cv["battery_id"].map(ions) == "Li"]
    every = regression_metrics(cv["true"], cv["predicted"])
    print(f"cv_mae_V_{name}: {every['mae']:.3f}")
    print(f"cv_r2_{name}: {every['r2']:.3f}")
    if len(li) and len(li) < len(cv):
        only_li = regression_metrics(li["true"], li["predicted"])
        print(f"cv_mae_V_Li_{name}: {only_li['mae']:.3f}")
        print(f"cv_r2_Li_{name}: {only_li['r2']:.3f}")
    return every["mae"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="a Battery Explorer export CSV or a folder of them")
    parser.add_argument("--holdout", type=Path, help="an export to score after training on all of --data")
    parser.add_argument("--partition", default="all", help="working-ion partition to run (all, Li, Mg, ...)")
    parser.add_argument("--full", action="store_true", help="paper-scale model sizes (slower)")
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="electrodes_real_"))
    os.environ["MATERIALS_DATA"] = str(root)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        return run(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(args, root: Path) -> int:
    import numpy as np
    from dagster import DagsterInstance, materialize

    from assets.electrodes.defs import ASSETS
    from assets.electrodes.evaluation import regression_metrics
    from resources.cluster import DaskResource
    from resources.compute import ComputeResource
    from resources.storage import MaterialsStorage

    raw = root / "raw" / "electrodes"
    raw.mkdir(parents=True)
    for path in export_files(args.data):
        shutil.copy(path, raw / path.name)
    truth = holdout_candidates(args.holdout, root / "candidates" / "candidates.csv")
    network = {"epochs": 150, "patience": 20} if args.full else {}
    composition = {"epochs": 80, "d_model": 96} if args.full else {}
    ops = {
        "electrode_records": {"config": {"use_api": False, "use_embedded": "never"}},
        "electrode_split": {"config": {"test_fraction": 0.0, "n_folds": 5}},
        "electrode_forest": {"config": {"n_estimators": 500 if args.full else 200}},
        "electrode_network": {"config": network},
        "electrode_composition": {"config": composition},
        "electrode_predictions": {"config": {"candidates_file": str(root / "candidates" / "candidates.csv")}},
    }
    resources = {
        "compute": ComputeResource(device="cpu", seed=0, num_threads=2),
        "dask": DaskResource(n_workers=2),
        "io_manager": MaterialsStorage(root=str(root)),
    }
    print(f"data: {args.data} ({', '.join(p.name for p in export_files(args.data))}); partition {args.partition}")
    started = time.perf_counter()
    with DagsterInstance.ephemeral() as instance:
        result = materialize(ASSETS, resources=resources, instance=instance, run_config={"ops": ops},
                             partition_key=args.partition, raise_on_error=False)
    seconds = time.perf_counter() - started
    if not result.success:
        print("the run failed", file=sys.stderr)
        return 1
    records = result.output_for_node("electrode_records")
    features = result.output_for_node("electrode_features")
    ions = dict(zip(features["battery_id"], features["working_ion"]))
    print(f"records: {len(records)}  features: {features.shape[1] - 8}  ions: "
          + ", ".join(f"{k} {v}" for k, v in records["working_ion"].value_counts().items()))
    from assets.electrodes.intervals import LEVELS, coverage
    from assets.electrodes.predict import ENSEMBLES, ensemble_evaluations

    bundles = {name: result.output_for_node("electrode_baseline" if name == "median" else f"electrode_{name}")
               for name in MODELS}
    evaluations = {name: bundle["evaluation"] for name, bundle in bundles.items()}
    scores = {name: print_cv_scores(name, evaluation, ions)
              for name, evaluation in {**evaluations, **ensemble_evaluations(bundles)}.items()}
    predictions = result.output_for_node("electrode_predictions")
    chosen = predictions["model"].iloc[0]
    scored = predictions[predictions["id"].isin(truth)]
    if truth:
        true = scored["id"].map(truth).to_numpy(float)
        for name in (*MODELS, *ENSEMBLES):
            predicted = scored[f"{name}_prediction"].to_numpy(float)
            ok = np.isfinite(predicted)
            print(f"holdout_mae_V_{name}: {np.mean(np.abs(predicted[ok] - true[ok])):.3f}")
        ok = np.isfinite(scored["prediction"].to_numpy(float))
        print(f"holdout_rows: {int(ok.sum())} of {len(truth)}")
        print(f"holdout_mae_V: {np.mean(np.abs(scored['prediction'].to_numpy(float)[ok] - true[ok])):.3f}")
        for level in LEVELS:
            print(f"holdout_coverage{round(100 * level)}: {coverage(true[ok], scored[ok], level):.3f}")
    low, high = records["average_voltage_V"].min(), records["average_voltage_V"].max()
    inside = predictions[[f"{n}_prediction" for n in MODELS if n != "median"]].stack()
    print(f"training_target_range_V: {low:.2f} to {high:.2f}; predictions outside it: {int(((inside < low) | (inside > high)).sum())}")
    sanity = predictions[predictions["id"].str.startswith("sanity-")].set_index("id")
    for name, _, _, known in SANITY:
        row = sanity.loc[f"sanity-{name}"]
        print(f"sanity_{name}_V: {row['prediction']:.2f} (80 %: {row['lower_80_V']:.2f} to {row['upper_80_V']:.2f}; "
              f"known about {known})")
    for key, value in ANCHOR.items():
        print(f"{key}: {value}")
    print(f"pipeline_model: {chosen}")
    print(f"seconds: {seconds:.0f}")
    best = min((name for name in scores if name != "median"), key=scores.get)
    print(f"best_cv_mae_V ({best}, all ions): {scores[best]:.3f}")
    return 0


if __name__ == "__main__":
    from benchmarks import results

    raise SystemExit(results.run(main, "electrodes_real"))
