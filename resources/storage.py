"""The storage IO manager: one artefact per asset (and partition), format by type.

    DataFrame                 -> .parquet
    ndarray / dict of arrays  -> .npz
    Hdf5Tree (nested arrays)  -> .h5 (large simulated sets; diffsims-XL layout)
    Keras model               -> .keras
    XGBoost model             -> .ubj
    transformers / tokenizer  -> save_pretrained folder
    torch module              -> .pt
    scikit-learn estimator    -> .joblib
    JSON-able dict/list       -> .json
    dict of any of the above  -> folder, one artefact per key (a "bundle")

Every artefact is staged in a temporary sibling and renamed into place, and a
manifest (format, class, bytes, sha256) is written last; an artefact without a
manifest does not exist. So a killed run never leaves a half-written artefact.
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
from dagster import ConfigurableIOManagerFactory, InputContext, OutputContext, UPathIOManager
from upath import UPath

from resources.datapaths import data_root, sha256_file

MANIFEST_SUFFIX = ".manifest.json"


class Hdf5Tree(dict):
    """A nested dict of arrays (and JSON-able attrs under '@attrs') stored as one HDF5 file.

    Keys with '/' are HDF5 paths: {"1d/x_px": X, "1d/y_px": y, "metadata/id": "..."}.
    Strings are stored as UTF-8 scalars; lists of strings as string arrays.
    """


def _class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_class(class_path: str):
    module, _, name = class_path.partition(":")
    target = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target


def _is_jsonable(obj: Any) -> bool:
    try:
        json.dumps(obj)
    except (TypeError, ValueError):
        return False
    return True


def format_for(obj: Any) -> str:
    """The storage format of a value (without importing heavy libraries)."""
    module = type(obj).__module__.split(".")[0]
    if isinstance(obj, pd.DataFrame):
        return "parquet"
    if isinstance(obj, Hdf5Tree):
        return "hdf5"
    if isinstance(obj, np.ndarray):
        return "npz"
    if isinstance(obj, dict) and obj and all(isinstance(v, np.ndarray) for v in obj.values()):
        return "npz"
    if module in ("keras", "tf_keras") or (module == "tensorflow" and hasattr(obj, "save")):
        return "keras"
    if module == "xgboost":
        return "xgboost"
    if hasattr(obj, "save_pretrained") and hasattr(type(obj), "from_pretrained"):
        return "pretrained"
    if module == "torch" or any(c.__module__.startswith("torch.nn") for c in type(obj).__mro__):
        return "torch"
    if module == "sklearn" or hasattr(obj, "get_params"):
        return "joblib"
    if isinstance(obj, (dict, list, str, int, float, bool)) and _is_jsonable(obj):
        return "json"
    if isinstance(obj, dict) and all(isinstance(k, str) for k in obj):
        return "bundle"
    return "pickle"


SUFFIX = {
    "parquet": ".parquet",
    "hdf5": ".h5",
    "npz": ".npz",
    "keras": ".keras",
    "xgboost": ".ubj",
    "pretrained": ".hf",
    "torch": ".pt",
    "joblib": ".joblib",
    "json": ".json",
    "bundle": ".bundle",
    "pickle": ".pkl",
}


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
    """Serialize obj at local path + suffix. Returns the manifest (without hashes)."""
    fmt = format_for(obj)
    target = path.with_name(path.name + SUFFIX[fmt])
    manifest = {"format": fmt, "class": _class_path(obj), "file": target.name}
    if fmt == "parquet":
        obj.to_parquet(target)
    elif fmt == "hdf5":
        _write_hdf5(obj, target)
    elif fmt == "npz":
        arrays = obj if isinstance(obj, dict) else {"array": obj}
        manifest["single_array"] = not isinstance(obj, dict)
        with open(target, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    elif fmt == "keras":
        obj.save(target)
    elif fmt == "xgboost":
        obj.save_model(target)
    elif fmt == "pretrained":
        obj.save_pretrained(target)
    elif fmt == "torch":
        import torch

        torch.save(obj, target)
    elif fmt == "joblib":
        import joblib

        joblib.dump(obj, target)
    elif fmt == "json":
        target.write_text(json.dumps(obj, indent=1, sort_keys=True))
    elif fmt == "bundle":
        target.mkdir()
        manifest["entries"] = {key: write_value(value, target / key) for key, value in obj.items()}
    else:
        import pickle

        with open(target, "wb") as handle:
            pickle.dump(obj, handle)
    return manifest


def read_value(manifest: dict, folder: Path) -> Any:
    fmt, target = manifest["format"], folder / manifest["file"]
    if fmt == "parquet":
        return pd.read_parquet(target)
    if fmt == "hdf5":
        return _read_hdf5(target)
    if fmt == "npz":
        with np.load(target, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        return arrays["array"] if manifest.get("single_array") else arrays
    if fmt == "keras":
        import keras

        return keras.saving.load_model(target, compile=False, safe_mode=False)
    if fmt == "xgboost":
        model = _import_class(manifest["class"])()
        model.load_model(target)
        return model
    if fmt == "pretrained":
        return _import_class(manifest["class"]).from_pretrained(target)
    if fmt == "torch":
        import torch

        return torch.load(target, weights_only=False)
    if fmt == "joblib":
        import joblib

        return joblib.load(target)
    if fmt == "json":
        return json.loads(target.read_text())
    if fmt == "bundle":
        return {key: read_value(entry, target) for key, entry in manifest["entries"].items()}
    import pickle

    with open(target, "rb") as handle:
        return pickle.load(handle)


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
            for suffix in set(SUFFIX.values()):
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
            return read_value(manifest, Path(path.parent.path))
        with tempfile.TemporaryDirectory() as local:
            source = path.with_name(manifest["file"])
            path.fs.get(source.path, os.path.join(local, manifest["file"]), recursive=source.is_dir())
            return read_value(manifest, Path(local))


class MaterialsStorage(ConfigurableIOManagerFactory):
    """IO manager factory: artefacts under <root>/storage. root: any fsspec URL; default the data root."""

    root: str | None = None

    def create_io_manager(self, context) -> StorageIOManager:
        base = UPath(self.root) if self.root else UPath(data_root())
        return StorageIOManager(base_path=base / "storage")
