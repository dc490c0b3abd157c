"""Dagster wiring of the `diffraction` pipeline (thin: read Config, call the science, add metadata).

    diffraction_patterns (partition per request file, driven by simulation_request_sensor)
    diffraction_default_patterns (the embedded default request, unpartitioned)
        -> phase_cnn -> phase_predictions -> prediction_evaluation
    experimental_maps (raw/diffraction/experimental/*.npz + a synthetic map) --^

The jobs (`diffraction_job`, `materials_demo`) run everything except the partitioned
asset: a run without a partition key has no request to simulate, so requests go
through the sensor and the embedded default through `diffraction_default_patterns`
(same simulator, same HDF5 layout). `phase_cnn` trains on the default or,
with `request_partitions`, on materialized request partitions.
"""


import io
import json
import time
import uuid
from typing import Literal

import numpy as np
from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSelection,
    Config,
    Definitions,
    DynamicPartitionsDefinition,
    Failure,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from assets.diffraction.requests import DEFAULT_PHASES
from resources.cluster import DaskResource
from resources.compute import ComputeResource
from resources.datapaths import (
    Rejection, atomic_write_bytes, exports_dir, raw_dir, relative_to_root, requests_dir, sha256_bytes, write_export_csv,
    write_quarantine,
)
from resources.quarantine import report_rejections
from resources.plots import confusion_matrix_markdown, figure_markdown, frame_table, new_figure, round_sig
from resources.storage import Hdf5Tree

PIPELINE = "diffraction"
simulation_requests = DynamicPartitionsDefinition(name="diffraction_simulation_requests")


def experimental_dir():
    return raw_dir(PIPELINE) / "experimental"


def _simulation_output(context, request, dask: DaskResource, compute: ComputeResource, chunk_size: int) -> Output:
    from assets.diffraction.simulation import simulate_request

    device = "cuda" if compute.resolved_device() == "cuda" else None  # the torch path only pays on a GPU
    simulator = "torch on cuda" if device else "numpy"
    context.log.info(f"simulating {len(request.phases)} phases x {request.orientations_per_phase} orientations x {len(request.seeds)} seeds on {dask.describe()} with {simulator}")
    tree, stats = simulate_request(request, map_fn=dask.map, chunk_size=chunk_size, device=device)
    counts = np.bincount(tree["1d/y_px"], minlength=len(request.phases))
    return Output(
        Hdf5Tree(tree),
        metadata={
            "simulation_id": tree["metadata/id"],
            "request_name": request.name,
            "patterns": stats["patterns"],
            "patterns_per_phase": MetadataValue.json(dict(zip(request.phases, counts.tolist()))),
            "profile_shape": str(tree["1d/x_px"].shape),
            "chunks": stats["chunks"],
            "planning_s": round(stats["planning_s"], 3),
            "simulation_s": round(stats["simulation_s"], 3),
            "patterns_per_s": round(stats["patterns_per_s"], 1),
            "dask": dask.describe(),
            "simulator": simulator,
            "request": MetadataValue.json(request.to_dict()),
        },
    )


class PatternsConfig(Config):
    chunk_size: int = Field(1000, description="orientations per Dask task")


@asset(group_name=PIPELINE, partitions_def=simulation_requests, kinds={"hdf5"})
def diffraction_patterns(context: AssetExecutionContext, config: PatternsConfig, dask: DaskResource,
                         compute: ComputeResource) -> Output:
    """Simulated 1D profiles of one request file in data/requests/ (partition key: file name + content hash)."""
    from assets.diffraction.phases import PhaseError, available_phases
    from assets.diffraction.requests import RequestError, partition_key, read_request, request_files

    key = context.partition_key
    matches = [path for path in request_files(requests_dir()) if partition_key(path) == key]
    if not matches:
        raise Failure(f"partition {key}: no file in {requests_dir()} with this name and content (changed or removed)")
    try:
        request = read_request(matches[0], available_phases())
        return _simulation_output(context, request, dask, compute, config.chunk_size)
    except (RequestError, PhaseError) as error:
        write_quarantine(PIPELINE, [Rejection(str(matches[0]), None, str(error))])
        raise Failure(str(error)) from error


class DefaultPatternsConfig(Config):
    phases: list[str] = Field(list(DEFAULT_PHASES), description="CIF stems in crystal_models/ or raw/diffraction/cif/")
    orientations_per_phase: int = 300
    seeds: list[int] = [0]
    chunk_size: int = 1000


@asset(group_name=PIPELINE, kinds={"hdf5"})
def diffraction_default_patterns(context: AssetExecutionContext, config: DefaultPatternsConfig, dask: DaskResource,
                                 compute: ComputeResource) -> Output:
    """The embedded default simulation request (no request file needed), same simulator and layout."""
    from assets.diffraction.phases import available_phases
    from assets.diffraction.requests import parse_request

    raw = {"phases": config.phases, "orientations_per_phase": config.orientations_per_phase, "seeds": config.seeds}
    request = parse_request(raw, "diffraction_default_patterns config", available_phases())
    return _simulation_output(context, request, dask, compute, config.chunk_size)


def _load_request_partitions(context, keys: list[str]) -> list[dict]:
    """Stored diffraction_patterns partitions, read through the configured IO manager."""
    io_manager = context.resources.io_manager
    materialized = context.instance.get_materialized_partitions(diffraction_patterns.key)
    missing = sorted(set(keys) - set(materialized))
    if missing:
        raise Failure(f"diffraction_patterns partitions {missing} are not materialized (materialized: {sorted(materialized)})")
    return [io_manager.load_stored(diffraction_patterns.key.path[-1], key) for key in keys]


def _training_set(trees: list[dict]) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, dict]:
    first = trees[0]
    for tree in trees[1:]:
        if list(tree["metadata/phases"]) != list(first["metadata/phases"]) or not np.allclose(tree["1d/x_all_q_axis"], first["1d/x_all_q_axis"]):
            raise Failure("selected partitions differ in phases or q axis; train on requests with the same phases and crop")
    x = np.concatenate([t["1d/x_px"] for t in trees])
    y = np.concatenate([t["1d/y_px"] for t in trees])
    return x, y, list(first["metadata/phases"]), np.asarray(first["1d/x_all_q_axis"]), json.loads(first["metadata/request"])


class PhaseCnnConfig(Config):
    request_partitions: list[str] = Field([], description="diffraction_patterns partitions to train on; empty: the embedded default")
    epochs: int = 10
    batch_size: int = 64
    test_share: float = 0.2


@asset(group_name=PIPELINE, deps=[diffraction_patterns], required_resource_keys={"io_manager", "compute"}, kinds={"keras"}, pool="gpu")
def phase_cnn(context: AssetExecutionContext, config: PhaseCnnConfig, diffraction_default_patterns: dict) -> Output:
    """Keras 1D CNN phase classifier; accuracy and confusion matrix on a held-out simulated split."""
    from assets.diffraction.cnn import confusion_matrix, predict_probabilities, stratified_split, train_phase_cnn
    import keras

    compute: ComputeResource = context.resources.compute
    compute.seed_everything()
    trees = _load_request_partitions(context, config.request_partitions) if config.request_partitions else [diffraction_default_patterns]
    x, y, phases, q_axis, request = _training_set(trees)
    split = stratified_split(y, config.test_share, compute.rng(offset=11))
    train, test = (split["split"] == "train").to_numpy(), (split["split"] == "test").to_numpy()
    started = time.perf_counter()
    with keras.device(compute.keras_device()):
        model, history = train_phase_cnn(x[train], y[train], len(phases), config.epochs, config.batch_size,
                                         compute.keras_device())
        predicted = predict_probabilities(model, x[test]).argmax(axis=1)
    training_s = time.perf_counter() - started
    matrix = confusion_matrix(y[test], predicted, len(phases))
    accuracy = float(np.trace(matrix) / max(matrix.sum(), 1))
    cnn_id = str(uuid.uuid4())
    bundle = {
        "model": model,
        "cnn_id": cnn_id,
        "phases": phases,
        "q_axis": q_axis,
        "request": request,
        "split": split,
        "training": {"source": config.request_partitions or ["embedded_default"], "history": history},
    }
    return Output(
        bundle,
        metadata={
            "cnn_id": cnn_id,
            "test_accuracy": round_sig(accuracy),
            "train_patterns": int(train.sum()),
            "test_patterns": int(test.sum()),
            "epochs": config.epochs,
            "training_s": round(training_s, 2),
            "final_train_loss": round_sig(history["loss"][-1]),
            "device": compute.keras_device(),
            "confusion_matrix": MetadataValue.md(confusion_matrix_markdown({"held-out simulated": matrix}, phases)),
        },
    )


class ExperimentalMapsConfig(Config):
    include_synthetic: Literal["auto", "always", "never"] = Field(
        "auto", description="the synthetic map with its ground truth: auto = only when the user dropped no map")
    synthetic_rows: int = 24
    synthetic_cols: int = 24
    boundary_px: float = Field(2.0, description="width of the mixed band at region boundaries (pixels)")
    synthetic_seed: int = 7
    phases: list[str] = list(DEFAULT_PHASES)
    expected_points: int = 147
    max_rejected_share: float = Field(0.5, description="blocking check fails above this share of rejected user files")
    rejected_share_severity: Literal["ERROR", "WARN"] = Field("ERROR", description="WARN lets the run go on")


@asset(
    group_name=PIPELINE,
    check_specs=[AssetCheckSpec("rejected_share_within_bound", asset="experimental_maps", blocking=True)],
)
def experimental_maps(context: AssetExecutionContext, config: ExperimentalMapsConfig):
    """Validated experimental maps from raw/diffraction/experimental/*.npz (the synthetic map when there are none)."""
    from assets.diffraction.experimental import MapError, load_map, synthetic_map
    from assets.diffraction.phases import available_phases
    from assets.diffraction.requests import parse_request

    files = sorted(experimental_dir().glob("*.npz")) if experimental_dir().is_dir() else []
    maps, rejections, accepted = {}, [], {}
    for path in files:
        try:
            maps[path.stem] = {**load_map(path, config.expected_points), "source": relative_to_root(path)}
            accepted[str(path)] = 1
        except MapError as error:
            rejections.append(Rejection(str(path), None, str(error)))
            accepted[str(path)] = 0
    summary = report_rejections(context.log, PIPELINE, rejections, accepted)
    if config.include_synthetic == "always" or (config.include_synthetic == "auto" and not files):
        request = parse_request({"phases": config.phases}, "experimental_maps config", available_phases())
        synthetic = synthetic_map(request, config.synthetic_rows, config.synthetic_cols, config.boundary_px, config.synthetic_seed)
        maps["synthetic_map"] = {**synthetic, "source": "synthetic"}
    yield Output(
        maps,
        metadata={
            **summary.metadata(),
            "maps": MetadataValue.json({name: {"shape": list(m["y"].shape), "source": m["source"]} for name, m in maps.items()}),
        },
    )
    yield summary.check_result("rejected_share_within_bound", config.max_rejected_share, config.rejected_share_severity)


def _phase_map_markdown(name: str, labels: np.ndarray, phases: list[str], truth: np.ndarray | None) -> str:
    panels = {"predicted": labels} if truth is None else {"predicted": labels, "ground truth": truth}
    fig, axes = new_figure(ncols=len(panels), size=(4.0, 3.5))
    for ax, (title, image) in zip(axes[0], panels.items()):
        shown = ax.imshow(image, cmap="tab10", vmin=-0.5, vmax=9.5, interpolation="nearest")
        ax.set_title(f"{name}: {title}")
    colorbar = fig.colorbar(shown, ax=axes[0].tolist(), ticks=range(len(phases)))
    colorbar.ax.set_yticklabels(phases, fontsize=7)
    colorbar.ax.set_ylim(-0.5, len(phases) - 0.5)
    return figure_markdown(fig, f"phase map {name}")


def _npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _map_profiles(cnn: dict, arrays: dict) -> np.ndarray:
    from assets.diffraction.experimental import profiles_on_axis

    return profiles_on_axis(arrays["y"], np.asarray(arrays["x"], float), np.asarray(cnn["q_axis"], float))


def _truth_in_cnn_order(arrays: dict, phases: list[str]) -> np.ndarray | None:
    """The ground truth re-indexed to the CNN's phase order (None without truth or phase names)."""
    if "truth" not in arrays or "phases" not in arrays:
        return None
    lookup = np.array([phases.index(p) if p in phases else -1 for p in arrays["phases"].tolist()])
    return lookup[arrays["truth"]]


def _map_digest(arrays: dict, cnn_id: str) -> str:
    """What a stored prediction depends on: the map's q axis and profiles, and the model."""
    return sha256_bytes(np.ascontiguousarray(arrays["x"]).tobytes() + np.ascontiguousarray(arrays["y"]).tobytes() + cnn_id.encode())


def _stored_prediction(path, digest: str) -> dict | None:
    """The export at `path` when it was made from the same map by the same model (None otherwise)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "input_sha256" in archive.files and str(archive["input_sha256"]) == digest:
                return {key: archive[key] for key in archive.files}
    except (OSError, ValueError):
        pass
    return None


@asset(group_name=PIPELINE, required_resource_keys={"compute"})
def phase_predictions(
    context: AssetExecutionContext, phase_cnn: dict, experimental_maps: dict
) -> Output:
    """Phase probabilities per map pixel, exported as exports/<name>_probability_pred.npz.

    Incremental: a map whose export was made from the same content by the same CNN is not predicted again.
    """
    from assets.diffraction.cnn import predict_probabilities
    import keras

    cnn, phases = phase_cnn, list(phase_cnn["phases"])
    predictions, plots, paths, reused = {}, [], {}, []
    for name, arrays in experimental_maps.items():
        path = exports_dir() / f"{name}_probability_pred.npz"
        digest = _map_digest(arrays, cnn["cnn_id"])
        result = _stored_prediction(path, digest)
        if result is not None:
            reused.append(name)
        else:
            with keras.device(context.resources.compute.keras_device()):
                probabilities = predict_probabilities(cnn["model"], _map_profiles(cnn, arrays))
            pred = probabilities.reshape(*arrays["y"].shape[:2], len(phases)).astype(np.float32)
            result = {"pred": pred, "phases": np.array(phases), "cnn_id": np.array(cnn["cnn_id"]),
                      "source": np.array(arrays["source"]), "input_sha256": np.array(digest)}
            atomic_write_bytes(path, _npz_bytes(result))
        paths[name] = relative_to_root(path)
        predictions[name] = result
        plots.append(_phase_map_markdown(name, result["pred"].argmax(-1), phases, _truth_in_cnn_order(arrays, phases)))
    if reused:
        context.log.info(f"{len(reused)} map(s) unchanged since their last prediction with this CNN, not predicted again: {reused}")
    return Output(
        predictions,
        metadata={
            "cnn_id": cnn["cnn_id"],
            "maps": len(predictions),
            "maps_predicted": len(predictions) - len(reused),
            "maps_unchanged": len(reused),
            "exports": MetadataValue.json(paths),
            "phase_maps": MetadataValue.md("\n\n".join(plots) or "no maps"),
        },
    )


class EvaluationConfig(Config):
    reference_orientations: int = Field(300, description="random orientations averaged for each phase's reference peaks")
    tolerance_px: float = Field(2.0, description="a peak matches when |dq| <= tolerance_px x calibration")
    prominence: float = Field(0.05, description="peak prominence as a share of the mean profile's maximum")


@asset(group_name=PIPELINE)
def prediction_evaluation(
    context: AssetExecutionContext,
    config: EvaluationConfig,
    phase_cnn: dict,
    experimental_maps: dict,
    phase_predictions: dict,
):
    """Symmetric peak match of each predicted phase's mean pattern; accuracy where a ground truth exists."""
    import pandas as pd

    from assets.diffraction.evaluation import evaluate_map, peak_positions
    from assets.diffraction.phases import available_phases
    from assets.diffraction.requests import parse_request
    from assets.diffraction.simulation import clean_profiles

    cnn, phases = phase_cnn, list(phase_cnn["phases"])
    request = parse_request(cnn["request"], "phase_cnn request", available_phases())
    q_axis = np.asarray(cnn["q_axis"], float)
    rng = np.random.default_rng(0)
    reference = {
        index: peak_positions(clean_profiles(request, index, config.reference_orientations, rng).mean(axis=0), q_axis, config.prominence)
        for index in range(len(phases))
    }
    tolerance = config.tolerance_px * request.calibration_inv_A_per_px
    rows, accuracies = [], {}
    for name, arrays in experimental_maps.items():
        labels = phase_predictions[name]["pred"].argmax(-1)
        truth = _truth_in_cnn_order(arrays, phases)
        accuracy = float(np.mean(labels == truth)) if truth is not None else float("nan")
        accuracies[name] = accuracy
        for row in evaluate_map(_map_profiles(cnn, arrays), labels.ravel(), q_axis, reference, tolerance, config.prominence):
            rows.append({"map": name, "source": arrays["source"], "phase": phases[row.pop("phase_index")], **row,
                         "map_accuracy": accuracy})
    report = pd.DataFrame(rows)
    path = write_export_csv(report, "diffraction_prediction_evaluation.csv")
    return Output(
        report,
        metadata={
            "cnn_id": cnn["cnn_id"],
            **{f"map_accuracy_{name}": round_sig(value) for name, value in accuracies.items() if np.isfinite(value)},
            "mean_f1": round_sig(report["f1"].mean()) if len(report) else float("nan"),
            "mean_abs_dq_inv_A": round_sig(report["mean_abs_dq_inv_A"].mean()) if len(report) else float("nan"),
            "report": frame_table(report),
            "export": relative_to_root(path),
        },
    )


defs = Definitions(
    assets=[
        diffraction_patterns,
        diffraction_default_patterns,
        phase_cnn,
        experimental_maps,
        phase_predictions,
        prediction_evaluation,
    ],
)

# A run without a partition key has no request to simulate: jobs leave the partitioned asset to the sensor.
job_selection = AssetSelection.groups(PIPELINE) - AssetSelection.assets(diffraction_patterns)
demo_selection = job_selection
