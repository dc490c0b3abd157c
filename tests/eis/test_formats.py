"""Challenge CSV round trip, validation reasons and instrument files."""

import numpy as np
import pandas as pd
import pytest

from assets.eis import formats
from assets.eis.circuits import CIRCUITS
from assets.eis.simulate import SimulationSettings, as_challenge_frame, simulate_all

GOOD_FREQ = "[1.0e-01, 1.48e-01 , 2.2e-01, 1.0e+05]"
GOOD_Z = "[1.89-0.0143j, 1.88-0.02j , 1.85-0.031j, 0.9-0.001j]"
GOOD_PARAMS = "R1: 1.33e+00, R2: 4.1e-01, CPE1_t: 8.0e-01, CPE1_C: 1.0e-03, CPE2_t: 6.0e-01, CPE2_C: 2.0e-02"


def _simulated(tmp_path, per_class=3):
    batches = simulate_all(SimulationSettings(spectra_per_class=per_class), np.random.default_rng(11))
    path = tmp_path / "simulated.csv"
    as_challenge_frame(batches).to_csv(path, index=False)
    return batches, path


def test_simulated_csv_has_the_challenge_header(tmp_path):
    _, path = _simulated(tmp_path)
    assert path.read_text().splitlines()[0] == ",freq,Z,Circuit,Parameters"


def test_simulator_to_csv_to_parser_round_trip_is_exact(tmp_path):
    batches, path = _simulated(tmp_path)
    spectra, rejections = formats.read_challenge_csv(path, "rad_s", labelled=True)
    assert rejections == []
    expected = [(b, i) for b in batches for i in range(len(b.n_points))]
    assert len(spectra) == len(expected)
    for spectrum, (batch, i) in zip(spectra, expected):
        n = batch.n_points[i]
        assert spectrum.circuit == batch.circuit.name
        np.testing.assert_array_equal(spectrum.omega_rad_s, batch.omega[i, :n])
        np.testing.assert_array_equal(spectrum.impedance_ohm, batch.impedance[i, :n])
        assert spectrum.parameters == {k: float(v[i]) for k, v in batch.parameters.items()}


def test_simulated_spectra_follow_the_documented_ranges():
    settings = SimulationSettings(spectra_per_class=40)
    for batch in simulate_all(settings, np.random.default_rng(5)):
        assert batch.n_points.min() >= 24 and batch.n_points.max() <= 83
        assert np.all((batch.omega[:, 0] >= 0.01) & (batch.omega[:, 0] <= 10))
        top = batch.omega[np.arange(len(batch.n_points)), batch.n_points - 1]
        assert np.all((top >= 1e5) & (top <= 2e6))


def test_padded_numpy_style_lists_and_hz_unit_are_read():
    row = pd.Series({"freq": GOOD_FREQ, "Z": GOOD_Z, "Circuit": "RCPE-RCPE", "Parameters": GOOD_PARAMS})
    spectrum = formats.parse_challenge_row(row, "x.csv", 0, "hz", labelled=True)
    np.testing.assert_allclose(spectrum.omega_rad_s, 2 * np.pi * np.array([0.1, 0.148, 0.22, 1e5]))
    assert spectrum.impedance_ohm[1] == 1.88 - 0.02j
    assert list(spectrum.parameters) == list(CIRCUITS["RCPE-RCPE"].parameters)


BAD_ROWS = {
    "unparseable": ("[1.0, abc, 3.0, 4.0]", GOOD_Z, "RCPE-RCPE", GOOD_PARAMS, "unparseable number"),
    "length": ("[1.0, 2.0, 3.0]", GOOD_Z, "RCPE-RCPE", GOOD_PARAMS, "freq has 3 values but Z has 4"),
    "non_positive": ("[0.0, 2.0, 3.0, 4.0]", GOOD_Z, "RCPE-RCPE", GOOD_PARAMS, "non-positive frequency"),
    "non_monotonic": ("[1.0, 3.0, 2.0, 4.0]", GOOD_Z, "RCPE-RCPE", GOOD_PARAMS, "not strictly monotonic"),
    "nan": (GOOD_FREQ, "[1+1j, nan+0j, 1-1j, 2-2j]", "RCPE-RCPE", GOOD_PARAMS, "NaN or inf"),
    "unknown_circuit": (GOOD_FREQ, GOOD_Z, "R-RC-W", GOOD_PARAMS, "unknown class 'R-RC-W'"),
    "malformed_params": (GOOD_FREQ, GOOD_Z, "RCPE-RCPE", "R1 = 1.0, R2: 2", "expected 'name: number'"),
    "wrong_params": (GOOD_FREQ, GOOD_Z, "Rs_Ws", GOOD_PARAMS, "Rs_Ws expects R1, W1_R, W1_T, W1_p"),
}


def test_each_bad_row_is_rejected_with_its_reason_and_good_rows_survive(tmp_path):
    rows = [(GOOD_FREQ, GOOD_Z, "RCPE-RCPE", GOOD_PARAMS)] + [r[:4] for r in BAD_ROWS.values()]
    rows.append(("[1.0e+05, 2.2e-01, 1.48e-01, 1.0e-01]", GOOD_Z, "RCPE-RCPE", GOOD_PARAMS))  # descending is fine
    path = tmp_path / "mixed.csv"
    pd.DataFrame(rows, columns=formats.CHALLENGE_COLUMNS).to_csv(path)
    spectra, rejections = formats.read_challenge_csv(path, "rad_s", labelled=True)
    assert [s.row for s in spectra] == [0, len(rows) - 1]
    assert [r.row for r in rejections] == list(range(1, len(BAD_ROWS) + 1))
    for rejection, (kind, bad) in zip(rejections, BAD_ROWS.items()):
        assert rejection.source == str(path)
        assert bad[4] in rejection.reason, kind


def test_a_file_without_the_label_columns_is_rejected_whole(tmp_path):
    path = tmp_path / "unlabelled_in_the_wrong_place.csv"
    pd.DataFrame({"freq": [GOOD_FREQ], "Z": [GOOD_Z]}).to_csv(path)
    spectra, rejections = formats.read_challenge_csv(path, "rad_s", labelled=True)
    assert spectra == [] and rejections[0].row is None and "missing columns" in rejections[0].reason


def _zplot_text(freq_hz, z):
    header = ["ZPlot2 ASCII", "Comments: fixture written for this test", "End Comments"]
    rows = [f"{f:.6e}\t1.000e-02\t0.000e+00\t{t:.1f}\t{v.real:.9e}\t{v.imag:.9e}\t0\t0\t2" for t, (f, v) in enumerate(zip(freq_hz, z))]
    return "\n".join(header + rows) + "\n"


def _gamry_text(freq_hz, z):
    header = ["EXPLAIN", "TAG\tEISPOT", "ZCURVE\tTABLE", "\tPt\tTime\tFreq\tZreal\tZimag\tZsig\tZmod\tZphz", "\t#\ts\tHz\tohm\tohm\tV\tohm\t°"]
    rows = [f"\t{i}\t{i}\t{f:.6e}\t{v.real:.9e}\t{v.imag:.9e}\t1\t{abs(v):.6e}\t0" for i, (f, v) in enumerate(zip(freq_hz, z))]
    return "\n".join(header + rows) + "\n"


@pytest.mark.parametrize(("name", "writer"), [("cell.z", _zplot_text), ("cell.DTA", _gamry_text)])
def test_instrument_files_are_read_in_hz_and_converted(tmp_path, name, writer):
    freq_hz = np.logspace(5, -1, 25)  # instruments sweep downwards
    z = CIRCUITS["RCPE-RCPE"].impedance(
        {"R1": 0.5, "R2": 1.0, "CPE1_t": 0.9, "CPE1_C": 1e-4, "CPE2_t": 0.7, "CPE2_C": 1e-2}, 2 * np.pi * freq_hz
    )
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    (folder / name).write_text(writer(freq_hz, z), encoding="ISO-8859-1")
    (folder / "notes.docx").write_text("not a spectrum")
    spectra, rejections = formats.read_unlabelled_folder(folder, "rad_s")
    assert [r.reason for r in rejections] == ["unknown file type; expected .csv or an instrument file"]
    (spectrum,) = spectra
    np.testing.assert_allclose(spectrum.omega_rad_s, 2 * np.pi * freq_hz[::-1], rtol=1e-6)
    np.testing.assert_allclose(spectrum.impedance_ohm, z[::-1], rtol=1e-8)


def test_a_broken_instrument_file_is_rejected_not_raised(tmp_path):
    path = tmp_path / "broken.z"
    path.write_text("End Comments\nnot\tnumbers\n")
    spectra, rejections = formats.read_instrument_file(path, "zplot")
    assert spectra == [] and "unreadable as zplot file" in rejections[0].reason
