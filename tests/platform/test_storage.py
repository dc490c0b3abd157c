import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, asset, materialize

from resources.datapaths import Rejection, atomic_write_bytes, sha256_file, write_quarantine
from resources.storage import Hdf5Tree, read_value, tree_digest, write_value


@pytest.mark.parametrize(
    "value",
    [
        pd.DataFrame({"freq": [1.0, 2.0], "circuit": ["RC", "RCPE"]}),
        np.arange(12.0).reshape(3, 4),
        {"x": np.linspace(0, 1, 5), "y": np.array([1, 2, 3])},
        {"model_id": "abc", "settings": {"a": [1, 2]}},
        Hdf5Tree({"1d/x_px": np.ones((2, 3)), "1d/y_px": np.array([0, 1]), "metadata/id": "u-1",
                  "metadata/phases": ["Pb", "PbI2"]}),
        {"table": pd.DataFrame({"a": [1]}), "weights": np.zeros(3), "name": "bundle"},
        [np.linspace(1.0, 1e5, 4), np.array([2.0 + 1j, 3.0 - 2j])],
        (np.ones(2), np.arange(3)),
    ],
    ids=["dataframe", "array", "arrays", "json", "hdf5", "bundle", "ragged-list", "tuple"],
)
def test_round_trip_preserves_values(tmp_path, value):
    manifest = write_value(value, tmp_path / "artefact")
    loaded = read_value(manifest, tmp_path)
    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(loaded, value)
    elif isinstance(value, np.ndarray):
        np.testing.assert_array_equal(loaded, value)
    elif isinstance(value, Hdf5Tree):
        assert isinstance(loaded, Hdf5Tree)
        np.testing.assert_array_equal(loaded["1d/x_px"], value["1d/x_px"])
        assert loaded["metadata/id"] == "u-1"
        assert loaded["metadata/phases"] == ["Pb", "PbI2"]
    elif isinstance(value, (list, tuple)):
        assert manifest["format"] == "npz" and type(loaded) is type(value) and len(loaded) == len(value)
        for got, expected in zip(loaded, value):
            np.testing.assert_array_equal(got, expected)
            assert got.dtype == expected.dtype
    elif "table" in value:
        assert manifest["format"] == "bundle"
        pd.testing.assert_frame_equal(loaded["table"], value["table"])
        assert loaded["name"] == "bundle"
    elif manifest["format"] == "npz":
        assert set(loaded) == set(value)
        for key in value:
            np.testing.assert_array_equal(loaded[key], value[key])
    else:
        assert manifest["format"] == "json"
        assert loaded == value


def test_sklearn_and_xgboost_models_round_trip(tmp_path):
    from sklearn.linear_model import LinearRegression
    from xgboost import XGBRegressor

    x = np.arange(20.0).reshape(10, 2)
    y = x @ np.array([1.0, -2.0])
    for name, model in {"lin": LinearRegression(), "xgb": XGBRegressor(n_estimators=5)}.items():
        model.fit(x, y)
        manifest = write_value(model, tmp_path / name)
        assert manifest["format"] == ("joblib" if name == "lin" else "xgboost")
        np.testing.assert_allclose(read_value(manifest, tmp_path).predict(x), model.predict(x), rtol=1e-6)
    # joblib is pickle: its digest at write is what a later load checks; XGBoost is its JSON model format
    assert write_value(LinearRegression().fit(x, y), tmp_path / "again")["sha256"] == sha256_file(tmp_path / "again.joblib")
    assert (tmp_path / "xgb.xgboost.json").read_text().startswith("{")


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = atomic_write_bytes(tmp_path / "a" / "out.csv", b"x,y\n1,2\n")
    assert target.read_bytes() == b"x,y\n1,2\n"
    assert [p.name for p in target.parent.iterdir()] == ["out.csv"]


def test_quarantine_appends_one_line_per_rejection(data_root):
    path = write_quarantine("eis", [Rejection("a.csv", 3, "bad freq"), Rejection("b.csv", None, "empty")])
    write_quarantine("eis", [Rejection("c.csv", 1, "NaN in Z")])
    table = pd.read_csv(path)
    assert list(table["source"]) == ["a.csv", "b.csv", "c.csv"]
    assert list(table["reason"]) == ["bad freq", "empty", "NaN in Z"]


def test_io_manager_records_sha256_and_reloads(test_resources, data_root):
    @asset
    def table() -> pd.DataFrame:
        return pd.DataFrame({"r": [1.0, 2.0]})

    @asset
    def doubled(table: pd.DataFrame) -> pd.DataFrame:
        return table * 2

    result = materialize([table, doubled], resources=test_resources, instance=DagsterInstance.ephemeral())
    assert result.success
    event = result.asset_materializations_for_node("table")[0]
    path = event.metadata["artefact_path"].value
    assert path.endswith("storage/table.parquet")
    assert event.metadata["artefact_sha256"].value == sha256_file(path)
    assert event.metadata["artefact_bytes"].value == tree_digest(__import__("pathlib").Path(path))[0]
    assert result.output_for_node("doubled")["r"].tolist() == [2.0, 4.0]
    leftovers = [p.name for p in (data_root / "storage").iterdir() if p.name.startswith(".")]
    assert sorted(leftovers) == [".doubled.lock", ".table.lock"]  # lock files only, no staging


def test_rewrite_replaces_previous_format_and_clears_killed_staging(test_resources, data_root):
    """An asset that changes type between runs leaves only the new artefact."""
    from resources.storage import StorageIOManager
    from upath import UPath
    from dagster import build_output_context, build_input_context

    manager = StorageIOManager(base_path=UPath(data_root) / "storage")
    manager.handle_output(build_output_context(asset_key="thing"), np.ones(3))
    killed_writer = data_root / "storage" / ".thing.staging-killed"
    killed_writer.mkdir()
    (killed_writer / "thing.parquet").write_bytes(b"half")
    manager.handle_output(build_output_context(asset_key="thing"), pd.DataFrame({"a": [1]}))
    names = sorted(p.name for p in (data_root / "storage").iterdir())
    assert names == [".thing.lock", "thing.manifest.json", "thing.parquet"]
    loaded = manager.load_input(build_input_context(asset_key=__import__("dagster").AssetKey("thing")))
    assert loaded["a"].tolist() == [1]
