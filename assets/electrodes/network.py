"""Three-hidden-layer LeakyReLU network in Keras (keras.ops only: TF or torch backend).

Inputs are median-imputed and standardised by a scikit-learn pipeline stored next
to the network, the target is standardised; a randomized search picks the
neurons per layer by cross-validated MAE on the stored folds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from assets.electrodes.evaluation import evaluation_frame, out_of_fold_predictions, regression_metrics, split_arrays


@dataclass(frozen=True)
class TrainingSettings:
    """Optimisation settings shared by every fit of a search."""

    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 3e-3
    negative_slope: float = 0.01
    patience: int = 5
    validation_fraction: float = 0.2
    min_rows_per_epoch: int = 256
    seed: int = 0


@dataclass
class FittedNetwork:
    """A network with its input pipeline and target scale; predict() gives target units."""

    model: object
    preprocess: object
    target_mean: float
    target_std: float
    history: pd.DataFrame

    def predict(self, features: np.ndarray) -> np.ndarray:
        return predict_scaled(self.model, self.preprocess, features) * self.target_std + self.target_mean


def predict_scaled(model, preprocess, features: np.ndarray) -> np.ndarray:
    """Network output (standardised target) for raw feature rows."""
    import keras

    if len(features) == 0:
        return np.array([])
    inputs = keras.ops.convert_to_tensor(preprocess.transform(features).astype("float32"))
    return keras.ops.convert_to_numpy(keras.ops.squeeze(model(inputs, training=False), axis=-1)).astype(float)


def build_network(n_features: int, hidden_units: tuple[int, int, int], settings: TrainingSettings):
    import keras

    inputs = keras.Input(shape=(n_features,), name="features")
    hidden = inputs
    for layer, units in enumerate(hidden_units):
        hidden = keras.layers.Dense(units, name=f"dense_{layer}")(hidden)
        hidden = keras.layers.LeakyReLU(negative_slope=settings.negative_slope, name=f"leaky_relu_{layer}")(hidden)
    outputs = keras.layers.Dense(1, name="target")(hidden)
    model = keras.Model(inputs, outputs, name="electrode_network")
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate), loss="mse", jit_compile=False)
    return model


def make_preprocess():
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler())


def fit_network(features: np.ndarray, target: np.ndarray, hidden_units, settings: TrainingSettings) -> FittedNetwork:
    """Fit with early stopping on a held-out share of the given rows (best weights restored)."""
    import keras

    keras.utils.set_random_seed(settings.seed)
    preprocess = make_preprocess().fit(features)
    scaled = preprocess.transform(features).astype("float32")
    mean, std = float(np.mean(target)), float(np.std(target)) or 1.0
    scaled_target = ((target - mean) / std).astype("float32")
    order = np.random.default_rng(settings.seed).permutation(len(target))
    n_validation = int(round(settings.validation_fraction * len(target))) if len(target) >= 10 else 0
    validation, fit_rows = order[:n_validation], order[n_validation:]
    # Keras pays a fixed cost per epoch; a small table is repeated so an epoch is worth paying for.
    fit_rows = np.tile(fit_rows, -(-settings.min_rows_per_epoch // max(len(fit_rows), 1)))
    model = build_network(features.shape[1], tuple(hidden_units), settings)
    monitor = "val_loss" if n_validation else "loss"
    stopper = keras.callbacks.EarlyStopping(monitor=monitor, patience=settings.patience, restore_best_weights=True)
    history = model.fit(
        scaled[fit_rows], scaled_target[fit_rows],
        validation_data=(scaled[validation], scaled_target[validation]) if n_validation else None,
        epochs=settings.epochs, batch_size=settings.batch_size, callbacks=[stopper], verbose=0, shuffle=True,
    )
    log = pd.DataFrame(history.history)
    log.insert(0, "epoch", np.arange(1, len(log) + 1))
    return FittedNetwork(model, preprocess, mean, std, log)


def sample_candidates(units_choices: list[int], n_candidates: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """n distinct (layer 1, layer 2, layer 3) neuron counts drawn from the grid units_choices^3."""
    grid = list(itertools.product(units_choices, repeat=3))
    picks = rng.choice(len(grid), size=min(n_candidates, len(grid)), replace=False)
    return [tuple(int(u) for u in grid[i]) for i in picks]


def randomized_search(arrays: dict, candidates, settings: TrainingSettings, search_folds: int, log) -> pd.DataFrame:
    """Cross-validated metrics (and out-of-fold predictions) of each candidate, best (lowest MAE) first.

    search_folds > 0 holds out only that many of the stored folds (0: all of them).
    """
    rows = []
    for number, units in enumerate(candidates, start=1):

        def fit_predict(x_fit, y_fit, x_predict, units=units):
            return fit_network(x_fit, y_fit, units, settings).predict(x_predict)

        predicted = out_of_fold_predictions(
            fit_predict, arrays["x_train"], arrays["y_train"], arrays["folds"], search_folds
        )
        evaluated = np.isfinite(predicted)
        metrics = regression_metrics(arrays["y_train"][evaluated], predicted[evaluated])
        log(f"candidate {number}/{len(candidates)} units={units}: cv MAE {metrics['mae']:.3f}")
        rows.append({"units": list(units), **{f"cv_{k}": v for k, v in metrics.items()}, "out_of_fold": predicted})
    return pd.DataFrame(rows).sort_values("cv_mae", kind="stable").reset_index(drop=True)


def train_network(
    features_table: pd.DataFrame, split: pd.DataFrame, columns: list[str], candidates, settings: TrainingSettings,
    search_folds: int, log,
) -> tuple[FittedNetwork, pd.DataFrame, pd.DataFrame]:
    """(best network refitted on all training rows, search table, evaluation frame (cv + test))."""
    arrays = split_arrays(features_table, split, columns)
    search = randomized_search(arrays, candidates, settings, search_folds, log)
    network = fit_network(arrays["x_train"], arrays["y_train"], tuple(search.loc[0, "units"]), settings)
    evaluation = evaluation_frame(arrays, search.loc[0, "out_of_fold"], network.predict(arrays["x_test"]))
    return network, search.drop(columns="out_of_fold"), evaluation
