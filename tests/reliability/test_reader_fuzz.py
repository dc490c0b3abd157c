"""Property-based fuzzing of every reader: malformed input is rejected naming its file, valid records survive.

Each test builds a file (or folder) that mixes valid records with records broken in
one known way, at positions hypothesis chooses, or throws arbitrary bytes at the
reader. Properties: no unhandled exception; every broken record ends in a
Rejection (or the reader's own error) naming the file; every valid record comes through.
"""

from __future__ import annotations

import csv
import math
import os
import pickle
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from assets.cycling.unified import read_csv as read_cycling_csv
from assets.cycling.unified import read_pickle
from assets.diffraction.experimental import MapError, load_map
from assets.diffraction.phases import CRYSTAL_MODELS_DIR, PhaseError, available_phases, load_phase
from assets.diffraction.requests import RequestError, SimulationRequest, read_request
from assets.eis.circuits import CIRCUITS
from assets.eis.formats import WARBURG_EXPONENT_SCALE, challenge_frame, read_challenge_csv, read_instrument_file
from assets.electrodes.sources import EMBEDDED_CSV, read_export_csv
from assets.pdf.measured import gr_text, measured_inputs
from assets.pdf.structures import read_cif_folder

# benchmarks.reliability sets these: more or fewer examples, and no shrinking (each input counted once).
FUZZ = settings(
    max_examples=int(os.environ.get("RELIABILITY_FUZZ_EXAMPLES", "30")),
    phases=[Phase.explicit, Phase.generate] if os.environ.get("RELIABILITY_FUZZ_NO_SHRINK") else list(Phase),
    deadline=None,
    database=None,
    # CI replays the same inputs every run; the benchmark explores new ones.
    derandomize=not os.environ.get("RELIABILITY_FUZZ_RANDOM"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SLOW_FUZZ = settings(FUZZ, max_examples=max(FUZZ.max_examples // 3, 1))  # readers costing ~0.1-0.5 s per example (pymatgen, orix)

arbitrary_bytes = st.binary(max_size=600)
# Record positions: a list of flags, True = a broken record at that position.
layouts = st.lists(st.booleans(), min_size=1, max_size=8)


# Totals over every example run in this process; benchmarks.reliability prints them.
TALLY: Counter = Counter()


def expect(valid: int, broken: int) -> None:
    """Count the records about to be read: `valid` must come through, `broken` are injected faults."""
    TALLY.update(inputs=valid + broken, faults=broken, valid=valid)


def recovered(valid: int) -> None:
    """Count the valid records that came through unchanged (valid - recovered = records lost)."""
    TALLY.update(recovered=valid)


def scratch_folder(base: Path) -> Path:
    """A fresh folder under base per hypothesis example (function-scoped fixtures are shared across examples)."""
    return Path(tempfile.mkdtemp(prefix="example-", dir=base))


def write_csv(rows: list[dict], path: Path) -> Path:
    """Rows as a CSV quoting every field: pandas leaves a lone carriage return unquoted, which a reader (rightly)
    takes for a line break, and the file would not hold the records the test meant."""
    pd.DataFrame(rows).to_csv(path, index=False, quoting=csv.QUOTE_ALL)
    return path


def assert_names_file(rejections, path: Path) -> None:
    assert rejections and all(Path(r.source).name == path.name for r in rejections), rejections


# ---- EIS: challenge CSV -----------------------------------------------------------------

positive = st.floats(1e-3, 1e3, allow_nan=False)


@st.composite
def labelled_spectrum(draw):
    points = draw(st.integers(2, 6))
    freq = np.cumsum(draw(st.lists(positive, min_size=points, max_size=points)))
    z = np.array(draw(st.lists(st.complex_numbers(max_magnitude=1e3, allow_nan=False, allow_infinity=False),
                               min_size=points, max_size=points)))
    circuit = draw(st.sampled_from(sorted(CIRCUITS)))
    parameters = {name: draw(positive) for name in CIRCUITS[circuit].parameters}
    return freq, z, circuit, parameters


EIS_BREAKS = {
    "freq not bracketed": lambda row, text: {**row, "freq": "?" + text + row["freq"]},
    "NaN in Z": lambda row, text: {**row, "Z": row["Z"].replace("[", "[nan+0j, ", 1).replace("]", "") + "]"},
    "Z shorter than freq": lambda row, text: {**row, "Z": "[" + row["Z"][1:-1].rsplit(",", 1)[0] + "]"},
    "unknown circuit": lambda row, text: {**row, "Circuit": "Unknown-" + text},
    "parameter missing": lambda row, text: {**row, "Parameters": row["Parameters"].split(",", 1)[1]},
    "repeated frequency": lambda row, text: {**row, "freq": row["freq"].replace("[", "[" + row["freq"][1:].split(",")[0] + ", ", 1)},
}


@FUZZ
@given(layout=layouts, spectra=st.lists(labelled_spectrum(), min_size=8, max_size=8),
       breaks=st.lists(st.sampled_from(sorted(EIS_BREAKS)), min_size=8, max_size=8), text=st.text(max_size=12))
def test_eis_challenge_csv_keeps_valid_rows_and_rejects_broken_ones(tmp_path, layout, spectra, breaks, text):
    spectra = spectra[: len(layout)]
    frame = challenge_frame([s[0] for s in spectra], [s[1] for s in spectra], [s[2] for s in spectra], [s[3] for s in spectra])
    rows = [EIS_BREAKS[b](row, text) if broken else row for row, broken, b in zip(frame.to_dict("records"), layout, breaks)]
    path = write_csv(rows, scratch_folder(tmp_path) / "mixed.csv")
    expect(layout.count(False), layout.count(True))
    found, rejections = read_challenge_csv(path, "rad_s", labelled=True)
    assert [s.row for s in found] == [i for i, broken in enumerate(layout) if not broken]
    assert [r.row for r in rejections] == [i for i, broken in enumerate(layout) if broken]
    for spectrum in found:
        freq, z, circuit, parameters = spectra[spectrum.row]
        np.testing.assert_array_equal(spectrum.omega_rad_s, freq)
        np.testing.assert_array_equal(spectrum.impedance_ohm, z)
        # The challenge convention (the reader's default): a stored W1_p is the Warburg exponent x 6.5.
        stored = {name: value / WARBURG_EXPONENT_SCALE if name == "W1_p" else value for name, value in parameters.items()}
        assert spectrum.circuit == circuit and spectrum.parameters == stored
        recovered(1)
    if rejections:
        assert_names_file(rejections, path)


# ---- EIS: instrument file (ZPlot .z, Hz) ---------------------------------------------------


def zplot_text(freq_hz: np.ndarray, z: np.ndarray) -> str:
    header = "ZPlot2 ASCII\nEnd Comments\n"
    rows = [f"{f!r}\t0\t0\t0\t{v.real!r}\t{v.imag!r}" for f, v in zip(freq_hz.tolist(), z.tolist())]
    return header + "\n".join(rows) + "\n"


@FUZZ
@given(spectrum=labelled_spectrum(), cut=st.integers(0, 400), noise=arbitrary_bytes)
def test_instrument_file_is_read_exactly_or_rejected_naming_it(tmp_path, spectrum, cut, noise):
    freq, z, _, _ = spectrum
    folder = scratch_folder(tmp_path)
    valid, truncated, garbage = folder / "valid.z", folder / "truncated.z", folder / "garbage.z"
    text = zplot_text(freq, z)
    valid.write_text(text)
    truncated.write_text(text[: min(cut, len(text) - 1)])
    garbage.write_bytes(noise)
    expect(1, 2)
    [read], refused = read_instrument_file(valid, "zplot")
    assert refused == [] and read.row is None
    np.testing.assert_allclose(read.omega_rad_s, 2 * np.pi * freq)
    np.testing.assert_array_equal(read.impedance_ohm, z)
    recovered(1)
    for path in (truncated, garbage):
        found, rejections = read_instrument_file(path, "zplot")
        assert len(found) + len(rejections) == 1
        if rejections:
            assert_names_file(rejections, path)


# ---- CIF (pdf: pymatgen; diffraction: orix) --------------------------------------------------

SHIPPED_CIFS = sorted(CRYSTAL_MODELS_DIR.glob("*.cif"))


@st.composite
def broken_cif(draw):
    """A shipped CIF cut short, missing one line, or replaced by arbitrary bytes."""
    lines = draw(st.sampled_from(SHIPPED_CIFS)).read_text().splitlines(keepends=True)
    how = draw(st.sampled_from(["truncate", "drop line", "bytes"]))
    if how == "truncate":
        return "".join(lines[: draw(st.integers(0, len(lines) - 1))]).encode()
    if how == "drop line":
        drop = draw(st.integers(0, len(lines) - 1))
        return "".join(lines[:drop] + lines[drop + 1 :]).encode()
    return draw(arbitrary_bytes)


@SLOW_FUZZ
@given(broken=st.lists(broken_cif(), min_size=1, max_size=3))
def test_cif_folder_keeps_every_valid_cif_and_accounts_for_every_broken_one(tmp_path, broken):
    folder = scratch_folder(tmp_path)
    for path in SHIPPED_CIFS:
        shutil.copy(path, folder / path.name)
    for number, content in enumerate(broken):
        (folder / f"broken{number}.cif").write_bytes(content)
    expect(len(SHIPPED_CIFS), len(broken))
    crystals, rejections = read_cif_folder(folder, None)
    read = {Path(c.source).name for c in crystals}
    recovered(len(read & {p.name for p in SHIPPED_CIFS}))
    assert {p.name for p in SHIPPED_CIFS} <= read
    assert sorted(read | {Path(r.source).name for r in rejections}) == sorted(p.name for p in folder.glob("*.cif"))


@SLOW_FUZZ
@given(content=broken_cif())
def test_diffraction_phase_from_a_broken_cif_is_a_phase_or_a_phase_error_naming_it(content, data_root):
    folder = data_root / "raw" / "diffraction" / "cif"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Fuzzed.cif").write_bytes(content)
    expect(0, 1)
    try:
        phase = load_phase("Fuzzed")
    except PhaseError as error:
        assert "Fuzzed.cif" in str(error)
    else:
        assert len(phase.structure) > 0 and phase.space_group is not None
    assert "Fuzzed" in available_phases()


# ---- PDF: .gr files ------------------------------------------------------------------------

GR_BREAKS = {
    "word in the data": lambda lines, at, text: lines[:at] + ["r G " + text] + lines[at:],
    "NaN row": lambda lines, at, text: lines[:at] + ["5.0 nan"] + lines[at:],
    "too few rows": lambda lines, at, text: lines[: lines.index("#### start data") + 5],
    "r decreasing": lambda lines, at, text: lines[:at] + [lines[at]] + lines[at:],
}


@FUZZ
@given(layout=layouts, breaks=st.lists(st.sampled_from(sorted(GR_BREAKS)), min_size=8, max_size=8),
       at=st.integers(0, 300), text=st.text(max_size=10), seed=st.integers(0, 2**16))
def test_gr_folder_keeps_valid_files_and_rejects_broken_ones(tmp_path, layout, breaks, at, text, seed):
    folder, rng = scratch_folder(tmp_path), np.random.default_rng(seed)
    r = np.round(np.arange(1.0, 31.0, 0.05), 6)  # measured files must start by 1.5 A and reach 15 A
    for number, (broken, how) in enumerate(zip(layout, breaks)):
        lines = gr_text(r, rng.normal(size=r.size), "fuzz").splitlines()
        data_start = lines.index("#### start data") + 3
        if broken:
            lines = GR_BREAKS[how](lines, data_start + 1 + at % (len(lines) - data_start - 2), text)
        (folder / f"f{number}.gr").write_text("\n".join(lines) + "\n")
    expect(layout.count(False), layout.count(True))
    names, inputs, rejections = measured_inputs(folder)
    recovered(len(set(names) & {f"f{i}.gr" for i, broken in enumerate(layout) if not broken}))
    assert names == [f"f{i}.gr" for i, broken in enumerate(layout) if not broken]
    assert sorted(Path(r.source).name for r in rejections) == sorted(f"f{i}.gr" for i, b in enumerate(layout) if b)
    assert inputs.shape[0] == len(names) and np.isfinite(inputs).all()


# ---- diffraction: experimental .npz -------------------------------------------------------

POINTS = 147
NPZ_BREAKS = {
    "missing y": lambda a: {"x": a["x"]},
    "short x": lambda a: {**a, "x": a["x"][:-1]},
    "2D y": lambda a: {**a, "y": a["y"][0]},
    "NaN in y": lambda a: {**a, "y": np.where(a["y"] > 0.5, np.nan, a["y"])},
    "x not increasing": lambda a: {**a, "x": a["x"][::-1]},
    "truth shape": lambda a: {**a, "truth": np.zeros((a["y"].shape[0] + 1, a["y"].shape[1]), int)},
    "object array": lambda a: {**a, "y": np.array([None, "x"], dtype=object)},
}


@FUZZ
@given(rows=st.integers(1, 4), cols=st.integers(1, 4), how=st.sampled_from(sorted(NPZ_BREAKS)),
       noise=arbitrary_bytes, seed=st.integers(0, 2**16))
def test_experimental_npz_is_loaded_exactly_or_rejected_naming_it(tmp_path, rows, cols, how, noise, seed):
    folder, rng = scratch_folder(tmp_path), np.random.default_rng(seed)
    arrays = {"x": np.linspace(0.1, 1.6, POINTS), "y": rng.random((rows, cols, POINTS)), "truth": np.zeros((rows, cols), int)}
    valid, broken, garbage = folder / "valid.npz", folder / "broken.npz", folder / "garbage.npz"
    np.savez(valid, **arrays)
    np.savez(broken, **NPZ_BREAKS[how](arrays))
    garbage.write_bytes(noise)
    expect(1, 2)
    loaded = load_map(valid, POINTS)
    np.testing.assert_array_equal(loaded["y"], arrays["y"])
    recovered(1)
    for path in (broken, garbage):
        with pytest.raises(MapError, match=path.name):
            load_map(path, POINTS)


# ---- diffraction: request YAML --------------------------------------------------------------

REQUEST_FIELDS = ["name", "phases", "orientations_per_phase", "seeds", "beam_energy_keV", "calibration_inv_A_per_px",
                  "calibration_jitter", "lattice_scaling", "radial_bins", "crop_start_px", "crop_points",
                  "spot_sigma_px", "augmentation", "unknown_field"]
yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**12), st.floats(allow_nan=True),
                         st.text(max_size=8), st.sampled_from(available_phases()))
yaml_values = st.recursive(yaml_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8) | st.sampled_from(["default", "snr_range"]), inner, max_size=3), max_leaves=8)


@FUZZ
@given(document=st.dictionaries(st.sampled_from(REQUEST_FIELDS), yaml_values, max_size=5) | yaml_values, noise=arbitrary_bytes)
def test_request_yaml_is_a_request_or_a_request_error_naming_the_file(tmp_path, document, noise):
    folder = scratch_folder(tmp_path)
    structured, garbage = folder / "structured.yaml", folder / "garbage.yaml"
    structured.write_text(yaml.safe_dump(document))
    garbage.write_bytes(noise)
    expect(0, 2)
    for path in (structured, garbage):
        try:
            request = read_request(path, available_phases())
        except RequestError as error:
            assert path.name in str(error)
        else:
            assert isinstance(request, SimulationRequest) and len(request.phases) >= 2


@st.composite
def accepted_request_fields(draw):
    """Fields within the limits read_request documents (tiny orientation counts: it is simulated)."""
    radial_bins = draw(st.integers(8, 300))
    crop_points = draw(st.integers(4, radial_bins))
    return {
        "phases": draw(st.lists(st.sampled_from(sorted(p.stem for p in SHIPPED_CIFS)), min_size=2, max_size=3, unique=True)),
        "orientations_per_phase": draw(st.integers(1, 3)),
        "seeds": draw(st.lists(st.integers(-3, 2**40), min_size=1, max_size=2)),
        "calibration_jitter": draw(st.floats(0.0, 0.5)),
        "spot_sigma_px": draw(st.floats(0.0, 5.0)),
        "radial_bins": radial_bins,
        "crop_start_px": draw(st.integers(0, radial_bins - crop_points)),
        "crop_points": crop_points,
    }


@SLOW_FUZZ
@example(fields={"phases": ["Pb", "CsI"], "orientations_per_phase": 1, "seeds": [0], "calibration_jitter": 0.0,
                 "spot_sigma_px": 1.5, "radial_bins": 8, "crop_start_px": 0, "crop_points": 4})  # no reflection in reach
@example(fields={"phases": ["Pb", "CsI"], "orientations_per_phase": 1, "seeds": [-1], "calibration_jitter": 0.0,
                 "spot_sigma_px": 1.5, "radial_bins": 200, "crop_start_px": 10, "crop_points": 147})  # negative seed
@example(fields={"phases": ["CsI", "CsPbI3_cubic"], "orientations_per_phase": 1, "seeds": [0], "calibration_jitter": 0.0,
                 "spot_sigma_px": 2.2e-308, "radial_bins": 21, "crop_start_px": 0, "crop_points": 21})  # subnormal blur
@given(fields=accepted_request_fields())
def test_an_accepted_request_simulates_finite_profiles(tmp_path, fields):
    """What read_request accepts simulates, or fails with a PhaseError the asset quarantines under the file name."""
    from assets.diffraction.phases import PhaseError
    from assets.diffraction.simulation import simulate_request

    path = scratch_folder(tmp_path) / "accepted.yaml"
    path.write_text(yaml.safe_dump(fields))
    expect(1, 0)
    try:
        request = read_request(path, available_phases())
    except RequestError as error:
        assert path.name in str(error)
        recovered(1)
        return
    try:
        tree, _ = simulate_request(request, chunk_size=2)
    except PhaseError as error:  # the asset quarantines it with the request file's name
        assert "no reflection within the reciprocal radius" in str(error)
        recovered(1)
        return
    assert tree["1d/x_px"].shape == (len(request.phases) * request.orientations_per_phase * len(request.seeds), request.crop_points)
    assert np.isfinite(tree["1d/x_px"]).all()
    recovered(1)


# ---- cycling: Severson pickle and unified CSV ----------------------------------------------


def severson_cell(steps: int, cycles: int) -> dict:
    t = np.arange(steps, dtype=float)
    cycle = {"t": t, "V": 3.0 + 0.01 * t, "I": np.ones(steps), "Qd": 0.001 * t, "T": np.full(steps, 30.0)}
    return {"cycle_life": np.array([[1000.0]]), "charge_policy": "5C(67%)-4C",
            "cycles": {str(n): dict(cycle) for n in range(1, cycles + 1)}}


CELL_BREAKS = {
    "not a dict": lambda cell, value: [value],
    "cycles not a dict": lambda cell, value: {**cell, "cycles": [value]},
    "trace lengths differ": lambda cell, value: {**cell, "cycles": {"1": {**cell["cycles"]["1"], "V": np.zeros(1)}}},
    "no time": lambda cell, value: {**cell, "cycles": {"1": {"V": cell["cycles"]["1"]["V"]}}},
    "non-numeric trace": lambda cell, value: {**cell, "cycles": {"1": {**cell["cycles"]["1"], "V": ["x"] * 3}}},
    "cycle key not a number": lambda cell, value: {**cell, "cycles": {"abc": cell["cycles"]["1"]}},
    "infinite cycle key": lambda cell, value: {**cell, "cycles": {"inf": cell["cycles"]["1"]}},
    "cycle_life too large for a float": lambda cell, value: {**cell, "cycle_life": 10**400},
}


@FUZZ
@example(layout=[False, True, True], breaks=["not a dict", "infinite cycle key", "cycle_life too large for a float"] + ["not a dict"] * 5,
         value=None, steps=3, cycles=1)  # both raised OverflowError on 2026-11-23
@given(layout=layouts, breaks=st.lists(st.sampled_from(sorted(CELL_BREAKS)), min_size=8, max_size=8),
       value=yaml_scalars, steps=st.integers(3, 6), cycles=st.integers(1, 3))
def test_cycling_pickle_keeps_valid_cells_and_rejects_broken_ones(tmp_path, layout, breaks, value, steps, cycles):
    batch = {f"cell{i}": CELL_BREAKS[how](severson_cell(steps, cycles), value) if broken else severson_cell(steps, cycles)
             for i, (broken, how) in enumerate(zip(layout, breaks))}
    path = scratch_folder(tmp_path) / "batch.pkl"
    path.write_bytes(pickle.dumps(batch))
    valid = [f"cell{i}" for i, broken in enumerate(layout) if not broken]
    expect(len(valid), len(batch) - len(valid))
    frame, rejections = read_pickle(path)
    recovered(len(set(frame["cell_key"]) & set(valid)))
    assert sorted(frame["cell_key"].unique()) == valid
    assert (frame.groupby("cell_key").size() == steps * cycles).all()
    assert sorted(r.row for r in rejections) == sorted(set(batch) - set(valid))
    assert all(r.source == path.name for r in rejections)


@FUZZ
@given(obj=yaml_values, noise=arbitrary_bytes)
def test_cycling_pickle_of_anything_is_rejected_not_raised(tmp_path, obj, noise):
    folder = scratch_folder(tmp_path)
    for path, content in ((folder / "obj.pkl", pickle.dumps(obj)), (folder / "noise.pkl", noise)):
        path.write_bytes(content)
        expect(0, 1)
        frame, rejections = read_pickle(path)
        assert frame.empty and rejections and rejections[0].source == path.name


CSV_BAD_CYCLES = ["", "abc", "inf", "-inf", "nan", "1e400"]


@FUZZ
@example(layout=[False, True, True], bad=["", "inf", "1e400"] + [""] * 5, voltages=[3.0] * 8)  # IntCastingNaNError on 2026-11-23
@given(layout=layouts, bad=st.lists(st.sampled_from(CSV_BAD_CYCLES), min_size=8, max_size=8),
       voltages=st.lists(st.floats(2.0, 4.2), min_size=8, max_size=8))
def test_cycling_csv_keeps_valid_lines_and_rejects_broken_ones(tmp_path, layout, bad, voltages):
    lines = ["cell_key,cycle_number,time,voltage"]
    for i, broken in enumerate(layout):
        lines.append(f"cellA,{bad[i] if broken else 1},{i},{voltages[i]!r}")
    path = scratch_folder(tmp_path) / "cells.csv"
    path.write_text("\n".join(lines) + "\n")
    valid = [i for i, broken in enumerate(layout) if not broken]
    expect(len(valid), len(layout) - len(valid))
    frame, rejections, _ = read_cycling_csv(path)
    recovered(min(len(frame), len(valid)))
    # pandas' default float parser may be 1 ulp off the written repr; the value is still the record's.
    np.testing.assert_allclose(frame["voltage"].to_numpy(), [voltages[i] for i in valid], rtol=1e-15)
    assert [r.row for r in rejections] == [i + 2 for i, broken in enumerate(layout) if broken]


# ---- electrodes: Battery Explorer CSV export ------------------------------------------------

EMBEDDED_ROWS = pd.read_csv(EMBEDDED_CSV, dtype=str, keep_default_na=False).to_dict("records")
ELECTRODE_BREAKS = {
    "battery id shape": lambda row, text: {**row, "Battid": "x_" + text},
    "formula garbage": lambda row, text: {**row, "Reduced Cell Formula": "Qq" + text},
    "voltage not a number": lambda row, text: {**row, "Average Voltage": "volts" + text},
    "empty battery id": lambda row, text: {**row, "Battid": ""},
}


@FUZZ
@given(layout=layouts, picks=st.lists(st.integers(0, len(EMBEDDED_ROWS) - 1), min_size=8, max_size=8, unique=True),
       breaks=st.lists(st.sampled_from(sorted(ELECTRODE_BREAKS)), min_size=8, max_size=8), text=st.text(max_size=8))
def test_electrode_export_keeps_valid_rows_and_rejects_broken_ones(tmp_path, layout, picks, breaks, text):
    rows = [ELECTRODE_BREAKS[how](EMBEDDED_ROWS[pick], text) if broken else EMBEDDED_ROWS[pick]
            for pick, broken, how in zip(picks, layout, breaks)]
    path = write_csv(rows, scratch_folder(tmp_path) / "export.csv")
    expect(layout.count(False), layout.count(True))
    records, rejections, read = read_export_csv(path)
    recovered(len({r["battery_id"] for r in records} & {row["Battid"] for row, b in zip(rows, layout) if not b}))
    assert read == len(rows)
    assert [r["battery_id"] for r in records] == [row["Battid"] for row, b in zip(rows, layout) if not b]
    assert [r.row for r in rejections] == [i + 2 for i, broken in enumerate(layout) if broken]
    assert all(r.source == str(path) for r in rejections)
    for record in records:
        assert math.isfinite(record["theoretical_capacity_mAh_g"])


# ---- every file reader: arbitrary bytes -------------------------------------------------------

# reader name -> (file suffix, function path -> (records read, rejections))
BYTE_READERS = {
    "eis challenge csv": (".csv", lambda path: read_challenge_csv(path, "rad_s", labelled=False)),
    "pdf .gr": (".gr", lambda path: measured_inputs(path.parent)[::2]),
    "cycling csv": (".csv", lambda path: read_cycling_csv(path)[:2]),
    "electrode export csv": (".csv", lambda path: read_export_csv(path)[:2]),
}


@pytest.mark.parametrize("reader", sorted(BYTE_READERS))
@FUZZ
@given(noise=arbitrary_bytes)
def test_arbitrary_bytes_are_read_or_rejected_naming_the_file(tmp_path, reader, noise):
    suffix, read = BYTE_READERS[reader]
    path = scratch_folder(tmp_path) / f"noise{suffix}"
    path.write_bytes(noise)
    expect(0, 1)
    records, rejections = read(path)
    assert len(records) > 0 or rejections
    if rejections:
        assert_names_file(rejections, path)
