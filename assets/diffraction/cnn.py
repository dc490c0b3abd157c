"""The phase classifier: a Keras 1D CNN on max-normalised radial profiles (keras.ops only).

3 x [Conv1D(64, kernel 6) + MaxPooling1D(2)], Dropout 0.5, Dense 128, softmax.
Built from stock layers, so it runs on the TensorFlow and torch backends alike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from assets.diffraction.augment import normalise_max


def build_phase_cnn(n_points: int, n_phases: int):
    import keras

    layers = [keras.Input(shape=(n_points, 1))]
    for _ in range(3):
        layers += [keras.layers.Conv1D(64, 6, activation="relu"), keras.layers.MaxPooling1D(2)]
    layers += [
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(n_phases, activation="softmax", dtype="float32"),  # float32 softmax under a mixed policy
    ]
    model = keras.Sequential(layers, name="phase_cnn")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def stratified_split(labels: np.ndarray, test_share: float, rng: np.random.Generator) -> pd.DataFrame:
    """One row per pattern: its index, label and 'train' or 'test' (the same share of every class)."""
    split = np.full(len(labels), "train", dtype=object)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        split[members[: int(round(test_share * len(members)))]] = "test"
    return pd.DataFrame({"pattern": np.arange(len(labels)), "label": labels, "split": split})


def as_cnn_input(profiles: np.ndarray):
    """(n, points) -> max-normalised (n, points, 1) float32 through keras.ops."""
    import keras

    return keras.ops.expand_dims(keras.ops.convert_to_tensor(normalise_max(np.asarray(profiles, float)), "float32"), -1)


CUDA_BATCH_SIZE = 1024  # at least this batch on a GPU, where small batches leave it idle


def train_phase_cnn(profiles: np.ndarray, labels: np.ndarray, n_phases: int, epochs: int, batch_size: int,
                    device: str = "cpu", cuda_batch_size: int = CUDA_BATCH_SIZE):
    """Fit a fresh CNN in the caller's keras.device scope (`device`, as ComputeResource.keras_device names it);
    returns (model, per-epoch history dict). On a GPU it trains under mixed_bfloat16 at batch >= cuda_batch_size
    (0: batch_size) and returns a float32 copy; on the CPU exactly as asked."""
    from resources.devices import is_gpu, keras_float32_copy, keras_mixed_precision, training_batch_size

    with keras_mixed_precision(device):
        model = build_phase_cnn(profiles.shape[1], n_phases)
    history = model.fit(as_cnn_input(profiles), labels, epochs=epochs, verbose=0, shuffle=True,
                        batch_size=training_batch_size(batch_size, device, cuda_batch_size))
    if is_gpu(device):
        model = keras_float32_copy(model, lambda: build_phase_cnn(profiles.shape[1], n_phases))
    return model, {name: [float(v) for v in values] for name, values in history.history.items()}


def predict_probabilities(model, profiles: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Softmax phase probabilities (n, n_phases) as numpy."""
    import keras

    return keras.ops.convert_to_numpy(model.predict(as_cnn_input(profiles), batch_size=batch_size, verbose=0))


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts with rows = true class, columns = predicted class."""
    return np.bincount(true * n_classes + predicted, minlength=n_classes**2).reshape(n_classes, n_classes)
