"""Every model is bounded by its training targets; the network survives any input; known electrodes order sensibly."""

import numpy as np
import pandas as pd
import pytest

from assets.electrodes.evaluation import make_split
from assets.electrodes.features import build_feature_table, electrode_inputs, feature_columns, feature_matrix, featurize_electrodes
from assets.electrodes.models import ClippedRegressor, make_boosting, make_forest, make_median, train_estimator
from assets.electrodes.network import TrainingSettings, fit_network
from assets.electrodes.predict import read_candidates
from assets.electrodes.sources import EMBEDDED_CSV, read_export_csv, records_from_rows
from resources.cluster import DaskResource

SYNC = DaskResource(synchronous=True).map
# The sanity set: well-known electrodes, average voltage vs the metal (V), as a test of ordering only.
SANITY = {
    "LiCoO2": ("Li0.5–1CoO2", 3.9), "LiNiO2": ("Li0–1NiO2", 3.8), "LiMn2O4": ("Li0–1Mn2O4", 4.05),
    "LiFePO4": ("Li0–1FePO4", 3.45), "Li4Ti5O12": ("Li4–7Ti5O12", 1.55),
    "Mg-Chevrel": ("Mg0–2Mo6S8", 1.1),  # Aurbach et al., Nature 407, 724 (2000)
    "Zn-MnO2": ("Zn0–0.5MnO2", 1.35),  # Pan et al., Nature Energy 1, 16039 (2016)
}
# Multivalent electrodes from the literature added to the embedded table for training (none of the sanity set).
EXTRA_TRAINING = [
    ("lit-101_Mg", "Mg0–1TiS2", 1.2),  # Sun et al., Energy Environ. Sci. 9, 2273 (2016)
    ("lit-102_Mg", "Mg0–0.5V2O5", 2.35),  # Gershinsky et al., Langmuir 29, 10964 (2013)
    ("lit-103_Mg", "Mg0–1Mn2O4", 2.9),  # Kim et al., Adv. Mater. 27, 3377 (2015)
    ("lit-104_Zn", "Zn0–0.25V2O5", 0.9),  # Kundu et al., Nature Energy 1, 16119 (2016)
    ("lit-105_Zn", "Zn0–1V2O5", 0.8),
    ("lit-106_Zn", "Zn0–0.5Mn2O4", 1.4),  # Zhang et al., J. Am. Chem. Soc. 138, 12894 (2016)
]


@pytest.fixture(scope="module")
def training_table():
    """The embedded literature table (sanity compositions left out) plus a few Mg and Zn electrodes, featurized."""
    records, _, _ = read_export_csv(EMBEDDED_CSV)
    extra, rejected = records_from_rows(
        [{"battery_id": i, "formula": f, "average_voltage_V": v} for i, f, v in EXTRA_TRAINING], "test"
    )
    assert not rejected
    table = pd.DataFrame(records + extra)
    sanity_formulas = {f.replace("–", "-") for f, _ in SANITY.values()}
    table = table[~table["formula"].str.replace("–", "-").isin(sanity_formulas)].reset_index(drop=True)
    features, _ = build_feature_table(table, "average_voltage_V", SYNC, 500)
    return features


def test_clipped_regressor_never_leaves_the_training_range():
    features = np.arange(20, dtype=float).reshape(-1, 1)
    target = 0.1 * features[:, 0] + 1.0  # 1.0 .. 2.9
    from sklearn.linear_model import LinearRegression

    model = ClippedRegressor(LinearRegression()).fit(features, target)
    assert model.predict(np.array([[1e6], [-1e6]])).tolist() == [pytest.approx(2.9), pytest.approx(1.0)]


def test_the_network_stays_bounded_on_an_out_of_distribution_row():
    """A column with almost no variance in training (the AlNi3 case) and extreme values cannot blow the network up."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(120, 5))
    features[:, 4] = 1.0
    features[0, 4] = 1.0 + 1e-9  # nearly constant: a standard scaler would turn a 2.0 into ~1e9
    target = 2.0 + features[:, 0] - 0.5 * features[:, 1]
    fitted = fit_network(features, target, (16, 16, 16), TrainingSettings(epochs=10))
    strange = np.array([[0.0, 0.0, 0.0, 0.0, 2.0], [1e9, -1e9, 1e12, np.nan, -1e30], [np.nan] * 5])
    predicted = fitted.predict(strange)
    assert np.isfinite(predicted).all()
    assert (predicted >= target.min()).all() and (predicted <= target.max()).all()
    scaled = fitted.preprocess.transform(strange)
    assert np.abs(scaled).max() < 6  # every input lands in the quantile transform's bounded range


def test_every_model_predicts_inside_the_training_range_on_odd_formulas(training_table):
    columns = feature_columns(training_table)
    x, y = feature_matrix(training_table, columns), training_table["target"].to_numpy()
    candidates, _ = read_candidates_from_text("id,formula\na,AlNi3\nb,Li20O\nc,LiPu3\nd,Li0–1C6\n")
    features, _ = featurize_electrodes(electrode_inputs(candidates), SYNC, 10)
    odd = feature_matrix(features, columns)
    for model in (make_forest(50, seed=0), make_boosting(n_estimators=50), make_median()):
        predicted = model.fit(x, y).predict(odd)
        assert ((predicted >= y.min()) & (predicted <= y.max())).all(), type(model.estimator).__name__


def read_candidates_from_text(text, tmp=None):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "candidates.csv"
        path.write_text(text)
        candidates, rejections = read_candidates(path, "Li")
    return candidates[candidates["error"] == ""].reset_index(drop=True), rejections


def test_known_electrodes_order_as_measured(training_table):
    """Trained without them: Li4Ti5O12 lowest of the Li set, the 3.5-4 V Li cathodes well above it and above Mg/Zn."""
    columns = feature_columns(training_table)
    x, y = feature_matrix(training_table, columns), training_table["target"].to_numpy()
    text = "id,formula\n" + "".join(f"{name},{formula}\n" for name, (formula, _) in SANITY.items())
    candidates, rejections = read_candidates_from_text(text)
    assert not rejections and list(candidates["working_ion"]) == ["Li"] * 5 + ["Mg", "Zn"]
    features, _ = featurize_electrodes(electrode_inputs(candidates), SYNC, 10)
    model = make_forest(300, seed=0).fit(x, y)
    predicted = dict(zip(candidates["id"], model.predict(feature_matrix(features, columns))))
    lithium = ["LiCoO2", "LiNiO2", "LiMn2O4", "LiFePO4", "Li4Ti5O12"]
    assert min(lithium, key=predicted.get) == "Li4Ti5O12", predicted
    for name in ("LiCoO2", "LiNiO2", "LiMn2O4", "LiFePO4"):
        assert predicted[name] > predicted["Li4Ti5O12"] + 0.8, predicted
        assert predicted[name] > max(predicted["Mg-Chevrel"], predicted["Zn-MnO2"]), predicted


def test_median_baseline_and_models_share_the_folds(training_table):
    split = make_split(list(training_table["battery_id"]), 0.2, 3, np.random.default_rng(0))
    columns = feature_columns(training_table)
    evaluations = {
        name: train_estimator(make, training_table, split, columns)[1]
        for name, make in {"forest": lambda: make_forest(50, seed=0), "median": make_median}.items()
    }
    ids = {name: list(e["battery_id"]) for name, e in evaluations.items()}
    assert ids["forest"] == ids["median"]
    cv = evaluations["median"].query("subset == 'cv'").merge(split, on="battery_id")
    targets = training_table.set_index("battery_id")["target"]
    train = split.query("subset == 'train'")
    for fold, rows in cv.groupby("fold"):  # each held-out fold gets the median of the other folds
        others = targets[train.loc[train["fold"] != fold, "battery_id"]]
        assert np.allclose(rows["predicted"], np.median(others))


def test_ensembles_average_their_members_on_the_same_rows_and_can_be_chosen():
    from assets.electrodes.predict import best_model, cv_maes, ensemble_evaluations

    def bundle(predicted, mae):
        evaluation = pd.DataFrame({"battery_id": ["a", "b", "c"], "subset": ["cv", "cv", "test"], "true": [1.0, 2.0, 3.0],
                                   "predicted": predicted})
        return {"evaluation": evaluation, "settings": {"metrics": {"cv_mae": mae}}}

    bundles = {"forest": bundle([0.0, 2.5, 3.0], 0.75), "boosting": bundle([2.0, 1.5, 3.0], 0.75),
               "network": bundle([1.0, 2.0, 9.0], 0.0 + 0.1), "median": bundle([2.0, 2.0, 2.0], 0.5)}
    frames = ensemble_evaluations(bundles)
    assert frames["trees"]["predicted"].tolist() == [1.0, 2.0, 3.0]  # forest and boosting errors cancel
    assert cv_maes(bundles)["trees"] == 0.0 and best_model(bundles) == "trees"
    del bundles["network"]
    assert set(ensemble_evaluations(bundles)) == {"trees"}
