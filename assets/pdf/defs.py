"""Dagster wiring of the `pdf` pipeline: structures -> G(r) profiles -> space-group classifiers.

Thin on purpose: each asset reads its Config, calls the science in assets/pdf/*.py and
returns the value with metadata. Heavy libraries (pyxtal, pymatgen, keras, torch,
scikit-learn) are imported inside the science functions, so loading this module is light.
"""

import json
import time
import uuid
from dataclasses import asdict

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    Definitions,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from assets.pdf import calculator, classifiers, evaluation, measured, profiles, structures
from resources.cluster import DaskResource
from resources.compute import ComputeResource
from resources.datapaths import raw_dir, write_export_csv, write_quarantine
from resources.plots import confusion_matrix_markdown, figure_markdown, new_figure

PIPELINE = "pdf"


class StructuresConfig(Config):
    space_groups: list[int] = Field(default_factory=lambda: list(structures.DEFAULT_SPACE_GROUPS))
    structures_per_group: int = 30
    elements: list[str] = Field(default_factory=lambda: list(structures.DEFAULT_ELEMENTS))
    max_atoms: int = 8  # atoms in the conventional cell
    max_species: int = 2
    generate: bool = True  # False: only CIFs under data/raw/pdf/structures/
    chunk_size: int = 10  # structures per Dask task
    max_rejected_share: float = 0.2  # of CIF files; above it the blocking check fails


@asset(group_name=PIPELINE, check_specs=[AssetCheckSpec("cif_rejected_share", asset="pdf_structures", blocking=True)])
def pdf_structures(context: AssetExecutionContext, config: StructuresConfig, compute: ComputeResource,
                   dask: DaskResource):
    """Crystals for the configured space groups: generated with pyxtal and/or read from CIFs."""
    started = time.perf_counter()
    crystals = []
    if config.generate:
        tasks = structures.generation_tasks(config.space_groups, config.structures_per_group, config.elements,
                                            config.max_atoms, config.max_species, compute.seed, config.chunk_size)
        context.log.info(f"generating {config.structures_per_group} crystals x {len(config.space_groups)} groups "
                         f"in {len(tasks)} tasks on {dask.describe()}")
        crystals += [crystal for chunk in dask.map(structures.generate_chunk, tasks) for crystal in chunk]
    cif_folder = raw_dir(PIPELINE) / "structures"
    from_cif, rejections = structures.read_cif_folder(cif_folder, config.space_groups)
    crystals += from_cif
    if rejections:
        write_quarantine(PIPELINE, rejections)
        for rejection in rejections:
            context.log.warning(f"rejected {rejection.source}: {rejection.reason}")
    if not crystals:
        raise ValueError(f"no structures: set generate=true or drop CIF files into {cif_folder}")
    frame = structures.crystals_to_frame(crystals)
    n_cif_files = len(from_cif) + len(rejections)
    share = len(rejections) / n_cif_files if n_cif_files else 0.0
    yield Output(frame, metadata={
        "n_structures": len(frame),
        "per_space_group": MetadataValue.json({str(k): int(v) for k, v in frame["space_group"].value_counts().sort_index().items()}),
        "n_from_cif": len(from_cif),
        "n_cif_rejected": len(rejections),
        "mean_sites": float(frame["n_sites"].mean()) if len(frame) else 0.0,
        "seconds": round(time.perf_counter() - started, 2),
    })
    yield AssetCheckResult(check_name="cif_rejected_share", passed=share <= config.max_rejected_share,
                           metadata={"rejected_share": share, "bound": config.max_rejected_share,
                                     "n_cif_files": n_cif_files})


class ProfilesConfig(Config):
    qmax_inv_A: float = 25.0  # 0: no termination ripples
    qdamp_inv_A: float = 0.04
    uiso_A2: float = 0.005
    weighting: str = "atomic_number"  # atomic_number | xray_form_factor | neutron
    # Augmentation (Lan et al. 2022 conditions): per-profile draws around the values above.
    copies_per_structure: int = 4  # jittered copies: more variety per pyxtal structure, same split group
    qdamp_jitter: float = 0.5  # relative half-width of a uniform draw
    uiso_jitter: float = 0.5  # relative half-width of a uniform draw
    lattice_jitter: float = 0.02  # relative standard deviation of an isotropic lattice scale
    noise_std: float = 0.01  # Gaussian noise on the normalised profile


def pdf_backend(compute: ComputeResource) -> calculator.ArrayBackend:
    """torch on the GPU when the run has one, numpy otherwise (the same formulas)."""
    if compute.resolved_device() == "cuda":
        return calculator.ArrayBackend("torch", "cuda")
    return calculator.ArrayBackend("numpy")


@asset(group_name=PIPELINE)
def pdf_profiles(context: AssetExecutionContext, config: ProfilesConfig, compute: ComputeResource,
                 pdf_structures: pd.DataFrame) -> Output:
    """Normalised G(r) of every structure on np.linspace(1.5, 30, 209) A (the published model's grid)."""
    settings = calculator.PdfSettings(qmax_inv_A=config.qmax_inv_A, qdamp_inv_A=config.qdamp_inv_A,
                                      uiso_A2=config.uiso_A2, weighting=config.weighting)
    augmentation = profiles.Augmentation(config.copies_per_structure, config.qdamp_jitter, config.uiso_jitter,
                                         config.lattice_jitter, config.noise_std)
    backend = pdf_backend(compute)
    started = time.perf_counter()
    result = profiles.profile_set(structures.frame_to_crystals(pdf_structures), settings, augmentation,
                                  compute.rng(1), backend)
    seconds = time.perf_counter() - started
    result["settings_json"] = np.array(json.dumps(asdict(settings)))
    figure = profiles.class_mean_figure(result["r_A"], result["profiles"], result["space_group"], new_figure)
    return Output(result, metadata={
        "shape": list(result["profiles"].shape),
        "backend": f"{backend.name}:{backend.device}",
        "seconds": round(seconds, 2),
        "pdfs_per_second": round(len(result["profiles"]) / max(seconds, 1e-9), 1),
        "settings": MetadataValue.json(asdict(settings)),
        "class_means": MetadataValue.md(figure_markdown(figure, "mean profile per space group")),
    })


class SplitConfig(Config):
    test_fraction: float = 0.2
    validation_fraction: float = 0.2  # of what is left after the test set


@asset(group_name=PIPELINE)
def pdf_split(config: SplitConfig, compute: ComputeResource, pdf_profiles: dict) -> Output:
    """Stratified structure-level train / validation / test split, reused by every model."""
    split = classifiers.stratified_split(pdf_profiles["structure_id"], pdf_profiles["space_group"],
                                         config.test_fraction, config.validation_fraction, compute.seed)
    counts = split.groupby("subset").size()
    return Output(split, metadata={key: int(counts.get(key, 0)) for key in ("train", "validation", "test")})


def dataset(pdf_profiles: dict, split: pd.DataFrame, classes: list[int], subsets: tuple[str, ...]):
    """(profiles, class indices) of the rows whose structures are in the given subsets."""
    rows = classifiers.subset_rows(pdf_profiles["structure_id"], split, subsets)
    return pdf_profiles["profiles"][rows], np.searchsorted(classes, pdf_profiles["space_group"][rows])


class CnnConfig(Config):
    epochs: int = 3
    batch_size: int = 32
    learning_rates: list[float] = Field(default_factory=lambda: [1e-3, 1e-4, 1e-5])
    rate_switch_epochs: list[int] = Field(default_factory=lambda: [40, 60])
    early_stopping_patience: int = 20
    batch_norm_momentum: float = 0.9  # Keras' 0.99 needs more steps than the demo takes


@asset(group_name=PIPELINE)
def space_group_cnn(context: AssetExecutionContext, config: CnnConfig, compute: ComputeResource,
                    pdf_profiles: dict, pdf_split: pd.DataFrame) -> Output:
    """The published 1D CNN (Liu et al. 2019) trained on the split; top-k metrics on the test set."""
    import keras  # noqa: F401  (so seed_everything seeds Keras too)

    compute.seed_everything()
    classes = classifiers.class_labels(pdf_profiles["space_group"])
    train_x, train_y = dataset(pdf_profiles, pdf_split, classes, ("train",))
    validation_x, validation_y = dataset(pdf_profiles, pdf_split, classes, ("validation",))
    test_x, test_y = dataset(pdf_profiles, pdf_split, classes, ("test",))
    settings = classifiers.CnnSettings(
        epochs=config.epochs, batch_size=config.batch_size, learning_rates=tuple(config.learning_rates),
        rate_switch_epochs=tuple(config.rate_switch_epochs), early_stopping_patience=config.early_stopping_patience,
        batch_norm_momentum=config.batch_norm_momentum)
    started = time.perf_counter()
    model, history = classifiers.train_cnn(train_x, train_y, validation_x, validation_y, len(classes), settings,
                                           compute.keras_device(), log=context.log.info)
    seconds = time.perf_counter() - started
    metrics = classifiers.classification_metrics(
        classifiers.cnn_probabilities(model, test_x, compute.keras_device()), test_y, classes)
    model_id = str(uuid.uuid4())
    bundle = {"model": model, "model_id": model_id, "classes": classes, "metrics": metrics, "history": history,
              "settings": asdict(settings)}
    epochs_run = len(history.get("loss", []))
    return Output(bundle, metadata={
        "model_id": model_id,
        **{key: value for key, value in metrics.items() if key.startswith("top")},
        "per_class_accuracy": MetadataValue.json(metrics["per_class_accuracy"]),
        "n_train": len(train_x), "n_validation": len(validation_x), "n_test": len(test_x),
        "epochs_run": epochs_run,
        "train_seconds": round(seconds, 1),
        "train_samples_per_second": round(epochs_run * len(train_x) / max(seconds, 1e-9), 1),
        "device": compute.keras_device(),
        "learning_curve": MetadataValue.md(figure_markdown(classifiers.learning_curve_figure(history, new_figure))),
    })


class BaselineConfig(Config):
    regularisation_c: float = 1.0  # inverse L2 strength of the logistic regression


@asset(group_name=PIPELINE)
def space_group_baseline(config: BaselineConfig, compute: ComputeResource, pdf_profiles: dict,
                         pdf_split: pd.DataFrame) -> Output:
    """Logistic regression on the same profiles, fitted on train + validation, scored on the same test set."""
    classes = classifiers.class_labels(pdf_profiles["space_group"])
    fit_x, fit_y = dataset(pdf_profiles, pdf_split, classes, ("train", "validation"))
    test_x, test_y = dataset(pdf_profiles, pdf_split, classes, ("test",))
    model = classifiers.fit_baseline(fit_x, fit_y, config.regularisation_c, compute.seed)
    metrics = classifiers.classification_metrics(
        classifiers.baseline_probabilities(model, test_x, len(classes)), test_y, classes)
    model_id = str(uuid.uuid4())
    return Output({"model": model, "model_id": model_id, "classes": classes, "metrics": metrics}, metadata={
        "model_id": model_id,
        **{key: value for key, value in metrics.items() if key.startswith("top")},
        "per_class_accuracy": MetadataValue.json(metrics["per_class_accuracy"]),
        "n_fit": len(fit_x), "n_test": len(test_x),
    })


class EvaluationConfig(Config):
    qmax_inv_A: list[float] = Field(default_factory=lambda: [15.0, 20.0])
    qdamp_inv_A: list[float] = Field(default_factory=lambda: [0.02, 0.08])
    uiso_A2: list[float] = Field(default_factory=lambda: [0.0025, 0.01])
    r_max_A: list[float] = Field(default_factory=lambda: [15.0, 20.0, 30.0])
    noise_std: list[float] = Field(default_factory=lambda: [0.0, 0.02, 0.05])
    top_k: int = 6


@asset(group_name=PIPELINE, check_specs=[AssetCheckSpec("cnn_beats_baseline", asset="space_group_evaluation")])
def space_group_evaluation(context: AssetExecutionContext, config: EvaluationConfig, compute: ComputeResource,
                           pdf_structures: pd.DataFrame, pdf_profiles: dict, pdf_split: pd.DataFrame,
                           space_group_cnn: dict, space_group_baseline: dict):
    """Confusion matrices of both models and accuracy versus Qmax, Qdamp, Uiso, r_max and noise."""
    classes = space_group_cnn["classes"]
    test_ids = set(pdf_split.loc[pdf_split["subset"] == "test", "structure_id"])
    crystals = [c for c in structures.frame_to_crystals(pdf_structures) if c.structure_id in test_ids]
    true_index = np.searchsorted(classes, [c.space_group for c in crystals])
    settings = calculator.PdfSettings(**json.loads(str(pdf_profiles["settings_json"])))
    device = compute.keras_device()
    predictors = {
        "cnn": lambda x: classifiers.cnn_probabilities(space_group_cnn["model"], x, device),
        "baseline": lambda x: classifiers.baseline_probabilities(space_group_baseline["model"], x, len(classes)),
    }
    sweeps = {name: getattr(config, name) for name in ("qmax_inv_A", "qdamp_inv_A", "uiso_A2", "r_max_A", "noise_std")}
    started = time.perf_counter()
    sweep = evaluation.robustness_sweep(crystals, true_index, settings, sweeps, predictors, compute.rng(2),
                                        min(config.top_k, len(classes)))
    context.log.info(f"robustness sweep over {len(crystals)} test structures in {time.perf_counter() - started:.1f} s")
    sweep["model_id"] = sweep["model"].map({"cnn": space_group_cnn["model_id"],
                                            "baseline": space_group_baseline["model_id"]})
    write_export_csv(sweep, "space_group_robustness.csv")
    cnn_top1 = space_group_cnn["metrics"]["top1_accuracy"]
    baseline_top1 = space_group_baseline["metrics"]["top1_accuracy"]
    matrices = {f"CNN top-1 {cnn_top1:.2f}": np.array(space_group_cnn["metrics"]["confusion_matrix"]),
                f"logistic regression top-1 {baseline_top1:.2f}": np.array(space_group_baseline["metrics"]["confusion_matrix"])}
    yield Output(sweep, metadata={
        "cnn_top1_accuracy": cnn_top1,
        "baseline_top1_accuracy": baseline_top1,
        "n_test_structures": len(crystals),
        "confusion_matrices": MetadataValue.md(confusion_matrix_markdown(matrices, [str(c) for c in classes])),
        "robustness": MetadataValue.md(figure_markdown(evaluation.sweep_figure(sweep, new_figure), "robustness")),
        "robustness_table": MetadataValue.md(sweep.drop(columns="model_id").to_markdown(index=False)),
    })
    yield AssetCheckResult(check_name="cnn_beats_baseline", passed=bool(cnn_top1 > baseline_top1),
                           metadata={"cnn_top1_accuracy": cnn_top1, "baseline_top1_accuracy": baseline_top1})


class PredictionsConfig(Config):
    top_k: int = 6
    max_rejected_share: float = 0.5  # of measured files; above it the blocking check fails


@asset(group_name=PIPELINE, check_specs=[AssetCheckSpec("measured_rejected_share", asset="space_group_predictions",
                                                        blocking=True)])
def space_group_predictions(context: AssetExecutionContext, config: PredictionsConfig, compute: ComputeResource,
                            space_group_cnn: dict):
    """Top-k space groups for every .gr file in data/raw/pdf/measured/ -> data/exports/space_group_predictions.csv."""
    folder = raw_dir(PIPELINE) / "measured"
    folder.mkdir(parents=True, exist_ok=True)
    if not any(folder.glob("*.gr")):
        written = measured.write_embedded_measured(folder, compute.rng(3))
        context.log.info(f"no .gr files in {folder}: wrote the embedded default {[p.name for p in written]}")
    names, inputs, rejections = measured.measured_inputs(folder)
    if rejections:
        write_quarantine(PIPELINE, rejections)
        for rejection in rejections:
            context.log.error(f"cannot use {rejection.source} (row {rejection.row}): {rejection.reason}")
    probabilities = classifiers.cnn_probabilities(space_group_cnn["model"], inputs, compute.keras_device()) \
        if names else np.zeros((0, len(space_group_cnn["classes"])))
    table = measured.top_k_table(names, probabilities, space_group_cnn["classes"], config.top_k,
                                 space_group_cnn["model_id"])
    path = write_export_csv(table, "space_group_predictions.csv")
    share = len(rejections) / max(len(names) + len(rejections), 1)
    yield Output(table, metadata={
        "n_files": len(names), "n_rejected": len(rejections), "export": str(path),
        "model_id": space_group_cnn["model_id"],
        "top1": MetadataValue.md(table[table["rank"] == 1].to_markdown(index=False)),
    })
    yield AssetCheckResult(check_name="measured_rejected_share", passed=share <= config.max_rejected_share,
                           metadata={"rejected_share": share, "bound": config.max_rejected_share})


defs = Definitions(assets=[pdf_structures, pdf_profiles, pdf_split, space_group_cnn, space_group_baseline,
                           space_group_evaluation, space_group_predictions])
