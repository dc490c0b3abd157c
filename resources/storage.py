"""The storage IO manager: one artefact per asset (and partition), format by type.

    DataFrame                 -> .parquet
    ndarray / dict of arrays  -> .npz (no object arrays; read with allow_pickle=False); a list or tuple of
                                 arrays (ragged spectra) too, its items as item0, item1, ...
    Hdf5Tree (nested arrays)  -> .h5 (large simulated sets; diffsims-XL layout)
    Keras model               -> .keras (read with safe_mode=True)
    XGBoost model             -> .xgboost.json (XGBoost's JSON model format)
    transformers / tokenizer  -> save_pretrained folder (safetensors weights, tokenizer JSON)
    torch module              -> .pt state dict (read with weights_only=True) + the module's class and
                                 constructor arguments in the manifest (torch.nn.Sequential: its children)
    scikit-learn estimator    -> .joblib, its sha256 recorded at write and checked before every load
    JSON-able dict/list       -> .json
    dict of any of the above  -> folder, one artefact per key (a "bundle")
Any other value is refused at write (TypeError naming its type): there is no pickle fallback.

Every artefact is staged in a temporary sibling and renamed into place, and a
manifest (format, class, bytes, sha256) is written last; an artefact without a
manifest does not exist. So a killed run never leaves a half-written artefact.

Loading never runs code from the storage root: formats that hold data are read by
readers that build only data, a class named in a manifest is imported only from
ALLOWED_CLASS_PACKAGES (and must be of the kind its format expects), and joblib (which is
pickle) is loaded only when the file's sha256 is the one recorded when it was written.
That digest lives in the manifest beside the file, so it catches a replaced or damaged
file; in a run, the artefact must also match the sha256 the Dagster instance recorded
when it materialized that path, which catches a file and manifest rewritten together.
Outside a run (load_stored) only the manifest is checked: the storage root must be
writable only by the platform (docs/security.md). Artefacts of older versions stored as
pickles (.pkl, whole torch modules) or joblib files without a digest are refused with
the reason.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from dagster import (ConfigurableIOManagerFactory, DagsterInvariantViolationError, InputContext, OutputContext,
                     UPathIOManager)
from upath import UPath

from resources import torch_state
from resources.datapaths import data_root, sha256_file
from resources.torch_state import class_path

MANIFEST_SUFFIX = ".manifest.json"
# Top-level packages a manifest may name a class from: the project's and the model libraries'.
ALLOWED_CLASS_PACKAGES = ("assets", "resources", "sklearn", "xgboost", "transformers", "tokenizers", "torch", "keras")


class RefusedArtefact(RuntimeError):
    """A stored artefact the storage will not load (it could run code, or it changed since written)."""


class Hdf5Tree(dict):
    """A nested dict of arrays (and JSON-able attrs under '@attrs') stored as one HDF5 file.

    Keys with '/' are HDF5 paths: {"1d/x_px": X, "1d/y_px": y, "metadata/id": "..."}.
    Strings are stored as UTF-8 scalars; lists of strings as string arrays.
    """


def _allowed_class(class_path: str, kind: type | tuple[type, ...], where: Path):
    """The class a manifest names, imported only from ALLOWED_CLASS_PACKAGES and only if a subclass of kind."""
    module, _, name = class_path.partition(":")
    if module.split(".")[0] not in ALLOWED_CLASS_PACKAGES:
        raise RefusedArtefact(f"{where}: manifest names class {class_path!r}, not from an allowed package "
                              f"{ALLOWED_CLASS_PACKAGES}")
    target = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    if not (isinstance(target, type) and issubclass(target, kind)):
        raise RefusedArtefact(f"{where}: manifest names {class_path!r}, which is not a {kind}")
    return target


def _is_jsonable(obj: Any) -> bool:
    try:
        json.dumps(obj)
    except (TypeError, ValueError):
        return False
    return True


def _plain_array(obj: Any) -> bool:
    """An ndarray npz stores without pickling (object arrays would need allow_pickle)."""
    return isinstance(obj, np.ndarray) and not obj.dtype.hasobject


def format_for(obj: Any) -> str:
    """The storage format of a value (without importing heavy libraries); TypeError when none holds it as data."""
    module = type(obj).__module__.split(".")[0]
    if isinstance(obj, pd.DataFrame):
        return "parquet"
    if isinstance(obj, Hdf5Tree):
        return "hdf5"
    if _plain_array(obj):
        return "npz"
    if isinstance(obj, dict) and obj and all(_plain_array(v) for v in obj.values()):
        return "npz"
    if isinstance(obj, (list, tuple)) and obj and all(_plain_array(v) for v in obj):
        return "npz"
    if module in ("keras", "tf_keras") or (module == "tensorflow" and hasattr(obj, "save")):
        return "keras"
    if module == "xgboost":
        return "xgboost"
    if hasattr(obj, "save_pretrained") and hasattr(type(obj), "from_pretrained"):
        return "pretrained"
    if any(c.__module__.startswith("torch.nn") for c in type(obj).__mro__):
        return "torch"
    if module == "sklearn" or hasattr(obj, "get_params"):
        return "joblib"
    if isinstance(obj, (dict, list, str, int, float, bool)) and _is_jsonable(obj):
        return "json"
    if isinstance(obj, dict) and all(isinstance(k, str) for k in obj):
        return "bundle"
    raise TypeError(f"no data format stores a {type(obj).__module__}.{type(obj).__qualname__} (and no pickle "
                    "fallback, which would run code when read): return a DataFrame, arrays, a model or a "
                    "dict of these")


SUFFIX = {
    "parquet": ".parquet",
    "hdf5": ".h5",
    "npz": ".npz",
    "keras": ".keras",
    "xgboost": ".xgboost.json",
    "pretrained": ".hf",
    "torch": ".pt",
    "joblib": ".joblib",
    "json": ".json",
    "bundle": ".bundle",
}
LEGACY_SUFFIXES = (".ubj", ".pkl")  # artefacts of older versions: removed when the asset is written again


def _write_hdf5(tree: Hdf5Tree, path: Path) -> None:
    import h5py

    with h5py.File(path, "w") as handle:
        for key, value in tree.items():
            if key == "@attrs":
                for name, attr in value.items():
                    handle.attrs[name] = json.dumps(attr)
                continue
            if isinstance(value, str):
                handle.create_dataset(key, data=value, dtype=h5py.string_dtype())
            elif isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
                handle.create_dataset(key, data=np.array(value, dtype=object), dtype=h5py.string_dtype())
            else:
                handle.create_dataset(key, data=np.asarray(value))


def _read_hdf5(path: Path) -> Hdf5Tree:
    import h5py

    tree = Hdf5Tree()
    with h5py.File(path, "r") as handle:
        if handle.attrs:
            tree["@attrs"] = {name: json.loads(value) for name, value in handle.attrs.items()}

        def visit(name, node):
            if isinstance(node, h5py.Dataset):
                value = node[()]
                if node.dtype.kind == "O" or h5py.check_string_dtype(node.dtype):
                    value = value.decode() if isinstance(value, bytes) else [v.decode() for v in value]
                tree[name] = value

        handle.visititems(visit)
    return tree


def write_value(obj: Any, path: Path) -> dict:
    """Serialize obj at local path + suffix. Returns the manifest (joblib files with their sha256)."""
    fmt = format_for(obj)
    target = path.with_name(path.name + SUFFIX[fmt])
    manifest = {"format": fmt, "class": class_path(obj), "file": target.name}
    if fmt == "parquet":
        obj.to_parquet(target)
    elif fmt == "hdf5":
        _write_hdf5(obj, target)
    elif fmt == "npz":
        if isinstance(obj, (list, tuple)):
            arrays, manifest["sequence"] = {f"item{i}": item for i, item in enumerate(obj)}, type(obj).__name__
        else:
            arrays = obj if isinstance(obj, dict) else {"array": obj}
            manifest["single_array"] = not isinstance(obj, dict)
        with open(target, "wb") as handle:
            np.savez_compressed(handle, **arrays)  # format_for admits no object array: nothing is pickled
    elif fmt == "keras":
        obj.save(target)
    elif fmt == "xgboost":
        obj.save_model(target)  # the .json suffix selects XGBoost's JSON model format
    elif fmt == "pretrained":
        obj.save_pretrained(target)
    elif fmt == "torch":
        _write_torch(obj, target, manifest)
    elif fmt == "joblib":
        import joblib

        joblib.dump(obj, target)
        manifest["sha256"] = sha256_file(target)  # checked before every load: joblib runs code when read
    elif fmt == "json":
        target.write_text(json.dumps(obj, indent=1, sort_keys=True))
    else:
        target.mkdir()
        manifest["entries"] = {key: write_value(value, target / _plain_name(key, target)) for key, value in obj.items()}
    return manifest


def _write_torch(module, target: Path, manifest: dict) -> None:
    import torch

    spec = torch_state.module_spec(module)
    torch_state.check_rebuilds(module, spec, _resolver(target))
    torch.save(module.state_dict(), target)
    manifest["module"], manifest["training"] = spec, module.training


def _plain_name(name: str, where: Path) -> str:
    """A file name inside its folder (no separators, not '.' or '..'): a manifest cannot point elsewhere."""
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise RefusedArtefact(f"{where}: {name!r} is not a plain file name")
    return name


def _resolver(where: Path):
    return lambda path, kind: _allowed_class(path, kind, where)


def _legacy_refusal(target: Path, what: str) -> RefusedArtefact:
    return RefusedArtefact(f"{target}: {what}, written by an older version; such files can run code when read, so "
                           "it is not loaded: materialize the asset again")


def _check_digest(manifest: dict, target: Path) -> None:
    """RefusedArtefact unless the file's sha256 is the one recorded when it was written."""
    if "sha256" not in manifest:
        raise _legacy_refusal(target, "a joblib file without a recorded sha256")
    actual = sha256_file(target)
    if actual != manifest["sha256"]:
        raise RefusedArtefact(f"{target}: sha256 {actual} differs from {manifest['sha256']} recorded when it was "
                              "written; the file changed behind the storage's back, so it is not loaded (joblib "
                              "runs code when read): materialize the asset again")


def read_value(manifest: dict, folder: Path) -> Any:
    fmt, target = manifest["format"], folder / _plain_name(manifest["file"], folder)
    if fmt == "parquet":
        return pd.read_parquet(target)
    if fmt == "hdf5":
        return _read_hdf5(target)
    if fmt == "npz":
        with np.load(target, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        if "sequence" in manifest:
            return {"list": list, "tuple": tuple}[manifest["sequence"]](arrays[f"item{i}"] for i in range(len(arrays)))
        return arrays["array"] if manifest.get("single_array") else arrays
    if fmt == "keras":
        import keras

        return keras.saving.load_model(target, compile=False, safe_mode=True)
    if fmt == "xgboost":
        import xgboost

        model = _allowed_class(manifest["class"], (xgboost.Booster, xgboost.XGBModel), target)()
        model.load_model(target)  # .xgboost.json, or .ubj of older versions: both data formats
        return model
    if fmt == "pretrained":
        return _read_pretrained(manifest, target)
    if fmt == "torch":
        return _read_torch(manifest, target)
    if fmt == "joblib":
        import joblib

        _check_digest(manifest, target)
        return joblib.load(target)
    if fmt == "json":
        return json.loads(target.read_text())
    if fmt == "bundle":
        return {key: read_value(entry, target) for key, entry in manifest["entries"].items()}
    if fmt == "pickle":
        raise _legacy_refusal(target, "a pickle")
    raise RefusedArtefact(f"{target}: unknown storage format {fmt!r}")


def _read_pretrained(manifest: dict, target: Path):
    import transformers

    cls = _allowed_class(manifest["class"], (transformers.PreTrainedModel, transformers.PreTrainedTokenizerBase),
                         target)
    if issubclass(cls, transformers.PreTrainedModel):
        return cls.from_pretrained(target, use_safetensors=True)  # never a pickled pytorch_model.bin
    return cls.from_pretrained(target)  # tokenizer files are JSON and text


def _read_torch(manifest: dict, target: Path):
    import torch

    if "module" not in manifest:
        raise _legacy_refusal(target, "a pickled torch module")
    state = torch.load(target, weights_only=True, map_location="cpu")
    return torch_state.load_module(manifest["module"], state, manifest["training"], _resolver(target))


def tree_digest(path: Path) -> tuple[int, str]:
    """(bytes, sha256) of a file, or of a folder as the hash of its sorted file hashes."""
    if path.is_file():
        return path.stat().st_size, sha256_file(path)
    files = sorted(p for p in path.rglob("*") if p.is_file())
    lines = [f"{p.relative_to(path).as_posix()} {sha256_file(p)}" for p in files]
    import hashlib

    return sum(p.stat().st_size for p in files), hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _remove(path: UPath) -> None:
    if path.is_dir():
        if path.protocol in ("", "file"):
            shutil.rmtree(path.path)
        else:
            path.fs.rm(path.path, recursive=True)
    elif path.exists():
        path.unlink()


class StorageIOManager(UPathIOManager):
    """UPathIOManager storing each value in the format of its type (module docstring)."""

    extension = ""

    def _manifest_path(self, path: UPath) -> UPath:
        return path.with_name(path.name + MANIFEST_SUFFIX)

    def path_exists(self, path: UPath) -> bool:
        return self._manifest_path(path).exists()

    def dump_to_path(self, context: OutputContext, obj: Any, path: UPath) -> None:
        local = path.protocol in ("", "file")
        if not local:
            return self._publish(context, obj, path, None)
        parent = Path(path.parent.path)
        parent.mkdir(parents=True, exist_ok=True)
        # One writer per artefact at a time; staging folders seen under the lock are from killed runs.
        with open(parent / f".{path.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for stale in parent.glob(f".{path.name}.staging-*"):
                shutil.rmtree(stale, ignore_errors=True)
            return self._publish(context, obj, path, parent)

    def _publish(self, context: OutputContext, obj: Any, path: UPath, parent: Path | None) -> None:
        local = parent is not None
        with tempfile.TemporaryDirectory(dir=parent, prefix=f".{path.name}.staging-") as staging:
            manifest = write_value(obj, Path(staging) / path.name)
            staged = Path(staging) / manifest["file"]
            manifest["bytes"], manifest["sha256"] = tree_digest(staged)
            final = path.with_name(manifest["file"])
            old_manifest = self._manifest_path(path)
            # Invalidate first: a crash from here on leaves "no artefact", never a mixed one.
            if old_manifest.exists():
                old_manifest.unlink()
            for suffix in set(SUFFIX.values()) | set(LEGACY_SUFFIXES):
                stale = path.with_name(path.name + suffix)
                if stale.exists():
                    _remove(stale)
            if local:
                os.replace(staged, final.path)
            else:
                tmp_remote = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
                path.fs.put(str(staged), tmp_remote.path, recursive=staged.is_dir())
                path.fs.mv(tmp_remote.path, final.path, recursive=staged.is_dir())
            manifest_bytes = json.dumps(manifest, indent=1).encode()
            if local:
                from resources.datapaths import atomic_write_bytes

                atomic_write_bytes(Path(old_manifest.path), manifest_bytes)
            else:
                old_manifest.write_bytes(manifest_bytes)
        context.add_output_metadata(
            {
                "artefact_path": str(final),
                "artefact_format": manifest["format"],
                "artefact_bytes": manifest["bytes"],
                "artefact_sha256": manifest["sha256"],
            }
        )

    def load_stored(self, *parts: str) -> Any:
        """An artefact by its place under the storage root: asset key parts, then the partition key."""
        return self.load_from_path(None, self._base_path.joinpath(*parts))

    def load_from_path(self, context: InputContext, path: UPath) -> Any:
        manifest_path = self._manifest_path(path)
        if not manifest_path.exists():
            raise FileNotFoundError(f"no artefact at {path} (missing {manifest_path.name}); materialize it first")
        manifest = json.loads(manifest_path.read_text())
        if path.protocol in ("", "file"):
            _check_recorded_digest(context, manifest, path, Path(path.parent.path))
            return read_value(manifest, Path(path.parent.path))
        with tempfile.TemporaryDirectory() as local:
            source = path.with_name(_plain_name(manifest["file"], Path(path.parent.path)))
            path.fs.get(source.path, os.path.join(local, manifest["file"]), recursive=source.is_dir())
            _check_recorded_digest(context, manifest, path, Path(local))
            return read_value(manifest, Path(local))


def _holds_joblib(manifest: dict) -> bool:
    return manifest["format"] == "joblib" or any(_holds_joblib(e) for e in manifest.get("entries", {}).values())


def _check_recorded_digest(context: InputContext | None, manifest: dict, path: UPath, folder: Path) -> None:
    """An artefact holding joblib, loaded in a run, must still have the sha256 the Dagster instance recorded
    when it materialized this very path (artefact_path, artefact_sha256). The manifest's own digests catch a
    replaced file; this also catches a file and manifest rewritten together, since the record lives in the
    instance, not the storage root. Outside a run (load_stored), for partitions, or when the latest record is of
    another path (another data root), the manifest's digests are the check."""
    if context is None or not _holds_joblib(manifest) or not context.has_asset_key or context.has_asset_partitions:
        return
    try:
        instance = context.instance
    except DagsterInvariantViolationError:  # a context built without an instance (scripts, tests): no record
        return
    event = instance.get_latest_materialization_event(context.asset_key)
    metadata = event.asset_materialization.metadata if event else {}
    recorded, recorded_path = metadata.get("artefact_sha256"), metadata.get("artefact_path")
    if recorded is None or recorded_path is None or recorded_path.value != str(path.with_name(manifest["file"])):
        return
    target = folder / _plain_name(manifest["file"], folder)
    actual = tree_digest(target)[1]
    if actual != recorded.value:
        raise RefusedArtefact(f"{target}: sha256 {actual} differs from {recorded.value} that this Dagster instance "
                              "recorded when it materialized the asset; not loaded (it holds joblib, which runs "
                              "code when read): materialize the asset again")


class MaterialsStorage(ConfigurableIOManagerFactory):
    """IO manager factory: artefacts under <root>/storage. root: any fsspec URL; default the data root."""

    root: str | None = None

    def create_io_manager(self, context) -> StorageIOManager:
        base = UPath(self.root) if self.root else UPath(data_root())
        return StorageIOManager(base_path=base / "storage")
