"""A dropped pickle never runs code: hostile files are quarantined unread, real Severson layouts still read."""

import pickle
import re
import sys

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from assets.cycling import defs as cycling_defs
from assets.cycling.unified import read_pickle
from resources.safe_pickle import load_data_pickle
from tests.hostile_files import importable_probe, shell_pickle

PROBE_MODULE = "hostile_import_probe"


def import_pickle(module: str) -> bytes:
    """A protocol-0 pickle that asks find_class for `module.anything`: a plain unpickler imports the module."""
    return f"c{module}\nanything\n.".encode()


@pytest.fixture
def probe_module(tmp_path):
    """An importable module whose import alone creates a marker file (so importing it is observable)."""
    with importable_probe(tmp_path / "importable", PROBE_MODULE, "anything = None\n") as marker:
        yield marker


def braatz_batch() -> dict:
    """Two cells in the layout of the Braatz repository's batch pickles (BatteryDataBuilding notebook):
    scalars from the .mat files as float64 (1, 1) arrays, the policy a str, traces 1-D float64 arrays,
    cycles keyed by str(j), plus a bytes field."""
    t = np.array([0.0, 0.5, 1.0, 1.5])
    cycle = {"I": np.array([0.0, 5.5, 5.5, 3.96]), "Qc": np.array([0.0, 0.04, 0.09, 0.13]),
             "Qd": np.zeros(4), "T": np.array([29.9, 30.1, 30.4, 30.8]), "V": np.array([3.28, 3.31, 3.33, 3.35]),
             "t": t, "Qdlin": np.linspace(0.0, 1.07, 1000), "Tdlin": np.full(1000, 31.2),
             "dQdV": np.zeros(1000)}
    summary = {"IR": np.array([0.0167, 0.0166]), "QC": np.array([1.071, 1.072]), "QD": np.array([1.070, 1.071]),
               "Tavg": np.array([31.6, 31.7]), "Tmin": np.array([29.9, 29.9]), "Tmax": np.array([35.1, 35.2]),
               "chargetime": np.array([13.3, 13.3]), "cycle": np.array([1.0, 2.0])}
    return {cell: {"cycle_life": np.array([[life]]), "charge_policy": "3.6C(80%)-3.6C", "barcode": b"EL150800460514",
                   "summary": summary, "cycles": {"1": cycle, "2": {**cycle, "t": t + 0.01}, "3": cycle}}
            for cell, life in (("b1c0", 1852.0), ("b1c1", 2160.0))}


def numpy1_protocol3(batch: dict) -> bytes:
    """The batch as Python 3 + numpy 1.x wrote the published files: protocol 3, `numpy.core.multiarray`."""
    data = pickle.dumps(batch, protocol=3)
    # GLOBAL opcodes are newline-terminated text (no length prefix): numpy 2 spells numpy 1's module `numpy._core`.
    assert data.count(b"numpy._core.multiarray\n") > 0
    return data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def test_hostile_pickles_are_quarantined_by_the_intake_and_run_nothing(tmp_path, monkeypatch, probe_module):
    from resources.cluster import DaskResource
    from resources.compute import ComputeResource
    from resources.storage import MaterialsStorage

    root, shell_marker = tmp_path / "data", tmp_path / "shell.marker"
    raw = root / "raw" / "cycling"
    raw.mkdir(parents=True)
    (raw / "batch1.pkl").write_bytes(shell_pickle(shell_marker))
    (raw / "imports.pkl").write_bytes(import_pickle(PROBE_MODULE))
    (raw / "severson.pkl").write_bytes(numpy1_protocol3(braatz_batch()))
    monkeypatch.setenv("MATERIALS_DATA", str(root))
    result = materialize(
        [cycling_defs.cycling_synthetic_cells, cycling_defs.cycling_unified],
        resources={"compute": ComputeResource(device="cpu", seed=0, num_threads=1),
                   "dask": DaskResource(synchronous=True), "io_manager": MaterialsStorage(root=str(root))},
        instance=DagsterInstance.ephemeral(), raise_on_error=False,
        run_config={"ops": {"cycling_synthetic_cells": {"config": {"n_cells": 2, "detail_stride": 50,
                                                                   "points_per_cycle": 20}},
                            "cycling_unified": {"config": {"synthetic": "never", "rejected_share_severity": "WARN"}}}})

    assert result.success
    assert not shell_marker.exists() and not probe_module.exists()
    assert PROBE_MODULE not in sys.modules
    quarantine = pd.read_csv(root / "quarantine" / "cycling.csv").set_index("source")["reason"]
    assert set(quarantine.index) == {"raw/cycling/batch1.pkl", "raw/cycling/imports.pkl"}
    assert "posix.system is not admitted" in quarantine["raw/cycling/batch1.pkl"]
    assert f"{PROBE_MODULE}.anything is not admitted" in quarantine["raw/cycling/imports.pkl"]
    unified = result.output_for_node("cycling_unified")
    assert set(unified["cell_key"]) == {"b1c0", "b1c1"}
    assert unified.groupby("cell_key")["cycle_life"].first().to_dict() == {"b1c0": 1852.0, "b1c1": 2160.0}


def test_a_plain_unpickler_would_have_run_both_payloads(tmp_path, probe_module):
    """The hostile files above are live: pickle.loads runs them (so the intake test can fail)."""
    marker = tmp_path / "shell.marker"
    pickle.loads(shell_pickle(marker))
    pickle.loads(import_pickle(PROBE_MODULE))
    assert marker.exists() and probe_module.exists()


@pytest.mark.parametrize("protocol", range(6))
def test_the_braatz_layout_reads_under_every_protocol(tmp_path, protocol):
    batch = braatz_batch()
    path = tmp_path / "batch.pkl"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    loaded = load_data_pickle(path)
    assert loaded["b1c0"]["barcode"] == b"EL150800460514"
    np.testing.assert_array_equal(loaded["b1c1"]["cycle_life"], [[2160.0]])
    assert loaded["b1c0"]["cycle_life"].dtype == np.float64 and loaded["b1c0"]["cycle_life"].shape == (1, 1)
    for key, trace in batch["b1c0"]["cycles"]["2"].items():
        np.testing.assert_array_equal(loaded["b1c0"]["cycles"]["2"][key], trace)
    frame, rejections = read_pickle(path)
    assert not rejections and sorted(frame["cycle_number"].unique()) == [1, 2, 3]


def test_numpy1_spelling_reads_and_numpy_scalars_keep_their_type(tmp_path):
    path = tmp_path / "batch.pkl"
    batch = braatz_batch()
    batch["b1c0"]["summary"]["n_cycles"] = np.int64(2)  # a numpy scalar: pickled through multiarray.scalar
    path.write_bytes(numpy1_protocol3(batch))
    loaded = load_data_pickle(path)
    assert type(loaded["b1c0"]["summary"]["n_cycles"]) is np.int64 and loaded["b1c0"]["summary"]["n_cycles"] == 2
    np.testing.assert_array_equal(loaded["b1c0"]["summary"]["QD"], batch["b1c0"]["summary"]["QD"])


@pytest.mark.parametrize(
    "value, refused",
    [
        (np.array([1.0, "text"], dtype=object), r"numpy object dtype is not admitted"),
        ({"cells": pd.DataFrame({"a": [1]})}, r"pandas\.[\w.]+ is not admitted"),
        ({1, 2}, r"__builtin__\.set is not admitted"),  # protocol 2: a call to set, by its Python 2 name
        (complex(1, 2), r"__builtin__\.complex is not admitted"),
    ],
    ids=["object-array", "dataframe", "set", "complex"],
)
def test_anything_beyond_the_format_is_refused_with_its_type(tmp_path, value, refused):
    path = tmp_path / "cells.pkl"
    path.write_bytes(pickle.dumps(value, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=refused):
        load_data_pickle(path)
    frame, (rejection,) = read_pickle(path)
    assert frame.empty and rejection.source == "cells.pkl" and re.search(refused, rejection.reason)


def test_protocol2_bytes_admit_only_the_latin1_codec(tmp_path):
    path = tmp_path / "codec.pkl"
    path.write_bytes(b"c_codecs\nencode\n(Vabc\nVrot13\ntR.")
    with pytest.raises(pickle.UnpicklingError, match="codec 'rot13' is not admitted"):
        load_data_pickle(path)
