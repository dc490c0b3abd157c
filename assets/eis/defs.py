"""Dagster wiring of the `eis` pipeline (science lives in the sibling modules).

eis_simulated_spectra -> eis_spectra -> eis_interpolated -> eis_split -> eis_label_fitted_spectra -> eis_features
-> eis_circuit_classifier, eis_parameter_regressors -> eis_predictions -> eis_circuit_fits
"""

import time
from pathlib import Path
from typing import Literal

import dagster as dg
import numpy as np
import pandas as pd

from assets.eis.defs_models import eis_circuit_classifier, eis_parameter_regressors
from assets.eis.defs_predictions import eis_circuit_fits, eis_predictions
from assets.eis.wiring import (
    PIPELINE,
    SIMULATED_EXPORT,
    SIMULATED_SOURCE,
    TSFRESH_WORKERS,
    ConventionsConfig,
    evidence_of,
    examples_file,
    unlabelled_dir,
)
from resources.compute import ComputeResource
from resources.datapaths import cache_dir, raw_dir, write_export_csv
from resources.plots import round_sig
from resources.quarantine import report_rejections

# ---- 1. simulation -----------------------------------------------------------------------


class SimulationConfig(dg.Config):
    spectra_per_class: int = 50
    points_min: int = 24
    points_max: int = 83
    freq_min_range: list[float] = [0.01, 10.0]  # rad/s, lowest frequency (log-uniform)
    freq_max_range: list[float] = [1e5, 2e6]  # rad/s, highest frequency (log-uniform)
    noise_relative_std: float = 0.005  # of |Z|, on Re and Im
    noise_absolute_ohm: float = 0.0
    ranges: dict[str, list[float]] = {}  # parameter kind -> [low, high]; overrides DEFAULT_RANGES
    unlabelled_examples: int = 6  # written to examples/eis/ (predicted only when the user has no unlabelled files)


@dg.asset(group_name=PIPELINE)
def eis_simulated_spectra(context: dg.AssetExecutionContext, config: SimulationConfig, compute: ComputeResource) -> pd.DataFrame:
    """Labelled spectra of the nine circuit classes in the challenge CSV format (freq in rad/s)."""
    from assets.eis import simulate
    from assets.eis.report import nyquist_markdown

    settings = simulate.SimulationSettings(
        spectra_per_class=config.spectra_per_class,
        points_min=config.points_min,
        points_max=config.points_max,
        freq_min_range=tuple(config.freq_min_range),
        freq_max_range=tuple(config.freq_max_range),
        noise_relative_std=config.noise_relative_std,
        noise_absolute_ohm=config.noise_absolute_ohm,
        ranges={**simulate.DEFAULT_RANGES, **{kind: tuple(bounds) for kind, bounds in config.ranges.items()}},
    )
    started = time.perf_counter()
    batches = simulate.simulate_all(settings, compute.rng(offset=1))
    simulate_s = time.perf_counter() - started
    frame = simulate.as_challenge_frame(batches)
    csv_path = write_export_csv(frame, SIMULATED_EXPORT)
    examples_written = _write_unlabelled_examples(config, settings, compute)
    first_rows = frame.groupby("Circuit").head(1)
    context.add_output_metadata(
        {
            "n_spectra": len(frame),
            "per_class": dg.MetadataValue.json(frame["Circuit"].value_counts().sort_index().to_dict()),
            "simulate_seconds": round_sig(simulate_s),
            "spectra_per_second": round_sig(len(frame) / max(simulate_s, 1e-9)),
            "csv": dg.MetadataValue.path(str(csv_path)),
            "unlabelled_examples_written": examples_written,
            "nyquist": dg.MetadataValue.md(
                nyquist_markdown(
                    {f"{SIMULATED_SOURCE}#{row} ({b.circuit.name})": b.impedance[0, : b.n_points[0]] for b, row in zip(batches, first_rows.iloc[:, 0])},
                    "first simulated spectrum per class (id as in the export)",
                )
            ),
        }
    )
    return frame


def _write_unlabelled_examples(config: SimulationConfig, settings, compute: ComputeResource) -> int:
    """A few unlabelled synthetic spectra in examples/eis/ (never under raw/), so a fresh machine ends
    with predictions; they are predicted only while the user has no unlabelled files."""
    from assets.eis import simulate
    from resources.datapaths import atomic_write_bytes

    if config.unlabelled_examples <= 0:
        examples_file().unlink(missing_ok=True)
        return 0
    rng = compute.rng(offset=2)
    names = rng.choice(sorted(simulate.CIRCUITS), config.unlabelled_examples)
    batches = [simulate.simulate_class(simulate.CIRCUITS[name], 1, settings, rng) for name in names]
    frame = simulate.as_challenge_frame(batches, labelled=False)
    atomic_write_bytes(examples_file(), frame.to_csv(index=False).encode())
    return len(frame)


# ---- 2. parsing and validation -------------------------------------------------------------


class SpectraConfig(ConventionsConfig):
    # auto: the simulated spectra join only when no user labelled spectrum was accepted;
    # always: they join the user's (training only: the test split holds user spectra); never.
    include_simulated: Literal["auto", "always", "never"] = "auto"
    max_rejected_share: float = 0.05  # check: rejected records / all records of the user's labelled files
    check_severity: Literal["ERROR", "WARN"] = "ERROR"  # ERROR blocks downstream assets; WARN lets the run go on


def use_simulated(option: str, n_user_spectra: int) -> bool:
    return option == "always" or (option == "auto" and n_user_spectra == 0)


@dg.asset(
    group_name=PIPELINE,
    check_specs=[dg.AssetCheckSpec("rejected_share_within_bound", asset="eis_spectra", blocking=True)],
)
def eis_spectra(context: dg.AssetExecutionContext, config: SpectraConfig, eis_simulated_spectra: pd.DataFrame):
    """Every labelled CSV under raw/eis/ (not unlabelled/, not generic tables), validated; the simulated
    spectra join per `include_simulated`. The check bounds the rejected share of the user's records only."""
    from assets.eis import formats

    conventions = config.conventions()
    files = formats.labelled_files(raw_dir(PIPELINE), unlabelled_dir())
    spectra, rejections = formats.read_labelled_folder(raw_dir(PIPELINE), unlabelled_dir(), conventions)
    accepted = {str(path): 0 for path in files}
    for spectrum in spectra:
        accepted[spectrum.source] = accepted.get(spectrum.source, 0) + 1
    expected = {r.source: formats.count_data_rows(Path(r.source)) for r in rejections if r.row is None}
    summary = report_rejections(context.log, PIPELINE, rejections, accepted, expected)
    table = formats.spectra_table(spectra, origin="user")
    simulated = use_simulated(config.include_simulated, len(table))
    if simulated:
        found, refused = formats.parse_challenge_frame(eis_simulated_spectra, SIMULATED_SOURCE, "rad_s", labelled=True)
        if refused:
            context.log.warning(f"eis: {len(refused)} simulated spectra failed validation (a simulator bug): {refused[0].reason}")
        table = pd.concat([table, formats.spectra_table(found, origin="synthetic")], ignore_index=True)
    if table.empty:
        raise dg.Failure(
            f"no labelled spectra: {summary.n_records} user records, all rejected, and include_simulated={config.include_simulated!r}; "
            f"see {summary.quarantine_path}"
        )
    context.log.info(
        f"eis: {int((table['origin'] == 'user').sum())} user labelled spectra from {len(files)} files, "
        f"{int((table['origin'] == 'synthetic').sum())} simulated (include_simulated={config.include_simulated})"
    )
    yield dg.Output(
        table,
        metadata={
            **summary.metadata(),
            "n_spectra": len(table),
            "n_user_spectra": int((table["origin"] == "user").sum()),
            "n_simulated_spectra": int((table["origin"] == "synthetic").sum()),
            "simulated_included": simulated,
            "per_class": dg.MetadataValue.json(table["circuit"].value_counts().sort_index().to_dict()),
            "per_source": dg.MetadataValue.json(table["source"].value_counts().to_dict()),
        },
    )
    yield summary.check_result("rejected_share_within_bound", config.max_rejected_share, config.check_severity)


# ---- 3. interpolation ----------------------------------------------------------------------


class InterpolationConfig(dg.Config):
    grid_low: float = 10.0
    grid_high: float = 1e5
    grid_unit: Literal["hz", "rad_s"] = "rad_s"  # default: the challenge files' freq numbers
    grid_points: int = 40


@dg.asset(group_name=PIPELINE)
def eis_interpolated(context: dg.AssetExecutionContext, config: InterpolationConfig, eis_spectra: pd.DataFrame) -> dict:
    """Every spectrum that spans the common log grid, interpolated onto it (no extrapolation)."""
    from assets.eis.features import GridSettings, interpolate_table
    from assets.eis.report import nyquist_markdown

    grid = GridSettings(config.grid_low, config.grid_high, config.grid_unit, config.grid_points).omega_rad_s()
    kept, z_on_grid = interpolate_table(eis_spectra, grid)
    examples = {f"{row.spectrum_id} ({row.circuit})": z_on_grid[i] for i, row in kept.head(5).iterrows()}
    if len(kept) < len(eis_spectra):
        context.log.warning(f"eis: {len(eis_spectra) - len(kept)} labelled spectra do not span the grid {grid[0]:.4g}..{grid[-1]:.4g} rad/s and are left out")
    context.add_output_metadata(
        {
            "n_interpolated": len(kept),
            "n_excluded_not_spanning_grid": len(eis_spectra) - len(kept),
            "grid_rad_s": f"{grid[0]:.4g} .. {grid[-1]:.4g} ({len(grid)} points)",
            "nyquist": dg.MetadataValue.md(nyquist_markdown(examples, "interpolated")) if examples else "none",
        }
    )
    return {"spectra": kept, "z": z_on_grid, "grid_rad_s": grid}


# ---- 4. split and features -----------------------------------------------------------------


class SplitConfig(dg.Config):
    test_fraction: float = 0.25
    cv_folds: int = 0  # > 1: stratified K-fold; the test split is fold `cv_fold` (benchmarks.eis_real)
    cv_fold: int = 0


@dg.asset(group_name=PIPELINE)
def eis_split(context: dg.AssetExecutionContext, config: SplitConfig, compute: ComputeResource, eis_interpolated: dict) -> pd.DataFrame:
    """Stratified train/test split by circuit, stored so every model uses the same one. When user
    spectra exist, the test split holds user spectra only (simulated ones may join training)."""
    from assets.eis.models import stratified_split

    spectra = eis_interpolated["spectra"]
    split = stratified_split(
        spectra["spectrum_id"].tolist(), spectra["circuit"].tolist(), config.test_fraction, compute.seed,
        origins=spectra["origin"].tolist(), cv_folds=config.cv_folds, cv_fold=config.cv_fold,
    )
    test = split[split["split"] == "test"]
    context.add_output_metadata(
        {
            "counts": dg.MetadataValue.json(split["split"].value_counts().to_dict()),
            "test_origins": dg.MetadataValue.json(test["origin"].value_counts().to_dict()),
            "n_test": len(test),
        }
    )
    return split


class LabelFittedConfig(dg.Config):
    # Spectra simulated per class like the user's labelled training spectra (simulate.LabelFittedSettings);
    # they join every classifier's training rows, never the test split. 0 turns this off.
    spectra_per_class: int = 300
    jitter_decades: float = 0.3  # log10 jitter of resistances, capacitances, CPE Q, L, times
    exponent_jitter: float = 0.03  # CPE and Warburg exponents
    noise_relative_std: float = 0.0  # of |Z|; the challenge spectra are noise-free


@dg.asset(group_name=PIPELINE)
def eis_label_fitted_spectra(
    context: dg.AssetExecutionContext, config: LabelFittedConfig, compute: ComputeResource, eis_spectra: pd.DataFrame,
    eis_interpolated: dict, eis_split: pd.DataFrame,
) -> dict:
    """Extra training spectra from a simulator fitted to the training split's labelled user spectra:
    each class's parameters drawn from its training values (jittered, drawn independently), on the
    training spectra's own frequency grids, interpolated onto the common grid. Empty without user
    labelled spectra (the demo): our default simulator's spectra are then the training data already."""
    from assets.eis import simulate
    from assets.eis.circuits import CIRCUITS
    from assets.eis.features import interpolate_spectrum
    from assets.eis.models import parameter_matrix
    from assets.eis.report import nyquist_markdown

    settings = simulate.LabelFittedSettings(config.spectra_per_class, config.jitter_decades, config.exponent_jitter, config.noise_relative_std)
    train_ids = set(eis_split.loc[(eis_split["split"] == "train") & (eis_split["origin"] == "user"), "spectrum_id"])
    training = eis_spectra[eis_spectra["spectrum_id"].isin(train_ids) & eis_spectra["parameters"].notna()]
    grid = eis_interpolated["grid_rad_s"]
    rng = compute.rng(offset=3)
    circuits, rows, raw_omegas, raw_z, examples = [], [], [], [], {}
    for name, group in ([] if config.spectra_per_class <= 0 else sorted(training.groupby("circuit"))):
        grids = [np.asarray(omega) for omega in group["omega_rad_s"]]
        batch = simulate.simulate_like_labels(CIRCUITS[name], parameter_matrix(group["parameters"], name), grids, settings, rng)
        for i, n in enumerate(batch.n_points):
            raw_omegas.append(batch.omega[i, :n])
            raw_z.append(batch.impedance[i, :n])
            rows.append(interpolate_spectrum(raw_omegas[-1], raw_z[-1], grid))
        circuits += [name] * len(batch.n_points)
        examples[f"label_fitted ({name})"] = rows[-1]
    spectra = pd.DataFrame({"spectrum_id": [f"label_fitted#{k}" for k in range(len(circuits))], "circuit": circuits})
    context.add_output_metadata(
        {
            "n_spectra": len(spectra),
            "n_training_user_spectra_fitted": len(training),
            "per_class": dg.MetadataValue.json(spectra["circuit"].value_counts().sort_index().to_dict()),
            "nyquist": dg.MetadataValue.md(nyquist_markdown(examples, "one label-fitted spectrum per class (on the grid)")) if examples else "none",
        }
    )
    z = np.array(rows) if rows else np.zeros((0, len(grid)), dtype=complex)
    return {"spectra": spectra, "z": z, "omega_rad_s": raw_omegas, "z_raw": raw_z}


class FeaturesConfig(dg.Config):
    fc_preset: Literal["minimal", "compact", "efficient", "comprehensive"] = "compact"
    fdr_level: float = 0.05
    max_features: int = 40  # best relevant features kept (by smallest p-value over classes)
    # Fit all nine circuits to every spectrum and give the classifier each fit's quality (evidence.py).
    circuit_evidence: bool = True
    # Random restarts of each evidence fit that does not reproduce its spectrum: better fits of every circuit
    # (CV accuracy 0.525 -> 0.600 on the public dev spectra with 10; README), at about 3x the fitting time.
    evidence_random_starts: int = 10


@dg.asset(group_name=PIPELINE)
def eis_features(
    context: dg.AssetExecutionContext, config: FeaturesConfig, compute: ComputeResource, eis_spectra: pd.DataFrame,
    eis_interpolated: dict, eis_split: pd.DataFrame, eis_label_fitted_spectra: dict,
) -> dict:
    """tsfresh features (selection fitted on the training split's spectra, its settings stored for
    prediction), shape features and the circuit-fit evidence, of every spectrum and of the
    label-fitted training spectra."""
    from assets.eis import features

    ids = eis_interpolated["spectra"]["spectrum_id"].tolist()
    z_by_id = dict(zip(ids, eis_interpolated["z"]))
    train = eis_split[eis_split["split"] == "train"]
    started = time.perf_counter()
    jobs = TSFRESH_WORKERS
    train_z = np.array([z_by_id[i] for i in train["spectrum_id"]])
    train_full = features.extract(train["spectrum_id"].tolist(), train_z, jobs, config.fc_preset)
    full_s = time.perf_counter() - started
    context.log.info(f"extracted {train_full.shape[1]} features of {len(train)} training spectra in {full_s:.1f} s")
    columns, n_relevant = features.select_relevant(train_full, train["circuit"].tolist(), jobs, config.fdr_level, config.max_features)
    kind_to_fc = features.settings_for_columns(columns)
    started = time.perf_counter()
    table = _feature_table(ids, eis_interpolated["z"], jobs, kind_to_fc, columns)
    selected_s = time.perf_counter() - started
    extra = eis_label_fitted_spectra["spectra"]
    label_fitted = _feature_table(extra["spectrum_id"].tolist(), eis_label_fitted_spectra["z"], jobs, kind_to_fc, columns)
    label_fitted.insert(1, "circuit", extra["circuit"].to_numpy())
    evidence_s = 0.0
    if config.circuit_evidence:
        from assets.eis.evidence import circuit_evidence

        started = time.perf_counter()
        table = pd.concat([table, evidence_of(ids, eis_spectra, compute, config.evidence_random_starts)], axis=1)
        label_fitted = pd.concat([label_fitted, circuit_evidence(eis_label_fitted_spectra["omega_rad_s"], eis_label_fitted_spectra["z_raw"], compute.torch_device(),
                                                                 config.evidence_random_starts, cache_dir(PIPELINE) / "evidence")], axis=1)
        evidence_s = time.perf_counter() - started
    context.add_output_metadata(
        {
            "n_spectra": len(table),
            "n_label_fitted_spectra": len(label_fitted),
            "n_candidate_features": train_full.shape[1],
            "n_relevant_on_train": n_relevant,
            "n_selected": len(columns),
            "n_shape_features": table.shape[1] - 1 - len(columns),
            "candidate_extraction_seconds_train": round_sig(full_s),
            "selected_extraction_seconds_all": round_sig(selected_s),
            "circuit_evidence_seconds": round_sig(evidence_s),
            "selected": dg.MetadataValue.md("\n".join(f"- `{c}`" for c in columns)),
        }
    )
    return {
        "features": table,
        "label_fitted": label_fitted,
        "tsfresh_columns": columns,
        "kind_to_fc_parameters": kind_to_fc,
        "grid_rad_s": eis_interpolated["grid_rad_s"],
        "selection": {"fc_preset": config.fc_preset, "fdr_level": config.fdr_level, "max_features": config.max_features},
        "circuit_evidence": config.circuit_evidence,
        "evidence_random_starts": config.evidence_random_starts,
    }


def _feature_table(ids: list[str], z_on_grid: np.ndarray, jobs: int, kind_to_fc: dict, columns: list[str]) -> pd.DataFrame:
    """spectrum_id, then the selected tsfresh features (`columns`) and the shape features: one row per id."""
    from assets.eis.features import shape_feature_columns
    from assets.eis.predict import feature_table

    if ids:
        table = feature_table(ids, z_on_grid, kind_to_fc, jobs).reset_index(drop=True)
    else:
        table = pd.DataFrame(columns=columns + shape_feature_columns(z_on_grid.shape[1]), dtype=float)
    table.insert(0, "spectrum_id", ids)
    return table


defs = dg.Definitions(
    assets=[
        eis_simulated_spectra,
        eis_spectra,
        eis_interpolated,
        eis_split,
        eis_label_fitted_spectra,
        eis_features,
        eis_circuit_classifier,
        eis_parameter_regressors,
        eis_predictions,
        eis_circuit_fits,
    ]
)
