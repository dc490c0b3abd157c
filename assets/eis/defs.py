"""Dagster wiring of the `eis` pipeline (science lives in the sibling modules).

eis_simulated_spectra -> eis_spectra -> eis_interpolated -> eis_split -> eis_label_fitted_spectra -> eis_features
-> eis_circuit_classifier, eis_parameter_regressors -> eis_predictions -> eis_circuit_fits
"""

import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import dagster as dg
import numpy as np
import pandas as pd

from resources.compute import ComputeResource
from resources.datapaths import Rejection, cache_dir, examples_dir, raw_dir, relative_to_root, write_export_csv, write_quarantine
from resources.plots import confusion_matrix_markdown, round_sig, table_markdown
from resources.quarantine import report_rejections

PIPELINE = "eis"
SIMULATED_SOURCE = "synthetic"  # source of every simulated spectrum in tables and exports
SIMULATED_EXPORT = "eis_simulated_spectra.csv"
UNLABELLED_EXAMPLES_FILE = "unlabelled_examples.csv"
FreqUnitOption = Literal["hz", "rad_s"]


def _unlabelled_dir():
    return raw_dir(PIPELINE) / "unlabelled"


def _examples_file():
    return examples_dir(PIPELINE) / UNLABELLED_EXAMPLES_FILE


class ConventionsConfig(dg.Config):
    """Per-source conventions of the user's files; the defaults are the challenge data's."""

    freq_unit: FreqUnitOption = "rad_s"  # unit of `freq` in challenge-format CSVs
    table_freq_unit: FreqUnitOption = "hz"  # unit of a generic table's frequency column when its header names none
    warburg_exponent_scale: float = 6.5  # challenge files store Rs_Ws W1_p = exponent x 6.5; 1.0 = the exponent itself

    def conventions(self):
        from assets.eis.formats import SourceConventions

        return SourceConventions(self.freq_unit, self.table_freq_unit, self.warburg_exponent_scale)


def _unlabelled_spectra(conventions):
    """(user spectra table, user rejections, user files read, whether the embedded examples were used).

    User files: everything under raw/eis/unlabelled/ plus generic tables and instrument files anywhere
    under raw/eis/. Without any user file, the embedded synthetic examples (examples/eis/) stand in,
    with source "synthetic"."""
    from assets.eis import formats

    files = formats.unlabelled_files(_unlabelled_dir(), raw_dir(PIPELINE))
    if files:
        spectra, rejections = formats.read_unlabelled_folder(_unlabelled_dir(), conventions, raw_dir(PIPELINE))
        return formats.spectra_table(spectra), rejections, files, False
    if not _examples_file().exists():
        return formats.spectra_table([]), [], [], False
    frame = pd.read_csv(_examples_file(), dtype=str, keep_default_na=False)
    spectra, _ = formats.parse_challenge_frame(frame, SIMULATED_SOURCE, "rad_s", labelled=False)
    return formats.spectra_table(spectra, origin="synthetic"), [], [], True


# tsfresh runs in process (0 workers): its worker pool forks, and forking a process in which
# torch or TensorFlow already started threads (the in-process demo, the fitting step) can deadlock.
TSFRESH_WORKERS = 0


def _xgboost_threads(compute: ComputeResource) -> int:
    # One thread unless asked: eis_job trains two models at once, and OpenMP threads that
    # spin-wait on an oversubscribed small machine made a 8 s fit take 3 minutes.
    return max(compute.num_threads, 1)


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
        _examples_file().unlink(missing_ok=True)
        return 0
    rng = compute.rng(offset=2)
    names = rng.choice(sorted(simulate.CIRCUITS), config.unlabelled_examples)
    batches = [simulate.simulate_class(simulate.CIRCUITS[name], 1, settings, rng) for name in names]
    frame = simulate.as_challenge_frame(batches, labelled=False)
    atomic_write_bytes(_examples_file(), frame.to_csv(index=False).encode())
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
    files = formats.labelled_files(raw_dir(PIPELINE), _unlabelled_dir())
    spectra, rejections = formats.read_labelled_folder(raw_dir(PIPELINE), _unlabelled_dir(), conventions)
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
        table = pd.concat([table, _evidence_of(ids, eis_spectra, compute, config.evidence_random_starts)], axis=1)
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


def _evidence_of(ids: list[str], spectra: pd.DataFrame, compute: ComputeResource, random_starts: int) -> pd.DataFrame:
    """Circuit evidence of these spectra (rows as ids), from their measured points in `spectra` (cached)."""
    from assets.eis.evidence import circuit_evidence

    raw = spectra.set_index("spectrum_id").loc[ids]
    impedances = [np.asarray(a) + 1j * np.asarray(b) for a, b in zip(raw["z_real"], raw["z_imag"])]
    return circuit_evidence([np.asarray(o) for o in raw["omega_rad_s"]], impedances, compute.torch_device(), random_starts, cache_dir(PIPELINE) / "evidence")


# ---- 5. classifier -------------------------------------------------------------------------


FeatureSet = Literal["tsfresh", "shape", "evidence", "tsfresh+shape", "shape+evidence"]


class BoostConfig(dg.Config):
    n_estimators: int = 60
    max_depth: int = 4
    learning_rate: float = 0.15
    subsample: float = 1.0  # share of training rows per tree
    colsample_bytree: float = 1.0  # share of features per tree (0.3 suits many label-fitted spectra)
    # tsfresh: the selected tsfresh features; shape: the scale-invariant features (features.shape_features);
    # evidence: every circuit's fit quality (evidence.py; needs eis_features' circuit_evidence); "+": both.
    # The others are scored beside the chosen one.
    feature_set: FeatureSet = "shape+evidence"
    compare_feature_sets: bool = True  # also score the other feature sets beside the chosen one and the baseline

    def settings(self):
        from assets.eis.models import BoostSettings

        return BoostSettings(self.n_estimators, self.max_depth, self.learning_rate, self.subsample, self.colsample_bytree)


def feature_columns(bundle: dict, feature_set: str) -> list[str]:
    from assets.eis.evidence import PREFIX

    table_columns = list(bundle["features"].columns[1:])
    tsfresh = bundle.get("tsfresh_columns", [c for c in table_columns if not c.startswith(("shape__", PREFIX))])
    shape = [c for c in table_columns if c.startswith("shape__")]
    evidence = [c for c in table_columns if c.startswith(PREFIX)]
    return {"tsfresh": tsfresh, "shape": shape, "evidence": evidence, "tsfresh+shape": tsfresh + shape, "shape+evidence": shape + evidence}[feature_set]


def available_feature_sets(bundle: dict) -> tuple[str, ...]:
    """The feature sets this bundle can give (evidence only when eis_features fitted the circuits)."""
    return ("tsfresh", "shape", "tsfresh+shape") + (("evidence", "shape+evidence") if bundle.get("circuit_evidence") else ())


def _train_test(table: pd.DataFrame, split: pd.DataFrame, columns: list[str]):
    """(X_train, X_test, labels_train, labels_test, test rows) of table rows, aligned on spectrum_id."""
    merged = split.merge(table, on="spectrum_id", how="inner")
    is_train = merged["split"] == "train"
    values = merged[columns].to_numpy(dtype=float)
    return values[is_train], values[~is_train], merged["circuit"][is_train].tolist(), merged["circuit"][~is_train].tolist(), merged.loc[~is_train, ["spectrum_id"]]


def _fit_and_score(x_train, x_test, y_train, y_test, classes, config: BoostConfig, compute: ComputeResource):
    from assets.eis.models import classification_metrics, fit_classifier

    model = fit_classifier(x_train, y_train, classes, config.settings(), compute.xgboost_device(), _xgboost_threads(compute), compute.seed)
    predicted = [classes[i] for i in model.predict(x_test)] if len(x_test) else []
    return model, classification_metrics(y_test, predicted, classes), predicted


HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1")


class ClassifierConfig(BoostConfig):
    calibration_folds: int = 5  # out-of-fold predictions of the training spectra: temperature and set threshold
    set_level: float = 0.9  # coverage the circuit sets promise


@dg.asset(group_name=PIPELINE)
def eis_circuit_classifier(
    context: dg.AssetExecutionContext,
    config: ClassifierConfig,
    compute: ComputeResource,
    eis_features: dict,
    eis_split: pd.DataFrame,
    eis_interpolated: dict,
    eis_label_fitted_spectra: dict,
) -> dict:
    """XGBoost circuit classifier on the chosen feature set; the other feature sets and a raw-grid
    baseline (Re, Im at the grid points) scored beside it on the same split, each trained on the
    training split plus the label-fitted spectra. Test metrics are on the test split only (user
    spectra when there are any), with per-source accuracy. The chosen model's probabilities are
    calibrated, and its 90 % circuit sets set, on out-of-fold predictions of the training split (calibration.py)."""
    from assets.eis import calibration as calibrating
    from assets.eis.features import raw_grid_table
    from assets.eis.models import fit_classifier, per_source_accuracy, side_by_side

    feature_table, label_fitted = eis_features["features"], eis_features["label_fitted"]
    classes = sorted(eis_split["circuit"].unique())
    raw = raw_grid_table(eis_interpolated["spectra"]["spectrum_id"].tolist(), eis_interpolated["z"])
    extra = eis_label_fitted_spectra["spectra"]
    raw_extra = raw_grid_table(extra["spectrum_id"].tolist(), eis_label_fitted_spectra["z"])
    if config.feature_set not in available_feature_sets(eis_features):
        raise dg.Failure(f"feature_set {config.feature_set!r} needs eis_features' circuit_evidence: true")
    names = available_feature_sets(eis_features) if config.compare_feature_sets else (config.feature_set,)
    candidates = {f"{name}_xgboost": (feature_table, label_fitted, feature_columns(eis_features, name)) for name in names}
    candidates["raw_grid_xgboost"] = (raw, raw_extra, list(raw.columns[1:]))
    chosen = f"{config.feature_set}_xgboost"
    results, model, predicted_test = {}, None, None
    for name, (table, extra_table, columns) in candidates.items():
        x_train, x_test, y_train, y_test, test_rows = _train_test(table, eis_split, columns)
        x_train = np.vstack([x_train, extra_table[columns].to_numpy(dtype=float)])
        y_train = y_train + extra["circuit"].tolist()
        fitted, metrics, predicted = _fit_and_score(x_train, x_test, y_train, y_test, classes, config, compute)
        results[name] = metrics
        if name == chosen:
            model, predicted_test, truth_test, test_ids = fitted, predicted, y_test, test_rows["spectrum_id"].tolist()
    columns = feature_columns(eis_features, config.feature_set)
    training = eis_split[eis_split["split"] == "train"]

    def fit(x, y):
        return fit_classifier(x, [classes[i] for i in y], classes, config.settings(), compute.xgboost_device(), _xgboost_threads(compute), compute.seed)

    calibration, out_of_fold = calibrating.calibrate_on_training(fit, feature_table, training, label_fitted, columns, classes,
                                                                 config.calibration_folds, compute.seed, config.set_level)
    test_scores = calibrating.held_out_scores(model, calibration, feature_table, test_ids, truth_test, columns, classes)
    results[chosen].update({key: value for key, value in test_scores.items() if not key.startswith("reliability")})
    metrics, baseline = results[chosen], results["raw_grid_xgboost"]
    model_id = str(uuid.uuid4())
    summary, per_class = side_by_side(results, classes)
    sources = eis_interpolated["spectra"].set_index("spectrum_id").loc[test_ids, "source"].tolist()
    by_source = per_source_accuracy(sources, truth_test, predicted_test)
    context.log.info(
        f"eis classifier ({chosen}): test accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f} on {len(test_ids)} spectra; "
        f"raw-grid baseline {baseline['accuracy']:.3f}"
    )
    context.add_output_metadata(
        {
            "model_id": model_id,
            "feature_set": config.feature_set,
            "n_test": len(test_ids),
            "n_label_fitted_training": len(extra),
            **{name: round_sig(metrics[name]) for name in HEADLINE},
            "baseline_accuracy": round_sig(baseline["accuracy"]),
            "baseline_macro_f1": round_sig(baseline["macro_f1"]),
            **{f"{model_name.replace('+', '_')}_accuracy": round_sig(m["accuracy"]) for model_name, m in results.items() if model_name not in (chosen, "raw_grid_xgboost")},
            "metrics_side_by_side": dg.MetadataValue.md(table_markdown(summary.round(4))),
            "per_source_accuracy": dg.MetadataValue.md(table_markdown(by_source.round(4))),
            "per_class_f1": dg.MetadataValue.md(table_markdown(per_class.round(4))),
            "confusion_matrix": dg.MetadataValue.md(confusion_matrix_markdown({f"{chosen} (test split)": np.array(metrics["confusion"])}, classes)),
            "confusion_matrix_baseline": dg.MetadataValue.md(confusion_matrix_markdown({"raw grid baseline": np.array(baseline["confusion"])}, classes)),
            **_calibration_metadata(calibration, out_of_fold, test_scores),
        }
    )
    return {
        "model": model,
        "model_id": model_id,
        "classes": classes,
        "feature_columns": columns,
        "calibration": asdict(calibration),  # plain numbers: the storage keeps it as JSON
        "settings": config.model_dump(),
        "metrics": results,
        "chosen": chosen,
        "per_source": by_source,
    }


def _calibration_metadata(calibration, out_of_fold: dict, test_scores: dict) -> dict:
    """Temperature, set threshold, ECE and 90 % set figures out of fold and on the test split, the reliability
    plot and the set-size distribution."""
    from assets.eis.report import reliability_markdown, set_size_markdown

    figures = {"temperature": round_sig(calibration.temperature), "set90_score_threshold": round_sig(calibration.threshold)}
    for label, scores in (("out_of_fold", out_of_fold), ("test", test_scores)):
        figures.update({f"{label}_{key}": round_sig(scores[key]) for key in ("ece_uncalibrated", "ece", "set90_coverage", "set90_mean_size", "set90_empty_share")})
    curves = {"out of fold, raw": out_of_fold["reliability_uncalibrated"], "out of fold, calibrated": out_of_fold["reliability"]}
    if test_scores["set90_size_counts"]:
        curves["test split, calibrated"] = test_scores["reliability"]
    counts = test_scores["set90_size_counts"] or out_of_fold["set90_size_counts"]
    return {
        **figures,
        "set90_size_counts_out_of_fold": dg.MetadataValue.json(out_of_fold["set90_size_counts"]),
        "reliability": dg.MetadataValue.md(reliability_markdown(curves, "reliability of the top probability")),
        "set90_sizes": dg.MetadataValue.md(set_size_markdown(counts, "90 % circuit sets: " + ("test split" if test_scores["set90_size_counts"] else "out of fold"))),
    }


# ---- 6. parameter regressors --------------------------------------------------------------


class RegressorsConfig(BoostConfig):
    feature_set: FeatureSet = "tsfresh"  # parameters: the selected tsfresh features (they carry the scale)
    min_share_beating_dummy: float = 0.5  # check: share of parameters with MAE below the dummy's


@dg.asset(
    group_name=PIPELINE,
    check_specs=[dg.AssetCheckSpec("regressors_beat_dummy", asset="eis_parameter_regressors")],
)
def eis_parameter_regressors(
    context: dg.AssetExecutionContext, config: RegressorsConfig, compute: ComputeResource, eis_features: dict, eis_split: pd.DataFrame, eis_spectra: pd.DataFrame
):
    """Per circuit class: XGBoost on quantile-transformed parameters, against a median dummy."""
    from assets.eis import models

    feature_table = eis_features["features"]
    columns = feature_columns(eis_features, config.feature_set)
    labelled = eis_split.merge(eis_spectra[["spectrum_id", "parameters"]], on="spectrum_id").merge(feature_table, on="spectrum_id")
    regressors, tables = {}, []
    for circuit, rows in labelled.groupby("circuit"):
        train, test = rows[rows["split"] == "train"], rows[rows["split"] == "test"]
        if len(train) < 2:
            context.log.warning(f"{circuit}: {len(train)} train spectra, no regressor")
            continue
        targets = models.parameter_matrix(train["parameters"], circuit)
        regressor = models.fit_parameter_regressor(
            train[columns].to_numpy(float), targets, circuit, config.settings(), compute.xgboost_device(), _xgboost_threads(compute), compute.seed
        )
        regressors[circuit] = regressor
        if test.empty:
            continue
        truth = models.parameter_matrix(test["parameters"], circuit)
        predicted = models.predict_parameters(regressor, test[columns].to_numpy(float))
        dummy = np.repeat(np.median(targets, axis=0, keepdims=True), len(test), axis=0)
        tables.append(models.mae_table(circuit, truth, predicted, dummy))
    mae = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["circuit", "parameter", "beats_dummy"])
    beat_share = float(mae["beats_dummy"].mean()) if len(mae) else 0.0
    model_id = str(uuid.uuid4())
    context.log.info(f"eis regressors: beat the median dummy on {beat_share:.0%} of {len(mae)} parameters")
    yield dg.Output(
        {"model_id": model_id, "regressors": regressors, "mae": mae, "settings": config.model_dump(), "feature_columns": columns},
        metadata={
            "model_id": model_id,
            "n_circuits": len(regressors),
            "share_parameters_beating_dummy": round_sig(beat_share),
            "median_mae_model": round_sig(float(mae["mae_model"].median())) if len(mae) else float("nan"),
            "median_mae_dummy": round_sig(float(mae["mae_dummy"].median())) if len(mae) else float("nan"),
            "mae_table": dg.MetadataValue.md(table_markdown(mae.round(4))),
        },
    )
    yield dg.AssetCheckResult(
        check_name="regressors_beat_dummy",
        passed=beat_share > config.min_share_beating_dummy or mae.empty,
        metadata={"share_beating_dummy": round_sig(beat_share), "required_above": config.min_share_beating_dummy},
    )


# ---- 7. predictions ------------------------------------------------------------------------


class PredictionsConfig(ConventionsConfig):
    # Fit every circuit of each spectrum's 90 % set (and its predicted circuit, for the supported circuit) with the
    # evidence fits' settings -> exports/eis_prediction_sets.csv; off: the sets without their fits.
    fit_set_members: bool = True


SETS_EXPORT_NAME = "eis_prediction_sets.csv"


@dg.asset(group_name=PIPELINE)
def eis_predictions(
    context: dg.AssetExecutionContext,
    config: PredictionsConfig,
    compute: ComputeResource,
    eis_features: dict,
    eis_circuit_classifier: dict,
    eis_parameter_regressors: dict,
) -> pd.DataFrame:
    """Circuit, class probabilities and parameters (one column each, with units) for the user's
    unlabelled files (raw/eis/unlabelled/, and generic tables or instrument files anywhere under
    raw/eis/), or the embedded synthetic examples when the user has none -> exports/eis_predictions.csv."""
    from assets.eis import predict

    table, rejections, files, examples = _unlabelled_spectra(config.conventions())
    kept, z_on_grid, outside = predict.grid_table(table, eis_features["grid_rad_s"])
    rejections = rejections + ([] if examples else outside)
    summary = None
    if files:
        accepted = {str(path): 0 for path in files}
        for source in kept["source"]:
            accepted[source] = accepted.get(source, 0) + 1
        expected = {r.source: 1 for r in rejections if r.row is None}
        summary = report_rejections(context.log, PIPELINE, rejections, accepted, expected)
    evidence = _evidence_of(kept["spectrum_id"].tolist(), table, compute, eis_features.get("evidence_random_starts", 0)) if eis_features.get("circuit_evidence") and len(kept) else None
    predictions = predict.predict_spectra(kept, z_on_grid, eis_features, eis_circuit_classifier, eis_parameter_regressors, TSFRESH_WORKERS, evidence)
    sets_metadata = {}
    if config.fit_set_members and len(predictions):
        members, predictions["supported_circuit"] = predict.set_fits(predictions, table, eis_features.get("evidence_random_starts", 0), compute.torch_device())
        sets_path = write_export_csv(members, SETS_EXPORT_NAME)
        sets_metadata = {"set_members_export": dg.MetadataValue.path(str(sets_path)), "n_set_members_fitted": len(members)}
    path = write_export_csv(predict.export_view(predictions), "eis_predictions.csv")
    context.log.info(f"eis: {len(predictions)} spectra predicted ({'embedded synthetic examples' if examples else f'{len(files)} user files'}) -> {relative_to_root(path)}")
    context.add_output_metadata(
        {
            **({k: v for k, v in summary.metadata().items() if k != "rejected_share"} if summary else {}),
            "n_predicted": len(predictions),
            "n_rejected": len(rejections),
            "used_synthetic_examples": examples,
            "export": dg.MetadataValue.path(str(path)),
            "classifier_model_id": eis_circuit_classifier["model_id"],
            "regressor_model_id": eis_parameter_regressors["model_id"],
            **sets_metadata,
            **_set_size_metadata(predictions["set90_size"].to_numpy(int)),
            "predictions": dg.MetadataValue.md(table_markdown(predict.export_view(predictions).drop(columns=[c for c in predictions.columns if c.startswith("p_") or c.endswith("model_id")]).head(10))),
        }
    )
    return predictions


def _set_size_metadata(sizes: np.ndarray) -> dict:
    """How many spectra got a 90 % circuit set of each size (json and a bar chart) and the mean size."""
    from assets.eis.calibration import size_counts
    from assets.eis.report import set_size_markdown

    if not len(sizes):
        return {}
    counts = size_counts(sizes)
    return {
        "set90_mean_size": round_sig(float(sizes.mean())),
        "set90_size_counts": dg.MetadataValue.json(counts),
        "set90_sizes": dg.MetadataValue.md(set_size_markdown(counts, "90 % circuit sets of the predicted spectra")),
    }


# ---- batched circuit fitting -------------------------------------------------------


FITS_EXPORT_NAME = "eis_circuit_fits.csv"


class CircuitFitsConfig(ConventionsConfig):
    optimizer: Literal["lm", "adam", "lbfgs"] = "lm"  # batched Levenberg-Marquardt, or Adam / L-BFGS
    weighting: Literal["modulus", "unit"] = "modulus"  # residual weight 1/|Z| or 1
    max_iterations: int = 100  # LM: up to ~50 needed; Adam wants ~1000+
    learning_rate: float = 0.05  # Adam step size, in the unbounded coordinates
    converged_residual: float = 0.03  # ||Z_fit - Z|| / ||Z|| at most this: the fit reproduces the spectrum
    dtype: Literal["float64", "float32"] = "float64"
    top_k: int = 1  # > 1: also fit the next most probable circuits, keep the lowest `criterion`
    criterion: Literal["aic", "bic"] = "bic"
    labelled_split: Literal["none", "test", "all"] = "none"  # also fit labelled spectra of this split (their true circuit)
    plot_spectra: int = 4

    def settings(self):
        from assets.eis.fitting import FitSettings

        return FitSettings(
            optimizer=self.optimizer, weighting=self.weighting, max_iterations=self.max_iterations,
            learning_rate=self.learning_rate, converged_residual=self.converged_residual, dtype=self.dtype,
        )


def _prediction_tasks(config: CircuitFitsConfig, predictions: pd.DataFrame):
    """(spectra rows, candidates, starts, rejections) for the predicted spectra, re-read from their files."""
    from assets.eis import fitting

    table, _, _, _ = _unlabelled_spectra(config.conventions())
    table = table.set_index("spectrum_id")
    present = predictions["spectrum_id"].isin(table.index)
    rejections = [
        Rejection(row.source, None if pd.isna(row.row) else int(row.row), "predicted spectrum no longer readable; expected the file eis_predictions read")
        for row in predictions[~present].itertuples()
        if row.origin == "user"
    ]
    predictions = predictions[present].reset_index(drop=True)
    rows = table.loc[predictions["spectrum_id"], ["omega_rad_s", "z_real", "z_imag"]].reset_index()
    rows[["source", "row"]] = predictions[["source", "row"]]
    rows["origin"] = "prediction"
    probabilities = predictions[[c for c in predictions.columns if c.startswith("p_")]]
    candidates = fitting.top_candidates(probabilities, predictions["predicted_circuit"].tolist(), config.top_k)
    starts = [fitting.parameters_or_none(t, c) for t, c in zip(predictions["parameters"], predictions["predicted_circuit"])]
    return rows, candidates, starts, rejections


def _labelled_tasks(config: CircuitFitsConfig, spectra: pd.DataFrame, features: dict, split: pd.DataFrame, regressors: dict):
    """(spectra rows, candidates (the true circuit), regressor starts) of the chosen split."""
    from assets.eis import models

    ids = split["spectrum_id"] if config.labelled_split == "all" else split.loc[split["split"] == config.labelled_split, "spectrum_id"]
    rows = spectra[spectra["spectrum_id"].isin(set(ids))].reset_index(drop=True).assign(origin="labelled")
    feature_table = features["features"].set_index("spectrum_id")
    starts = []
    for circuit, spectrum_id in zip(rows["circuit"], rows["spectrum_id"]):
        regressor = regressors["regressors"].get(circuit)
        if regressor is None or spectrum_id not in feature_table.index:
            starts.append(None)
            continue
        columns = regressors.get("feature_columns", list(feature_table.columns))
        values = models.predict_parameters(regressor, feature_table.loc[[spectrum_id], columns].to_numpy(float))[0]
        starts.append(dict(zip(regressor["parameters"], values)))
    return rows, [[c] for c in rows["circuit"]], starts


@dg.asset(group_name=PIPELINE, pool="gpu")
def eis_circuit_fits(
    context: dg.AssetExecutionContext,
    config: CircuitFitsConfig,
    compute: ComputeResource,
    eis_predictions: pd.DataFrame,
    eis_parameter_regressors: dict,
    eis_spectra: pd.DataFrame,
    eis_features: dict,
    eis_split: pd.DataFrame,
) -> pd.DataFrame:
    """Circuit parameters with standard errors fitted to every predicted (and, on request, labelled)
    spectrum, all at once per circuit class, started from the regressors and from a naive start; which
    parameters the data determine and the simplest circuit it supports -> exports/eis_circuit_fits.csv."""
    from assets.eis import fitting, report

    rows, candidates, starts, rejections = _prediction_tasks(config, eis_predictions)
    if rejections:
        write_quarantine(PIPELINE, rejections)
    if config.labelled_split != "none":
        labelled, labelled_candidates, labelled_starts = _labelled_tasks(config, eis_spectra, eis_features, eis_split, eis_parameter_regressors)
        rows = pd.concat([rows, labelled[rows.columns.tolist() + ["parameters"]]], ignore_index=True)
        candidates, starts = candidates + labelled_candidates, starts + labelled_starts
    device = compute.torch_device()
    began = time.perf_counter()
    fits = fitting.fit_with_selection(rows, candidates, starts, config.settings(), config.criterion, device) if len(rows) else pd.DataFrame(columns=fitting.FIT_COLUMNS)
    seconds = time.perf_counter() - began
    fits["classifier_model_id"] = eis_predictions["classifier_model_id"].iloc[0] if len(eis_predictions) else ""
    fits["regressor_model_id"] = eis_parameter_regressors["model_id"]
    path = write_export_csv(fitting.export_view(fits), FITS_EXPORT_NAME)
    metadata = {
        "n_fitted": len(fits),
        "n_predicted_spectra": int((fits["origin"] == "prediction").sum()),
        "n_labelled_spectra": int((fits["origin"] == "labelled").sum()),
        "n_without_regressor_start": int(sum(start is None for start in starts)),
        "n_rejected": len(rejections),
        "device": str(device),
        "optimizer": config.optimizer,
        "fit_seconds_all_starts": round_sig(seconds),
        **report.fit_summary(fits, rows),
        "export": dg.MetadataValue.path(str(path)),
    }
    if len(fits):
        metadata["nyquist"] = dg.MetadataValue.md(fitting.fit_nyquist_markdown(fits, rows, config.plot_spectra))
        columns = ["spectrum_id", "circuit", "relative_residual", "reproduces", "determined", "undetermined", "supported_circuit"]
        metadata["fits"] = dg.MetadataValue.md(table_markdown(fits[columns].head(10)))
    context.add_output_metadata(metadata)
    return fits


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
