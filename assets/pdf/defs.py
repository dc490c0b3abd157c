"""Dagster wiring of the `pdf` pipeline: structures -> G(r) profiles -> space-group classifiers.

space_group_predictions (measured PDFs with the shipped or a trained model) is wired in defs_predictions.py.
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

from assets.pdf import (
    calculator,
    calibration,
    classifiers,
    compact,
    evaluation,
    profiles,
    prototypes,
    structures,
    variants,
)
from assets.pdf.defs_predictions import RUN_MODELS, space_group_predictions  # noqa: F401 (RUN_MODELS re-exported)
from resources.cluster import DaskResource
from resources.compute import ComputeResource
from resources.datapaths import cache_dir, exports_dir, raw_dir, relative_to_root, write_export_csv
from resources.plots import confusion_matrix_markdown, figure_markdown, new_figure, round_sig
from resources.progress import Progress
from resources.quarantine import report_rejections

PIPELINE = "pdf"


class StructuresConfig(Config):
    space_groups: list[int] = Field(default_factory=lambda: list(structures.DEFAULT_SPACE_GROUPS))
    structures_per_group: int = 30  # generated parents per group
    elements: list[str] = Field(default_factory=lambda: list(structures.DEFAULT_ELEMENTS))
    max_atoms: int = 8  # atoms in the primitive cell (a centred cell holds this many per lattice point)
    max_species: int = 2
    generate: bool = True  # False: only CIFs under data/raw/pdf/structures/
    chunk_size: int = 10  # structures per Dask task (and per cache entry)
    # Symmetry-preserving variants of each generated parent (other elements on its sites, a strain its
    # crystal system allows); a variant always shares its parent's split subset.
    variants_per_structure: int = 1
    variant_strain: float = 0.03  # relative standard deviation of each free cell length
    variant_angle_deg: float = 2.0  # standard deviation of each free cell angle (monoclinic, triclinic)
    # Real structure types (pymatgen's AFLOW prototypes and pyxtal's example CIFs, up to max_atoms) decorated
    # with other elements on their sites and strained: about this many crystals per group next to pyxtal's random
    # ones. All crystals of one type share a parent id, so the split keeps a type on one side.
    prototype_crystals_per_group: int = 0
    cache: bool = True  # reuse generated chunks from data/cache/pdf/structures/ (keyed by their settings)
    max_rejected_share: float = 0.2  # of CIF files; above it the blocking check fails


def generated_crystals(context: AssetExecutionContext, config: StructuresConfig, seed: int,
                       dask: DaskResource) -> list:
    """pyxtal parents and their variants, task by task: cached tasks are read, the others fanned out through Dask."""
    tasks = [(task, config.variants_per_structure, config.variant_strain, config.variant_angle_deg)
             for task in structures.generation_tasks(config.space_groups, config.structures_per_group, config.elements,
                                                     config.max_atoms, config.max_species, seed, config.chunk_size)]
    folder = cache_dir(PIPELINE) / "structures"
    found, missing = structures.cached_chunks(folder, tasks) if config.cache else ({}, list(range(len(tasks))))
    context.log.info(f"generating {config.structures_per_group} crystals x {len(config.space_groups)} groups: "
                     f"{len(found)} of {len(tasks)} tasks from the cache, {len(missing)} on {dask.describe()}")
    progress = Progress("structure generation", sum(len(tasks[i][0][1]) for i in missing), context.log.info,
                        unit="parents")
    generated = dask.map(variants.generate_family_chunk, [tasks[i] for i in missing],
                         progress=lambda done: progress.update(round(done / len(missing) * progress.total)))
    for i, chunk in zip(missing, generated):
        found[i] = chunk
        if config.cache:
            structures.cache_chunk(folder, tasks[i], chunk)
    return [crystal for i in sorted(found) for crystal in found[i]]


@asset(group_name=PIPELINE, check_specs=[AssetCheckSpec("cif_rejected_share", asset="pdf_structures", blocking=True)])
def pdf_structures(context: AssetExecutionContext, config: StructuresConfig, compute: ComputeResource,
                   dask: DaskResource):
    """Crystals for the configured space groups: generated with pyxtal (plus symmetry-preserving variants of
    each) and/or read from CIFs."""
    started = time.perf_counter()
    crystals = generated_crystals(context, config, compute.seed, dask) if config.generate else []
    n_parents = sum(variants.parent_id(c.structure_id) == c.structure_id for c in crystals)
    n_variants = len(crystals) - n_parents
    context.log.info(f"{n_parents:,} generated parents + {n_variants:,} variants")
    decorated = prototypes.cached_prototype_crystals(
        cache_dir(PIPELINE) / "structures" if config.cache else None, config.space_groups,
        config.prototype_crystals_per_group, config.max_atoms, compute.seed, config.variant_strain,
        config.variant_angle_deg) if config.prototype_crystals_per_group else []
    n_types = len({variants.parent_id(c.structure_id) for c in decorated})
    context.log.info(f"{len(decorated):,} crystals of {n_types} real structure types")
    crystals += decorated
    cif_folder = raw_dir(PIPELINE) / "structures"
    from_cif, rejections = structures.read_cif_folder(cif_folder, config.space_groups)
    crystals += from_cif
    # Only the user's CIFs count towards the rejected share (generated crystals are not user records).
    summary = report_rejections(context.log, PIPELINE, rejections, {c.source: 1 for c in from_cif})
    if not crystals:
        raise ValueError(f"no structures: set generate=true or drop CIF files into {cif_folder}")
    frame = structures.crystals_to_frame(crystals)
    yield Output(frame, metadata={
        "n_structures": len(frame),
        "per_space_group": MetadataValue.json({structures.space_group_label(k): int(v) for k, v in
                                               frame["space_group"].value_counts().sort_index().items()}),
        "n_generated_parents": n_parents,
        "n_variants": n_variants,
        "n_prototype_crystals": len(decorated),
        "n_prototype_types": n_types,
        "n_from_cif": len(from_cif),
        "n_cif_rejected": summary.n_rejected,
        **summary.metadata(),
        "mean_sites": round_sig(frame["n_sites"].mean()) if len(frame) else 0.0,
        "seconds": round_sig(time.perf_counter() - started, 3),
    })
    yield summary.check_result("cif_rejected_share", config.max_rejected_share)


class ProfilesConfig(Config):
    qmax_inv_A: float = 25.0  # 0: no termination ripples
    qdamp_inv_A: float = 0.04
    uiso_A2: float = 0.005
    weighting: str = "atomic_number"  # atomic_number | xray_form_factor | neutron
    # Augmentation over instrument conditions (Lan et al. 2022): per-copy uniform draws from [low, high];
    # an empty list keeps the value above for every copy. Copy 0 of each structure stays at the values above.
    copies_per_structure: int = 4  # more variety per pyxtal structure, same split group
    qmax_range_inv_A: list[float] = Field(default_factory=lambda: [18.0, 28.0])
    qdamp_range_inv_A: list[float] = Field(default_factory=lambda: [0.01, 0.08])
    uiso_range_A2: list[float] = Field(default_factory=lambda: [0.002, 0.012])
    lattice_jitter: float = 0.02  # relative standard deviation of an isotropic lattice scale
    noise_std_range: list[float] = Field(default_factory=lambda: [0.0, 0.03])  # on the normalised profile
    neutron_share: float = 0.25  # copies with neutron scattering lengths instead of `weighting`
    nanoparticle_share: float = 0.15  # copies damped by a spherical-particle envelope
    diameter_range_A: list[float] = Field(default_factory=lambda: [20.0, 100.0])
    r_cut_share: float = 0.1  # copies with G zero beyond a drawn r_cut (a shorter measurement)
    r_cut_range_A: list[float] = Field(default_factory=lambda: [15.0, 30.0])
    clean_first_copy: bool = True


def augmentation_from(config: ProfilesConfig) -> profiles.Augmentation:
    def span(values: list[float], name: str):
        if not values:
            return None
        if len(values) != 2 or values[0] > values[1]:
            raise ValueError(f"{name} must be [low, high] (or empty), not {values}")
        return (float(values[0]), float(values[1]))

    return profiles.Augmentation(
        copies_per_structure=config.copies_per_structure,
        qmax_range_inv_A=span(config.qmax_range_inv_A, "qmax_range_inv_A"),
        qdamp_range_inv_A=span(config.qdamp_range_inv_A, "qdamp_range_inv_A"),
        uiso_range_A2=span(config.uiso_range_A2, "uiso_range_A2"),
        lattice_jitter=config.lattice_jitter,
        noise_std_range=span(config.noise_std_range, "noise_std_range") or (0.0, 0.0),
        neutron_share=config.neutron_share,
        nanoparticle_share=config.nanoparticle_share,
        diameter_range_A=span(config.diameter_range_A, "diameter_range_A") or (20.0, 100.0),
        r_cut_share=config.r_cut_share,
        r_cut_range_A=span(config.r_cut_range_A, "r_cut_range_A") or (15.0, 30.0),
        clean_first_copy=config.clean_first_copy,
    )


def pdf_settings_from(config: ProfilesConfig) -> calculator.PdfSettings:
    """The calculation settings of copy 0 of every structure (the library's parameters)."""
    return calculator.PdfSettings(qmax_inv_A=config.qmax_inv_A, qdamp_inv_A=config.qdamp_inv_A,
                                  uiso_A2=config.uiso_A2, weighting=config.weighting)


def pdf_backend(compute: ComputeResource) -> calculator.ArrayBackend:
    """torch on the GPU when the run has one, numpy otherwise (the same formulas)."""
    if compute.resolved_device() == "cuda":
        return calculator.ArrayBackend("torch", "cuda")
    return calculator.ArrayBackend("numpy")


@asset(group_name=PIPELINE)
def pdf_profiles(context: AssetExecutionContext, config: ProfilesConfig, compute: ComputeResource,
                 pdf_structures: pd.DataFrame) -> Output:
    """Normalised G(r) of every structure on np.linspace(1.5, 30, 209) A (the published model's grid)."""
    settings = pdf_settings_from(config)
    augmentation = augmentation_from(config)
    backend = pdf_backend(compute)
    crystals = structures.frame_to_crystals(pdf_structures)
    progress = Progress("profiles", len(crystals), context.log.info, unit="structures")
    started = time.perf_counter()
    result = profiles.profile_set(crystals, settings, augmentation, compute.rng(1), backend, progress=progress.update)
    seconds = time.perf_counter() - started
    result["settings_json"] = np.array(json.dumps(asdict(settings)))
    result["augmentation_json"] = np.array(json.dumps(asdict(augmentation)))
    figure = profiles.class_mean_figure(result["r_A"], result["profiles"], result["space_group"], new_figure)
    return Output(result, metadata={
        "shape": list(result["profiles"].shape),
        "backend": f"{backend.name}:{backend.device}",
        "seconds": round_sig(seconds, 3),
        "pdfs_per_second": round_sig(len(result["profiles"]) / max(seconds, 1e-9), 3),
        "settings": MetadataValue.json(asdict(settings)),
        "augmentation": MetadataValue.json(asdict(augmentation)),
        "share_neutron": round_sig(float(np.mean(result["condition_weighting"] == "neutron")), 3),
        "share_nanoparticle": round_sig(float(np.mean(np.isfinite(result["condition_diameter_A"]))), 3),
        "class_means": MetadataValue.md(figure_markdown(figure, "mean profile per space group")),
    })


class SplitConfig(Config):
    test_fraction: float = 0.2
    validation_fraction: float = 0.2  # of what is left after the test set


@asset(group_name=PIPELINE)
def pdf_split(config: SplitConfig, compute: ComputeResource, pdf_profiles: dict) -> Output:
    """Train / validation / test split by generated parent (stratified by space group), reused by every model:
    a variant always goes where its parent goes."""
    ids = pdf_profiles["structure_id"]
    split = classifiers.stratified_split(ids, pdf_profiles["space_group"], config.test_fraction,
                                         config.validation_fraction, compute.seed,
                                         parent_ids=np.array([variants.parent_id(i) for i in ids]))
    counts = split.groupby("subset").size()
    parents = split.groupby("subset")["parent_id"].nunique()
    return Output(split, metadata={**{key: int(counts.get(key, 0)) for key in ("train", "validation", "test")},
                                   **{f"{key}_parents": int(parents.get(key, 0))
                                      for key in ("train", "validation", "test")}})


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
    max_train_seconds: float = 0.0  # 0: no budget; at scale on a CPU, the compact model's budget (same wall clock)


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
        batch_norm_momentum=config.batch_norm_momentum, max_train_seconds=config.max_train_seconds)
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
        **trained_model_metadata(model_id, metrics, (train_x, validation_x, test_x), history, seconds,
                                 epochs_run * len(train_x) / max(seconds, 1e-9)),
        "device": compute.keras_device(),
    })


def trained_model_metadata(model_id: str, metrics: dict, sets: tuple, history: dict, seconds: float,
                           samples_per_second: float) -> dict:
    """What the UI shows of a trained CNN: id, test top-k, per-class recall, set sizes, time, rate, learning curve."""
    train_x, validation_x, test_x = sets
    return {
        "model_id": model_id,
        **headline_metrics(metrics),
        "per_class_accuracy": MetadataValue.json(per_class_labelled(metrics)),
        "n_train": len(train_x), "n_validation": len(validation_x), "n_test": len(test_x),
        "epochs_run": len(history.get("loss", [])),
        "train_seconds": round_sig(seconds, 3),
        "train_samples_per_second": round_sig(samples_per_second, 3),
        "learning_curve": MetadataValue.md(figure_markdown(classifiers.learning_curve_figure(history, new_figure))),
    }


class CompactConfig(Config):
    epochs: int = 12
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    dropout: float = 0.3
    patience: int = 8  # epochs without a better validation accuracy
    max_train_seconds: float = 0.0  # 0: no wall-clock budget; else each member's budget
    # networks trained from seeds seed, seed + 1, ... on the same profiles; more than one serves the mean of their
    # logits (one answer whichever draw), and the card records each member's scores (the spread over seeds)
    ensemble_members: int = 1


def training_data_digest(pdf_profiles: dict, split: pd.DataFrame) -> str:
    """sha256 of what the model was trained on: calculation settings, augmentation, the split's ids and labels."""
    import hashlib

    parts = [str(pdf_profiles["settings_json"]), str(pdf_profiles.get("augmentation_json", "")),
             split.sort_values("structure_id").to_csv(index=False)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@asset(group_name=PIPELINE)
def space_group_compact_cnn(context: AssetExecutionContext, config: CompactConfig, compute: ComputeResource,
                            pdf_profiles: dict, pdf_split: pd.DataFrame) -> Output:
    """The model built for the CPU (a compact torch CNN with a measured-range channel) on the same split.

    With ensemble_members > 1 it trains that many networks from consecutive seeds and serves the mean of their
    logits, calibrated as one model; each member's test scores go to the card, with their mean and spread.
    Also writes it in shippable form (weights + card) to data/exports/pdf_space_group_model/: copying that
    folder to assets/pdf/shipped/ makes it the model space_group_predictions uses by default.
    """
    if config.ensemble_members < 1:
        raise ValueError(f"ensemble_members must be 1 or more, not {config.ensemble_members}")
    compute.seed_everything()
    classes = classifiers.class_labels(pdf_profiles["space_group"])
    train_x, train_y = dataset(pdf_profiles, pdf_split, classes, ("train",))
    validation = dataset(pdf_profiles, pdf_split, classes, ("validation",))
    test = dataset(pdf_profiles, pdf_split, classes, ("test",))
    settings = compact.CompactSettings(
        epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
        weight_decay=config.weight_decay, dropout=config.dropout, patience=config.patience,
        max_train_seconds=config.max_train_seconds, num_threads=compute.num_threads)
    started = time.perf_counter()
    networks, histories, members = compact.train_members(
        train_x, train_y, validation, test, classes, settings,
        [compute.seed + k for k in range(config.ensemble_members)], log=context.log.info)
    seconds = time.perf_counter() - started
    model = compact.ensemble_of(networks, int(train_x.shape[1]), settings)
    scored = calibration.calibrated_scores(compact.compact_logits(model, validation[0]), validation[1],
                                           compact.compact_logits(model, test[0]), test[1], classes)
    fitted, metrics = scored["fitted"], scored["metrics"]
    model_id = str(uuid.uuid4())
    card = {
        "model_id": model_id, "model": "space_group_compact_cnn", "classes": classes,
        "n_points": int(train_x.shape[1]), "grid_A": [float(calculator.MODEL_GRID_A[0]),
                                                      float(calculator.MODEL_GRID_A[-1]), len(calculator.MODEL_GRID_A)],
        "settings": compact.settings_dict(settings), "seed": compute.seed,
        "training_data_sha256": training_data_digest(pdf_profiles, pdf_split),
        "n_train": len(train_x), "n_validation": len(validation[0]), "n_test": len(test[0]),
        "n_train_structures": int((pdf_split["subset"] == "train").sum()),
        "test_scores": calibration.headline_scores(metrics),
        "calibration": {**fitted, "fitted_on": "validation subset of the training run", "test_ece_raw": scored["ece_raw"]},
        "members": members,
        "member_spread": calibration.seed_spread([member["test_scores"] for member in members]),
        "epochs_run": sum(member["epochs_run"] for member in members), "train_seconds": round(seconds, 1),
        "reproduce": {"command": "MATERIALS_DATA=<empty folder> ./dev.sh dagster job execute -m orchestration.definitions "
                                 f"-j {context.job_name} -c <this run config as YAML>",
                      "run_config": context.run_config},
        "trained_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    export = compact.save_model_bundle(exports_dir() / "pdf_space_group_model", model, card)
    history = histories[0]  # the learning curve and speed of the first member (each trains the same way)
    bundle = {"model": model, "model_id": model_id, "classes": classes, "metrics": metrics, "history": history,
              "card": card, "temperature": fitted["temperature"], "set90_threshold": fitted["set90_threshold"],
              "test_probabilities": scored["calibrated"],
              "test_rows": classifiers.subset_rows(pdf_profiles["structure_id"], pdf_split, ("test",))}
    spread = {f"member_{key}": calibration.spread_text(value) for key, value in card["member_spread"].items()}
    return Output(bundle, metadata={
        **trained_model_metadata(model_id, metrics, (train_x, validation[0], test[0]), history, seconds,
                                 float(np.median(history["samples_per_second"]))),
        "ensemble_members": len(members), **(spread if len(members) > 1 else {}),
        "temperature": round_sig(fitted["temperature"]),
        "ece_raw": round_sig(scored["ece_raw"]),
        "reliability": MetadataValue.md(figure_markdown(
            calibration.reliability_figure(scored["raw"], scored["calibrated"], test[1], new_figure),
            "reliability on the test set")),
        "shippable_export": MetadataValue.path(relative_to_root(export)),
    })


def headline_metrics(metrics: dict) -> dict:
    """top1/top2/top6_accuracy (and, for a calibrated model, ece, set90_coverage, set90_mean_size) as numeric
    metadata, rounded to 4 significant digits (Dagster plots them)."""
    return {key: round_sig(value) for key, value in calibration.headline_scores(metrics).items()}


def per_class_labelled(metrics: dict) -> dict:
    """Per-class recall keyed by '225 Fm-3m' instead of the bare number."""
    return {structures.space_group_label(int(group)): (None if value is None else round_sig(value, 3))
            for group, value in metrics["per_class_accuracy"].items()}


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
        **headline_metrics(metrics),
        "per_class_accuracy": MetadataValue.json(per_class_labelled(metrics)),
        "n_fit": len(fit_x), "n_test": len(test_x),
    })


class EvaluationConfig(Config):
    qmax_inv_A: list[float] = Field(default_factory=lambda: [15.0, 20.0])
    qdamp_inv_A: list[float] = Field(default_factory=lambda: [0.02, 0.08])
    uiso_A2: list[float] = Field(default_factory=lambda: [0.0025, 0.01])
    r_max_A: list[float] = Field(default_factory=lambda: [15.0, 20.0, 30.0])
    noise_std: list[float] = Field(default_factory=lambda: [0.0, 0.02, 0.05])
    top_k: int = 6
    max_test_structures: int = 2000  # the sweep recomputes PDFs: at most this many test structures (random)


MODELS = ("cnn", "compact", "baseline")  # the published CNN, the CPU model, logistic regression


@asset(group_name=PIPELINE, check_specs=[AssetCheckSpec("cnn_beats_baseline", asset="space_group_evaluation"),
                                         AssetCheckSpec("compact_beats_baseline", asset="space_group_evaluation")])
def space_group_evaluation(context: AssetExecutionContext, config: EvaluationConfig, compute: ComputeResource,
                           pdf_structures: pd.DataFrame, pdf_profiles: dict, pdf_split: pd.DataFrame,
                           space_group_cnn: dict, space_group_compact_cnn: dict, space_group_baseline: dict):
    """Confusion matrices of the three models and accuracy versus Qmax, Qdamp, Uiso, r_max and noise."""
    classes = space_group_cnn["classes"]
    test_ids = set(pdf_split.loc[pdf_split["subset"] == "test", "structure_id"])
    crystals = [c for c in structures.frame_to_crystals(pdf_structures) if c.structure_id in test_ids]
    if len(crystals) > config.max_test_structures:
        keep = np.sort(compute.rng(4).choice(len(crystals), config.max_test_structures, replace=False))
        crystals = [crystals[i] for i in keep]
    true_index = np.searchsorted(classes, [c.space_group for c in crystals])
    settings = calculator.PdfSettings(**json.loads(str(pdf_profiles["settings_json"])))
    device = compute.keras_device()
    predictors = {
        "cnn": lambda x: classifiers.cnn_probabilities(space_group_cnn["model"], x, device),
        "compact": lambda x: compact.compact_probabilities(space_group_compact_cnn["model"], x,
                                                           space_group_compact_cnn["temperature"]),
        "baseline": lambda x: classifiers.baseline_probabilities(space_group_baseline["model"], x, len(classes)),
    }
    sweeps = {name: getattr(config, name) for name in ("qmax_inv_A", "qdamp_inv_A", "uiso_A2", "r_max_A", "noise_std")}
    started = time.perf_counter()
    sweep = evaluation.robustness_sweep(crystals, true_index, settings, sweeps, predictors, compute.rng(2),
                                        min(config.top_k, len(classes)))
    context.log.info(f"robustness sweep over {len(crystals)} test structures in {time.perf_counter() - started:.1f} s")
    bundles = {"cnn": space_group_cnn, "compact": space_group_compact_cnn, "baseline": space_group_baseline}
    sweep["model_id"] = sweep["model"].map({name: bundle["model_id"] for name, bundle in bundles.items()})
    write_export_csv(sweep, "space_group_robustness.csv")
    metrics = {name: bundle["metrics"] for name, bundle in bundles.items()}
    top1 = {name: m["top1_accuracy"] for name, m in metrics.items()}
    labels = [structures.space_group_label(c) for c in classes]
    titles = {"cnn": "published CNN", "compact": "compact CNN (CPU)", "baseline": "logistic regression"}
    yield Output(sweep, metadata={
        **{f"{name}_{key}": value for name in MODELS for key, value in headline_metrics(metrics[name]).items()},
        "n_test_structures": len(crystals),
        "n_test_profiles": metrics["cnn"]["n_test"],
        **{f"confusion_matrix_{name}": MetadataValue.md(confusion_matrix_markdown(
            {f"{titles[name]} (top-1 {top1[name]:.2f})": np.array(metrics[name]["confusion_matrix"])}, labels))
           for name in MODELS},
        "robustness": MetadataValue.md(figure_markdown(evaluation.sweep_figure(sweep, new_figure), "robustness")),
        "robustness_table": MetadataValue.md(sweep.drop(columns="model_id").to_markdown(index=False, floatfmt=".3g")),
    })
    for name in ("cnn", "compact"):
        yield AssetCheckResult(check_name=f"{name}_beats_baseline", passed=bool(top1[name] > top1["baseline"]),
                               metadata={f"{name}_top1_accuracy": round_sig(top1[name]),
                                         "baseline_top1_accuracy": round_sig(top1["baseline"])})


defs = Definitions(assets=[pdf_structures, pdf_profiles, pdf_split, space_group_cnn, space_group_compact_cnn,
                           space_group_baseline, space_group_evaluation, space_group_predictions])
