"""Space-group classifiers on normalised PDF profiles: the published 1D CNN and a baseline.

The CNN is the architecture of Liu, Tao, Hsu, Du and Billinge (Acta Cryst. A 75, 633,
2019), written with Keras layers and `keras.ops` only so it runs on the TensorFlow and
the torch backends. Both models see the same stored structure-level split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class CnnSettings:
    epochs: int = 100
    batch_size: int = 32
    learning_rates: tuple[float, ...] = (5e-4, 5e-5, 5e-6)
    rate_switch_epochs: tuple[int, ...] = (40, 60)  # epoch where the next rate starts
    early_stopping_patience: int = 20  # epochs without a better validation accuracy
    l2: float = 1e-5
    dropout: float = 0.5
    batch_norm_momentum: float = 0.99  # Keras default; lower it when a short run has few steps
    cuda_batch_size: int = 1024  # at least this batch on a GPU (fills it: 47k samples/s vs 1.7k at 64); 0: batch_size
    max_train_seconds: float = 0.0  # 0: no wall-clock budget; else training stops at the batch that passes it


def stratified_split(structure_ids: np.ndarray, labels: np.ndarray, test_fraction: float,
                     validation_fraction: float, seed: int, parent_ids: np.ndarray | None = None) -> pd.DataFrame:
    """One row per structure: structure_id, parent_id, space_group, subset (train | validation | test).

    Parents are split, stratified by space group (a class with too few parents to stratify is split at
    random); every structure goes where its parent goes, so no variant of a test parent is trained on.
    parent_ids None: every structure is its own parent.
    """
    from sklearn.model_selection import train_test_split

    parents = structure_ids if parent_ids is None else parent_ids
    table = pd.DataFrame({"structure_id": structure_ids, "parent_id": parents, "space_group": labels}) \
        .drop_duplicates("structure_id")
    groups = table.drop_duplicates("parent_id")[["parent_id", "space_group"]]

    def stratify(frame: pd.DataFrame):
        counts = frame["space_group"].value_counts()
        return frame["space_group"] if counts.min() >= 2 else None

    rest, test = train_test_split(groups, test_size=test_fraction, random_state=seed, stratify=stratify(groups))
    train, validation = train_test_split(rest, test_size=validation_fraction, random_state=seed,
                                         stratify=stratify(rest))
    subset = pd.concat([train.assign(subset="train"), validation.assign(subset="validation"),
                        test.assign(subset="test")]).set_index("parent_id")["subset"]
    table["subset"] = table["parent_id"].map(subset)
    return table.sort_values("structure_id").reset_index(drop=True)


def class_labels(space_groups: np.ndarray) -> list[int]:
    """The classes, sorted: column k of every probability matrix is space group class_labels[k]."""
    return sorted(int(group) for group in np.unique(space_groups))


def subset_rows(profile_ids: np.ndarray, split: pd.DataFrame, subsets: tuple[str, ...]) -> np.ndarray:
    """Row indices of profiles whose structure belongs to the given subsets."""
    chosen = set(split.loc[split["subset"].isin(subsets), "structure_id"])
    return np.flatnonzero(np.isin(profile_ids, list(chosen)))


def inverse_frequency_weights(label_index: np.ndarray, n_classes: int) -> dict[int, float]:
    """Keras class_weight: n / (n_classes * count), so each class weighs the same in the loss."""
    counts = np.bincount(label_index, minlength=n_classes)
    return {k: float(len(label_index) / (n_classes * counts[k])) if counts[k] else 0.0 for k in range(n_classes)}


def step_learning_rate(epoch: int, rates: tuple[float, ...], switch_epochs: tuple[int, ...]) -> float:
    """Piecewise-constant rate: rates[k] from switch_epochs[k-1] on."""
    return float(rates[int(np.searchsorted(switch_epochs, epoch, side="right"))])


def build_cnn(n_points: int, n_classes: int, l2: float = 1e-5, dropout: float = 0.5, momentum: float = 0.99):
    """BN -> Conv1D(256, 32) -> BN -> Conv1D(64, 32) -> BN -> MaxPool -> Dropout -> Dense(128) -> BN -> Dropout -> softmax."""
    import keras
    from keras import layers

    regulariser = keras.regularizers.L2(l2)

    def batch_norm():
        return layers.BatchNormalization(momentum=momentum)

    return keras.Sequential(
        [
            keras.Input((n_points, 1)),
            batch_norm(),
            layers.Conv1D(256, 32, activation="relu", padding="same", kernel_regularizer=regulariser),
            batch_norm(),
            layers.Conv1D(64, 32, activation="relu", padding="same", kernel_regularizer=regulariser),
            batch_norm(),
            layers.MaxPooling1D(),
            layers.Dropout(dropout),
            layers.Flatten(),
            layers.Dense(128, activation="relu", kernel_regularizer=regulariser),
            batch_norm(),
            layers.Dropout(dropout),
            layers.Dense(n_classes, activation="softmax", dtype="float32"),  # float32 softmax under a mixed policy
        ],
        name="space_group_cnn",
    )


def wall_clock_budget(max_seconds: float, log):
    """A Keras callback that stops training at the first batch past max_seconds (0: never)."""
    import keras

    class WallClockBudget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if max_seconds and time.perf_counter() - self.started >= max_seconds and not self.model.stop_training:
                log(f"wall-clock budget of {max_seconds:g} s spent: training stops")
                self.model.stop_training = True

    return WallClockBudget()


def train_cnn(train_x: np.ndarray, train_index: np.ndarray, validation_x: np.ndarray, validation_index: np.ndarray,
              n_classes: int, settings: CnnSettings, device: str = "cpu", log=print):
    """Fit the CNN (Adam, categorical cross-entropy, class weights, rate steps, early stopping, an optional
    wall-clock budget); logs every epoch with its rate and the time left.

    On a GPU (device "gpu:0") it trains under mixed_bfloat16 at batch >= settings.cuda_batch_size and returns a
    float32 copy; on the CPU exactly as configured. Returns (model, history dict of per-epoch lists).
    """
    import keras

    from resources.devices import is_gpu, keras_float32_copy, keras_mixed_precision, training_batch_size
    from resources.progress import Progress

    progress = Progress("published CNN training", settings.epochs, log, unit="epochs", every_s=0.0)
    epoch_started = [time.perf_counter()]

    def log_progress(epoch, logs):
        rate = len(train_x) / max(time.perf_counter() - epoch_started[0], 1e-9)
        log(f"epoch {epoch}: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(logs.items()))
            + f" ({rate:,.0f} samples/s)")
        progress.update(epoch + 1)
        epoch_started[0] = time.perf_counter()

    def build():
        return build_cnn(train_x.shape[1], n_classes, settings.l2, settings.dropout, settings.batch_norm_momentum)

    with keras.device(device):
        with keras_mixed_precision(device):
            model = build()
        model.compile(optimizer=keras.optimizers.Adam(settings.learning_rates[0]),
                      loss="categorical_crossentropy", metrics=["accuracy"])
        callbacks = [
            keras.callbacks.LearningRateScheduler(
                lambda epoch: step_learning_rate(epoch, settings.learning_rates, settings.rate_switch_epochs)),
            keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=settings.early_stopping_patience,
                                          restore_best_weights=True),
            keras.callbacks.LambdaCallback(on_epoch_end=log_progress),
            wall_clock_budget(settings.max_train_seconds, log),
        ]
        history = model.fit(
            train_x[..., None], keras.utils.to_categorical(train_index, n_classes),
            validation_data=(validation_x[..., None], keras.utils.to_categorical(validation_index, n_classes)),
            epochs=settings.epochs, batch_size=training_batch_size(settings.batch_size, device, settings.cuda_batch_size),
            verbose=0, shuffle=True, class_weight=inverse_frequency_weights(train_index, n_classes), callbacks=callbacks,
        )
        if is_gpu(device):
            model = keras_float32_copy(model, build)
    return model, {key: [float(v) for v in values] for key, values in history.history.items()}


def cnn_probabilities(model, profiles: np.ndarray, device: str = "cpu", batch_size: int = 256) -> np.ndarray:
    import keras

    with keras.device(device):
        return np.asarray(model.predict(profiles[..., None], batch_size=batch_size, verbose=0))


def fit_baseline(train_x: np.ndarray, train_index: np.ndarray, regularisation_c: float, seed: int):
    """Multinomial logistic regression on the same normalised profiles (balanced class weights)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=regularisation_c, max_iter=2000, class_weight="balanced", random_state=seed)
    return model.fit(train_x, train_index)


def baseline_probabilities(model, profiles: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over all n_classes (a class absent from training gets 0)."""
    probabilities = np.zeros((len(profiles), n_classes))
    probabilities[:, model.classes_] = model.predict_proba(profiles)
    return probabilities


def top_k_accuracy(probabilities: np.ndarray, true_index: np.ndarray, k: int) -> float:
    """Share of rows whose true class is among the k most probable."""
    if len(true_index) == 0:
        return float("nan")
    top = np.argsort(-probabilities, axis=1)[:, :k]
    return float((top == true_index[:, None]).any(axis=1).mean())


def classification_metrics(probabilities: np.ndarray, true_index: np.ndarray, classes: list[int]) -> dict:
    """top-1, top-2, top-6 (with at least 6 classes), per-class recall and the confusion matrix."""
    n_classes = len(classes)
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(confusion, (true_index, predicted), 1)
    ks = [1, 2] + ([6] if n_classes >= 6 else [])
    metrics = {f"top{k}_accuracy": top_k_accuracy(probabilities, true_index, k) for k in ks}
    totals = confusion.sum(axis=1)
    metrics["per_class_accuracy"] = {
        str(group): (float(confusion[k, k] / totals[k]) if totals[k] else None) for k, group in enumerate(classes)
    }
    metrics["confusion_matrix"] = confusion.tolist()
    metrics["n_test"] = int(len(true_index))
    return metrics


def learning_curve_figure(history: dict, new_figure):
    """Training and validation accuracy per epoch."""
    fig, axes = new_figure()
    ax = axes[0][0]
    for key in ("accuracy", "val_accuracy"):
        ax.plot(history.get(key, []), label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.legend()
    return fig
