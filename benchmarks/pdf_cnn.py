"""Training throughput of the published space-group CNN (Liu et al. 2019) on the CPU and, if present, a GPU.

    python -m benchmarks.pdf_cnn [--samples N] [--epochs E] [--batch-size B]

Profiles are random normalised rows of the model's shape (209 points, 8 classes):
throughput does not depend on their content. Prints samples per second for training
and inference; the last line is GPU / CPU training speed when a GPU is at hand, else
the CPU training samples per second.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

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
    quiet = lambda message: None  # noqa: E731
    train_cnn(x, y, x[:batch_size], y[:batch_size], N_CLASSES, CnnSettings(epochs=1, batch_size=batch_size),
              device, log=quiet)
    started = time.perf_counter()
    model, _ = train_cnn(x, y, x[:batch_size], y[:batch_size], N_CLASSES,
                         CnnSettings(epochs=epochs, batch_size=batch_size, early_stopping_patience=epochs),
                         device, log=quiet)
    train_rate = samples * epochs / (time.perf_counter() - started)
    cnn_probabilities(model, x[:batch_size], device)
    started = time.perf_counter()
    cnn_probabilities(model, x, device)
    return train_rate, samples / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    import keras

    from resources.compute import cuda_available

    print(f"keras_backend: {keras.backend.backend()}")
    print(f"samples: {args.samples}")
    print(f"batch_size: {args.batch_size}")
    cpu_train, cpu_predict = throughput("cpu:0", args.samples, args.epochs, args.batch_size)
    print(f"cpu_predict_samples_per_second: {cpu_predict:.1f}")
    if not cuda_available():
        print(f"cpu_train_samples_per_second: {cpu_train:.1f}")
        return 0
    gpu_train, gpu_predict = throughput("gpu:0", args.samples * 8, args.epochs, args.batch_size)
    print(f"cpu_train_samples_per_second: {cpu_train:.1f}")
    print(f"gpu_predict_samples_per_second: {gpu_predict:.1f}")
    print(f"gpu_train_samples_per_second: {gpu_train:.1f}")
    print(f"gpu_over_cpu_train_speed: {gpu_train / cpu_train:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
