"""Loading a stored artefact never runs code from the storage root (issue 35)."""

import json
import sys

import numpy as np
import pytest
import torch
from dagster import AssetKey, build_input_context, build_output_context
from upath import UPath

from resources import torch_state
from resources.storage import RefusedArtefact, StorageIOManager, read_value, write_value
from tests.hostile_files import importable_probe, shell_pickle

PROBE_MODULE = "storage_import_probe"


@pytest.fixture
def manager(data_root):
    return StorageIOManager(base_path=UPath(data_root) / "storage")


def store(manager, key: str, value):
    manager.handle_output(build_output_context(asset_key=key), value)


def load(manager, key: str):
    return manager.load_input(build_input_context(asset_key=AssetKey(key)))


def manifest_of(data_root, key: str) -> dict:
    return json.loads((data_root / "storage" / f"{key}.manifest.json").read_text())


def fitted_regressor(slope: float):
    from sklearn.linear_model import LinearRegression

    x = np.arange(6.0).reshape(-1, 1)
    return LinearRegression().fit(x, slope * x[:, 0])


def test_a_changed_scikit_learn_artefact_is_refused_with_its_path(manager, data_root):
    import joblib

    store(manager, "life_model", fitted_regressor(2.0))
    assert load(manager, "life_model").coef_[0] == pytest.approx(2.0)
    path = data_root / "storage" / "life_model.joblib"
    joblib.dump(fitted_regressor(-7.0), path)  # a valid joblib file: only its digest tells it apart
    with pytest.raises(RefusedArtefact, match=f"{path}: sha256 .* differs"):
        load(manager, "life_model")


def test_a_changed_estimator_inside_a_bundle_is_refused_with_its_path(manager, data_root):
    import joblib

    store(manager, "bundle", {"model": fitted_regressor(2.0), "model_id": "m-1"})
    path = data_root / "storage" / "bundle.bundle" / "model.joblib"
    assert manifest_of(data_root, "bundle")["entries"]["model"]["sha256"] == __import__("hashlib").sha256(
        path.read_bytes()).hexdigest()
    joblib.dump(fitted_regressor(-7.0), path)
    with pytest.raises(RefusedArtefact, match=f"{path}: sha256"):
        load(manager, "bundle")


def test_a_model_rewritten_with_its_manifest_is_refused_by_the_instance_record(test_resources, data_root):
    """Whoever can write the storage root can rewrite a joblib file and every digest in its manifest; the sha256
    the Dagster instance recorded at materialization still refuses it when a run loads it."""
    import joblib
    from dagster import DagsterInstance, asset, materialize

    from resources.datapaths import sha256_file
    from resources.storage import tree_digest

    @asset
    def life_model() -> dict:
        return {"model": fitted_regressor(2.0), "model_id": "m-1"}

    @asset
    def slope(life_model: dict) -> float:
        return float(life_model["model"].coef_[0])

    instance = DagsterInstance.ephemeral()
    first = materialize([life_model, slope], resources=test_resources, instance=instance)
    assert first.output_for_node("slope") == pytest.approx(2.0)
    bundle = data_root / "storage" / "life_model.bundle"
    joblib.dump(fitted_regressor(-7.0), bundle / "model.joblib")
    manifest = manifest_of(data_root, "life_model")
    manifest["entries"]["model"]["sha256"] = sha256_file(bundle / "model.joblib")
    manifest["sha256"] = tree_digest(bundle)[1]
    (data_root / "storage" / "life_model.manifest.json").write_text(json.dumps(manifest))
    assert read_value(manifest, data_root / "storage")["model"].coef_[0] == pytest.approx(-7.0)  # manifest fooled

    result = materialize([life_model, slope], selection=[slope], resources=test_resources, instance=instance,
                         raise_on_error=False)
    (failure,) = result.get_step_failure_events()
    error = failure.event_specific_data.error.to_string()
    assert f"{bundle}: sha256" in error and "that this Dagster instance recorded" in error


def small_encoder():
    from assets.cycling import encoder

    shape = encoder.EncoderShape(vocab_size=20, pad_token_id=0, window_tokens=6, max_windows=3, hidden_size=8,
                                 local_layers=1, global_layers=1, attention_heads=2, intermediate_size=16)
    return encoder.MultiscaleEncoder(shape)


def test_a_torch_module_round_trips_as_state_dict_and_constructor_arguments(tmp_path):
    """The cycling encoder bundle: weights loadable with weights_only=True, the class and shape in the manifest."""
    model = small_encoder().eval()
    manifest = write_value({"model": model, "model_id": "e-1"}, tmp_path / "encoder")
    entry = manifest["entries"]["model"]
    assert entry["module"]["arguments"]["shape"]["fields"]["hidden_size"] == 8 and entry["training"] is False
    weights = torch.load(tmp_path / "encoder.bundle" / entry["file"], weights_only=True)
    assert set(weights) == set(model.state_dict())
    rng = torch.random.get_rng_state()
    loaded = read_value(manifest, tmp_path)["model"]
    assert torch.equal(torch.random.get_rng_state(), rng)  # rebuilding did not draw from the caller's stream
    ids = torch.randint(1, 20, (2, 3, 6))
    expected, got = model.encode(ids, torch.ones_like(ids))[1], loaded.encode(ids, torch.ones_like(ids))[1]
    assert type(loaded) is type(model) and not loaded.training
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_a_sequential_of_torch_layers_keeps_dtype_mode_and_outputs(tmp_path):
    from assets.pdf import compact

    model = compact.build_compact_cnn(32, 4, compact.CompactSettings(channels=(4, 8), hidden=16)).double().train()
    manifest = write_value(model, tmp_path / "cnn")
    loaded = read_value(manifest, tmp_path)
    assert loaded.training and next(loaded.parameters()).dtype == torch.float64
    x = torch.randn(3, 2, 32, dtype=torch.float64)
    torch.testing.assert_close(loaded.eval()(x), model.eval()(x), rtol=0, atol=0)


class ForgetfulModule(torch.nn.Module):
    """Builds its layer from `width` but keeps no attribute of that name."""

    def __init__(self, width: int):
        super().__init__()
        self.layer = torch.nn.Linear(width, 1)


class MisnamedModule(torch.nn.Module):
    """Keeps an attribute named like its argument that does not say how it was built."""

    def __init__(self, width: int = 2):
        super().__init__()
        self.layer = torch.nn.Linear(width, 1)
        self.width = 2


def test_a_module_that_cannot_be_rebuilt_from_its_attributes_is_refused():
    classes = {"ForgetfulModule": ForgetfulModule, "MisnamedModule": MisnamedModule}
    resolve = lambda path, kind: classes[path.split(":")[1]]  # noqa: E731 (these test classes, no allow-list)
    with pytest.raises(TypeError, match="keeps no attribute 'width'"):
        torch_state.module_spec(ForgetfulModule(3))
    misnamed = MisnamedModule(5)
    with pytest.raises(TypeError, match="gives other weights"):
        torch_state.check_rebuilds(misnamed, torch_state.module_spec(misnamed), resolve)


def test_a_module_class_outside_the_allowed_packages_is_refused_at_write(tmp_path):
    with pytest.raises(RefusedArtefact, match="'tests.platform.test_safe_loading:MisnamedModule', not from an allowed"):
        write_value(MisnamedModule(), tmp_path / "module")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def probe_module(tmp_path):
    """An importable module (outside the allowed packages) whose import creates a marker file."""
    with importable_probe(tmp_path / "importable", PROBE_MODULE, "import torch\nclass Net(torch.nn.Linear):\n    pass\n") as marker:
        yield marker


def test_a_manifest_naming_a_class_outside_the_allow_list_is_refused_unimported(manager, data_root, probe_module):
    store(manager, "net", torch.nn.Linear(2, 1))
    manifest = manifest_of(data_root, "net")
    manifest["module"]["class"] = f"{PROBE_MODULE}:Net"
    (data_root / "storage" / "net.manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RefusedArtefact, match=f"'{PROBE_MODULE}:Net', not from an allowed package"):
        load(manager, "net")
    assert not probe_module.exists() and PROBE_MODULE not in sys.modules


def test_a_manifest_naming_an_allowed_callable_of_the_wrong_kind_is_refused(manager, data_root):
    store(manager, "net", torch.nn.Linear(2, 1))
    manifest = manifest_of(data_root, "net")
    manifest["module"]["class"] = "resources.datapaths:ensure_input_folders"  # a function with side effects
    (data_root / "storage" / "net.manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RefusedArtefact, match="ensure_input_folders'.*which is not a"):
        load(manager, "net")
    assert not (data_root / "raw").exists()


@pytest.mark.parametrize("legacy", ["pickle", "torch"])
def test_artefacts_stored_as_pickles_by_older_versions_are_refused_unread(manager, data_root, tmp_path, legacy):
    """The layouts the storage wrote before: name.pkl (format pickle) and a whole torch module (name.pt)."""
    marker = tmp_path / "ran.marker"
    folder = data_root / "storage"
    folder.mkdir(parents=True)
    suffix = {"pickle": ".pkl", "torch": ".pt"}[legacy]
    (folder / f"old{suffix}").write_bytes(shell_pickle(marker))
    (folder / "old.manifest.json").write_text(json.dumps(
        {"format": legacy, "class": "builtins:object", "file": f"old{suffix}", "bytes": 1, "sha256": "0" * 64}))
    with pytest.raises(RefusedArtefact, match=f"old{suffix}: .* written by an older version"):
        load(manager, "old")
    assert not marker.exists()


def test_a_manifest_cannot_point_outside_its_folder(tmp_path):
    (tmp_path / "inside").mkdir()
    np.savez(tmp_path / "elsewhere.npz", array=np.ones(2))
    manifest = {"format": "npz", "class": "numpy:ndarray", "file": "../elsewhere.npz", "single_array": True}
    with pytest.raises(RefusedArtefact, match="'../elsewhere.npz' is not a plain file name"):
        read_value(manifest, tmp_path / "inside")


@pytest.mark.parametrize("value, named", [(np.array([1, "a"], dtype=object), "numpy.ndarray"),
                                          ({"a": {1, 2}}, "builtins.set"), ((1, {2, 3}), "builtins.tuple")],
                         ids=["object-array", "set-in-bundle", "tuple-with-set"])
def test_values_without_a_data_format_are_refused_at_write(tmp_path, value, named):
    with pytest.raises(TypeError, match=f"no data format stores a {named} "):
        write_value(value, tmp_path / "value")
    assert not any(p.suffix == ".npz" for p in tmp_path.rglob("*"))


def test_xgboost_is_stored_as_json_and_older_ubj_files_still_read(tmp_path):
    from xgboost import XGBRegressor

    x = np.arange(20.0).reshape(10, 2)
    model = XGBRegressor(n_estimators=3).fit(x, x[:, 0])
    manifest = write_value(model, tmp_path / "booster")
    assert manifest["file"] == "booster.xgboost.json"
    assert "learner" in json.loads((tmp_path / manifest["file"]).read_text())
    model.save_model(tmp_path / "old.ubj")  # the binary JSON an older version wrote
    old = read_value({**manifest, "file": "old.ubj"}, tmp_path)
    np.testing.assert_allclose(old.predict(x), model.predict(x))


def test_keras_models_load_in_safe_mode(tmp_path):
    """Stock layers round trip; a Lambda layer (Python bytecode in the file) is refused."""
    import keras

    inputs = keras.Input(shape=(3,))
    plain = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    x = np.arange(6.0, dtype="float32").reshape(2, 3)
    np.testing.assert_allclose(read_value(write_value(plain, tmp_path / "plain"), tmp_path).predict(x, verbose=0),
                               plain.predict(x, verbose=0), rtol=1e-6)
    lambda_model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2.0)(inputs))
    manifest = write_value(lambda_model, tmp_path / "lambda")
    with pytest.raises(ValueError, match="safe_mode"):
        read_value(manifest, tmp_path)


def test_module_specs_read_bias_flags_and_tuples_from_torch_layers():
    conv = torch.nn.Conv1d(2, 4, 5, padding=2, bias=False)
    spec = torch_state.module_spec(conv)
    assert spec["arguments"]["bias"] is False and spec["arguments"]["kernel_size"] == {"tuple": [5]}
    rebuilt = torch_state.build_module(spec, lambda path, kind: getattr(torch.nn, path.split(":")[1]))
    assert rebuilt.bias is None and rebuilt.padding == (2,) and rebuilt.weight.shape == conv.weight.shape
