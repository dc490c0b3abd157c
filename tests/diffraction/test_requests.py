"""Request validation, partition keys, and the simulated HDF5 layout."""

import dataclasses
import json
import uuid

import numpy as np
import pytest

from assets.diffraction.requests import RequestError, SimulationRequest, parse_request, partition_key, read_request
from assets.diffraction.simulation import simulate_request

PHASES = ["CsPbI3_cubic", "PbI2", "Pb", "CsI"]


def test_empty_request_is_the_default():
    assert parse_request({}, "x.yaml", PHASES) == SimulationRequest()


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"orientation_per_phase": 3}, "<document>"),
        ({"phases": ["Pb", "Unobtainium"]}, "phases"),
        ({"phases": ["Pb"]}, "phases"),
        ({"calibration_inv_A_per_px": -1}, "calibration_inv_A_per_px"),
        ({"crop_points": 300}, "crop_points"),
        ({"lattice_scaling": {"Pb": [1.1, 0.9]}}, "lattice_scaling.Pb"),
        ({"augmentation": {"snr_range": [5]}}, "augmentation.snr_range"),
        ({"seeds": []}, "seeds"),
    ],
)
def test_invalid_fields_are_named_with_the_file(raw, field):
    with pytest.raises(RequestError, match=rf"bad\.yaml: field '{field}'"):
        parse_request(raw, "bad.yaml", PHASES)


def test_partition_key_follows_name_and_content(tmp_path):
    path = tmp_path / "study one.yaml"
    path.write_text("orientations_per_phase: 5\n")
    first = partition_key(path)
    assert first.startswith("study_one-") and first == partition_key(path)
    path.write_text("orientations_per_phase: 6\n")
    assert partition_key(path) != first
    assert read_request(path, PHASES).name == "study one"


def test_simulation_has_the_diffsims_xl_layout_and_is_reproducible():
    request = dataclasses.replace(SimulationRequest(), phases=("Pb", "CsI"), orientations_per_phase=7, seeds=(0, 1))
    tree, stats = simulate_request(request, chunk_size=4)
    again, _ = simulate_request(request, chunk_size=4)
    assert tree["1d/x_px"].shape == (2 * 7 * 2, 147) and tree["1d/x_all_q_axis"].shape == (147,)
    np.testing.assert_array_equal(np.bincount(tree["1d/y_px"]), [14, 14])
    assert tree["metadata/phases"] == ["Pb", "CsI"]
    assert json.loads(tree["metadata/request"])["orientations_per_phase"] == 7
    assert tree["metadata/id"] == again["metadata/id"]  # derived from the request: reruns are byte-identical
    assert uuid.UUID(tree["metadata/id"]).version == 4
    other, _ = simulate_request(dataclasses.replace(request, seeds=(2,)), chunk_size=4)
    assert other["metadata/id"] != tree["metadata/id"]
    np.testing.assert_array_equal(tree["1d/x_px"], again["1d/x_px"])
    np.testing.assert_allclose(tree["1d/x_px"].max(axis=1), 1.0)
    np.testing.assert_allclose(tree["1d/x_all_q_axis"][:2], [10 * 0.0105, 11 * 0.0105])
    assert stats["chunks"] == 2 * 2 * 2


def test_a_request_on_the_torch_path_gives_the_numpy_patterns():
    """device="cuda" on a GPU machine; "cpu" here runs the same torch code through simulate_chunk."""
    pytest.importorskip("torch")
    request = dataclasses.replace(SimulationRequest(), phases=("PbI2", "CsI"), orientations_per_phase=30, seeds=(0,))
    numpy_tree, _ = simulate_request(request, chunk_size=16)
    torch_tree, _ = simulate_request(request, chunk_size=16, device="cpu")
    np.testing.assert_array_equal(torch_tree["1d/y_px"], numpy_tree["1d/y_px"])
    np.testing.assert_allclose(torch_tree["1d/x_px"], numpy_tree["1d/x_px"], atol=1e-9)
