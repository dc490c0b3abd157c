"""Three-hidden-layer LeakyReLU network in Keras (keras.ops only: TF or torch backend).

Inputs are median-imputed and mapped through a quantile transform fitted on the
training rows (a scikit-learn pipeline stored next to the network): every input
lands in [-5.2, 5.2] whatever its raw value, since values beyond the training
range map to its ends, so an unusual formula cannot blow the network up. The
target is standardised, and predictions are clipped to the range of the training
targets. A randomized search picks the neurons per layer by the loss on a
validation share of the training rows; the chosen network is then scored by the
same k-fold CV as every other model.
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
    target_min: float = -np.inf
    target_max: float = np.inf

    def predict(self, features: np.ndarray) -> np.ndarray:
        scaled = predict_scaled(self.model, self.preprocess, features)
        return np.clip(scaled * self.target_std + self.target_mean, self.target_min, self.target_max)


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


def make_preprocess(n_rows: int = 1000):
    """Median imputation, then a quantile transform to a normal distribution (bounded, clipped to the training range)."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import QuantileTransformer

    quantiles = QuantileTransformer(n_quantiles=max(2, min(1000, n_rows)), output_distribution="normal", subsample=10**9)
    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), quantiles)


def fit_network(features: np.ndarray, target: np.ndarray, hidden_units, settings: TrainingSettings) -> FittedNetwork:
    """Fit with early stopping on a held-out share of the given rows (best weights restored)."""
    import keras

    keras.utils.set_random_seed(settings.seed)
    preprocess = make_preprocess(len(features)).fit(features)
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
    return FittedNetwork(model, preprocess, mean, std, log, float(np.min(target)), float(np.max(target)))


def sample_candidates(units_choices: list[int], n_candidates: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """n distinct (layer 1, layer 2, layer 3) neuron counts drawn from the grid units_choices^3."""
    grid = list(itertools.product(units_choices, repeat=3))
    picks = rng.choice(len(grid), size=min(n_candidates, len(grid)), replace=False)
    return [tuple(int(u) for u in grid[i]) for i in picks]


def randomized_search(arrays: dict, candidates, settings: TrainingSettings, log) -> pd.DataFrame:
    """Validation loss of each candidate fitted on the training rows (early-stopping share), best first.

    Selection sees only the training rows' validation share; the chosen candidate's CV figures come from
    the same k-fold CV as every other model (train_network), not from this search.
    """
    rows = []
    for number, units in enumerate(candidates, start=1):
        fitted = fit_network(arrays["x_train"], arrays["y_train"], units, settings)
        column = "val_loss" if "val_loss" in fitted.history else "loss"
        loss = float(fitted.history[column].min())
        log(f"candidate {number}/{len(candidates)} units={units}: validation loss {loss:.4f}")
        rows.append({"units": list(units), "validation_loss": loss, "epochs": len(fitted.history)})
    return pd.DataFrame(rows).sort_values("validation_loss", kind="stable").reset_index(drop=True)


def train_network(
    features_table: pd.DataFrame, split: pd.DataFrame, columns: list[str], candidates, settings: TrainingSettings,
    log,
) -> tuple[FittedNetwork, pd.DataFrame, pd.DataFrame]:
    """(chosen network refitted on all training rows, search table, evaluation frame: k-fold cv + test)."""
    arrays = split_arrays(features_table, split, columns)
    search = randomized_search(arrays, candidates, settings, log) if len(candidates) > 1 else pd.DataFrame(
        [{"units": list(candidates[0]), "validation_loss": float("nan"), "epochs": 0}]
    )
    units = tuple(search.loc[0, "units"])

    def fit_predict(x_fit, y_fit, x_predict):
        return fit_network(x_fit, y_fit, units, settings).predict(x_predict)

    out_of_fold = out_of_fold_predictions(fit_predict, arrays["x_train"], arrays["y_train"], arrays["folds"])
    network = fit_network(arrays["x_train"], arrays["y_train"], units, settings)
    evaluation = evaluation_frame(arrays, out_of_fold, network.predict(arrays["x_test"]))
    return network, search, evaluation
