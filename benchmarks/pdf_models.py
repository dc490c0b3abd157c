"""The CPU model against the published CNN: training samples/s on the same profiles, and at-scale accuracy.

    python -m benchmarks.pdf_models [--data-root DIR] [--samples N] [--batch-size B]

With --data-root (the data root of a pdf_job run, e.g. the at-scale run of configs/pdf_scale.yaml), both
models train on the first N training profiles of that run's stored split, back to back, one epoch each
after a warm-up epoch (graph building, thread pools), through the pipeline's own training functions
(`train_cnn`: Adam, class weights, the rate schedule; `train_compact_cnn`: AdamW, one-cycle rate), at the
same batch size; and the test-set top-1 / top-2 / top-6 of the models that run trained (same split, same
wall-clock budget) are printed beside them. Without it, the profiles are random rows of the model shape
(throughput does not depend on their content). Either way the shipped compact model is scored on generated
profiles it never saw (`benchmarks.pdf_calibration`: --shipped-parents N fresh parents per group, generated with its
card's settings, cached in the data root; 0 skips it): its calibrated top-1, top-2 and ECE (15 bins), and the 90 %
sets' coverage and mean size. With --data-root, the run's compact model's ECE and sets come from its own test set, and for an ensemble
each member's test figures are printed as mean ± sd over the seeds.
Last line: the compact model's training samples/s over the published CNN's.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from assets.pdf import calibration, classifiers, compact  # noqa: E402
from assets.pdf.calculator import MODEL_GRID_A  # noqa: E402
from benchmarks import pdf_calibration  # noqa: E402

N_CLASSES = 8


def quiet(message: str) -> None:
    pass


def published_rate(x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    """Training samples/s of the published CNN (CPU), after a warm-up epoch on two batches."""
    settings = classifiers.CnnSettings(epochs=1, batch_size=batch_size)
    classifiers.train_cnn(x[: 2 * batch_size], y[: 2 * batch_size], x[:batch_size], y[:batch_size], N_CLASSES,
                          settings, "cpu", log=quiet)
    started = time.perf_counter()
    classifiers.train_cnn(x, y, x[:batch_size], y[:batch_size], N_CLASSES, settings, "cpu", log=quiet)
    return len(x) / (time.perf_counter() - started)


def compact_rate(x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    """Training samples/s of the compact CNN (CPU), timed the same way (the validation pass included)."""
    settings = compact.CompactSettings(epochs=1, batch_size=batch_size)
    compact.train_compact_cnn(x[: 2 * batch_size], y[: 2 * batch_size], x[:batch_size], y[:batch_size], N_CLASSES,
                              settings, log=quiet)
    started = time.perf_counter()
    compact.train_compact_cnn(x, y, x[:batch_size], y[:batch_size], N_CLASSES, settings, log=quiet)
    return len(x) / (time.perf_counter() - started)


def stored_run(root: Path, samples: int) -> tuple[np.ndarray, np.ndarray, dict, dict]:
    """(first training profiles, their class indices, {model: test metrics}, the compact model's spread over its
    members' seeds: {figure: {mean, sd, values}}, empty for one network) of a pdf_job run's data root."""
    from resources.storage import MaterialsStorage

    storage = MaterialsStorage(root=str(root)).create_io_manager(None)
    profiles, split = storage.load_stored("pdf_profiles"), storage.load_stored("pdf_split")
    classes = classifiers.class_labels(profiles["space_group"])
    rows = classifiers.subset_rows(profiles["structure_id"], split, ("train",))[:samples]
    bundles = {name: storage.load_stored(asset) for name, asset in
               (("published_cnn", "space_group_cnn"), ("compact_cnn", "space_group_compact_cnn"),
                ("baseline", "space_group_baseline"))}
    metrics = {name: bundle["metrics"] for name, bundle in bundles.items()}
    card = bundles["compact_cnn"]["card"]
    spread = card["member_spread"] if len(card.get("members", [])) > 1 else {}
    n_train = int((split["subset"] == "train").sum())
    print(f"run_training_crystals: {n_train} (of {len(split)}; {split['parent_id'].nunique()} parents)")
    return profiles["profiles"][rows], np.searchsorted(classes, profiles["space_group"][rows]), metrics, spread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=None, help="data root of a pdf_job run")
    parser.add_argument("--samples", type=int, default=2048, help="training profiles timed per model")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--shipped-parents", type=int, default=100,
                        help="fresh parents per group to score the shipped model on (0: skip)")
    args = parser.parse_args(argv)
    if args.data_root is not None:
        if not (args.data_root / "storage" / "pdf_profiles.manifest.json").exists():
            print(f"--data-root {args.data_root}: no stored pdf_profiles (run pdf_job there first)", file=sys.stderr)
            return 2
        x, y, metrics, spread = stored_run(args.data_root, args.samples)
    else:
        rng = np.random.default_rng(0)
        x, y, metrics, spread = rng.random((args.samples, len(MODEL_GRID_A)), dtype=np.float32), \
            rng.integers(0, N_CLASSES, args.samples), {}, {}
    print(f"cpu_threads: {os.cpu_count()}")
    print(f"samples_timed_each_model: {len(x)} at batch {args.batch_size}")
    for name, model_metrics in metrics.items():
        # top-6 with 6 or more classes; ece and the 90 % sets for the calibrated compact model
        for key in ("top1_accuracy", "top2_accuracy", "top6_accuracy", "ece", "set90_coverage", "set90_mean_size"):
            if key in model_metrics:
                print(f"{name}_test_{key}: {model_metrics[key]:.3f}")
    for key, figure in spread.items():  # the compact ensemble's members, each scored alone
        print(f"compact_cnn_members_test_{key}: {calibration.spread_text(figure)}")
    if args.shipped_parents:
        shipped = compact.load_model_bundle()
        scores = pdf_calibration.score_on_fresh_parents(shipped, args.shipped_parents, shipped["temperature"],
                                                        shipped["set90_threshold"], quiet)
        print(f"shipped_generated_test_profiles: {scores['n_rows']}")
        for key in ("top1", "top2", "ece", "set90_coverage", "set90_mean_size"):
            print(f"shipped_generated_test_{key}: {scores[key]:.3f}")
    published = published_rate(x, y, args.batch_size)
    ours = compact_rate(x, y, args.batch_size)
    print(f"published_cnn_train_samples_per_second: {published:.1f}")
    print(f"compact_cnn_train_samples_per_second: {ours:.1f}")
    print(f"compact_over_published_train_speed: {ours / published:.1f}")
    return 0


if __name__ == "__main__":
    from benchmarks import results

    raise SystemExit(results.run(main, "pdf_models"))
