"""Training throughput of the published space-group CNN (Liu et al. 2019) on the CPU and, if present, a GPU.

    python -m benchmarks.pdf_cnn [--samples N] [--epochs E] [--batch-sizes 64,256] [--paper-estimate]

Profiles are random normalised rows of the model's shape (209 points, 8 classes):
throughput does not depend on their content. Every device trains on the same number of
samples for the same epochs at each batch size, after one warm-up epoch (graph building),
through `train_cnn` itself (Adam, class weights, the rate schedule, early stopping on
validation, which never fires here: patience = epochs). Prints training and inference
samples/s per device and batch size; with a GPU the last line is GPU / CPU at the largest
batch (equal samples), else CPU training samples/s at the largest batch.

--paper-estimate also prints the CNN share of configs/pdf_paper.yaml on this machine:
(train profiles x epochs) / training rate at the config's batch size, plus one validation
pass per epoch at the inference rate: a measured partial run, extrapolated.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from assets.pdf.calculator import MODEL_GRID_A  # noqa: E402
from assets.pdf.classifiers import CnnSettings, cnn_probabilities, train_cnn  # noqa: E402

N_CLASSES = 8


def throughput(device: str, samples: int, epochs: int, batch_size: int) -> tuple[float, float]:
    """(training samples/s after a warm-up epoch, inference samples/s) on a Keras device."""
    rng = np.random.default_rng(0)
    x = rng.random((samples, len(MODEL_GRID_A)), dtype=np.float32)
    y = rng.integers(0, N_CLASSES, samples)
    validation = slice(0, min(samples, batch_size))
    quiet = lambda message: None  # noqa: E731
    train_cnn(x[: 2 * batch_size], y[: 2 * batch_size], x[validation], y[validation], N_CLASSES,
              CnnSettings(epochs=1, batch_size=batch_size), device, log=quiet)  # warm-up: build and trace
    started = time.perf_counter()
    model, _ = train_cnn(x, y, x[validation], y[validation], N_CLASSES,
                         CnnSettings(epochs=epochs, batch_size=batch_size, early_stopping_patience=epochs),
                         device, log=quiet)
    train_rate = samples * epochs / (time.perf_counter() - started)
    cnn_probabilities(model, x[:batch_size], device)
    started = time.perf_counter()
    cnn_probabilities(model, x, device)
    return train_rate, samples / (time.perf_counter() - started)


def paper_estimate(rate_by_batch: dict[int, tuple[float, float]], config_path: Path) -> None:
    """Hours of the CNN stage of a config, from the measured rates (batch size of the config if measured)."""
    import yaml

    config = yaml.safe_load(config_path.read_text())["ops"]
    n_structures = config["pdf_structures"]["config"]["structures_per_group"] * len(
        config["pdf_structures"]["config"]["space_groups"])
    copies = config["pdf_profiles"]["config"].get("copies_per_structure", 1)
    split = config.get("pdf_split", {}).get("config", {})
    rest = n_structures * copies * (1 - split.get("test_fraction", 0.2))
    n_train, n_validation = rest * (1 - split.get("validation_fraction", 0.2)), rest * split.get("validation_fraction", 0.2)
    cnn = config["space_group_cnn"]["config"]
    batch = cnn["batch_size"] if cnn["batch_size"] in rate_by_batch else max(rate_by_batch)
    train_rate, predict_rate = rate_by_batch[batch]
    seconds = cnn["epochs"] * (n_train / train_rate + n_validation / predict_rate)
    print(f"paper_config: {config_path} ({n_train:.0f} training, {n_validation:.0f} validation profiles, "
          f"{cnn['epochs']} epochs, batch {batch})")
    print(f"paper_cnn_hours_extrapolated (measured {train_rate:.1f} samples/s): {seconds / 3600:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-sizes", default="64,256", help="comma-separated")
    parser.add_argument("--paper-estimate", action="store_true")
    parser.add_argument("--config", default="configs/pdf_paper.yaml")
    args = parser.parse_args()
    import keras

    from resources.compute import cuda_available

    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    print(f"keras_backend: {keras.backend.backend()}")
    print(f"cpu_threads: {os.cpu_count()}")
    print(f"samples_each_device: {args.samples} x {args.epochs} epochs")
    cpu = {}
    for batch in batch_sizes:
        cpu[batch] = throughput("cpu", args.samples, args.epochs, batch)
        print(f"cpu_batch{batch}_train_samples_per_second: {cpu[batch][0]:.1f}")
        print(f"cpu_batch{batch}_predict_samples_per_second: {cpu[batch][1]:.1f}")
    if args.paper_estimate:
        paper_estimate(cpu, Path(args.config))
    largest = max(batch_sizes)
    if not cuda_available():
        print(f"cpu_train_samples_per_second (batch {largest}): {cpu[largest][0]:.1f}")
        return 0
    gpu = {}
    for batch in batch_sizes:
        gpu[batch] = throughput("gpu:0", args.samples, args.epochs, batch)  # the same samples as the CPU side
        print(f"gpu_batch{batch}_train_samples_per_second: {gpu[batch][0]:.1f}")
        print(f"gpu_batch{batch}_predict_samples_per_second: {gpu[batch][1]:.1f}")
    print(f"gpu_over_cpu_train_speed (batch {largest}, {args.samples} x {args.epochs} samples each): "
          f"{gpu[largest][0] / cpu[largest][0]:.1f}")
    return 0


if __name__ == "__main__":
    from benchmarks import results

    raise SystemExit(results.run(main, "pdf_cnn"))
