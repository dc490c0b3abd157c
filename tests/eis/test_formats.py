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
        assert spectrum.parameters == pytest.approx({k: float(v[i]) for k, v in batch.parameters.items()}, rel=1e-15)


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


def _biologic_text(freq_hz, z):
    # EC-Lab .mpt: line 2 gives the header length N, line N holds the tab-separated column
    # names (matched exactly, trailing tab as EC-Lab writes it); the file stores -Im(Z).
    columns = "freq/Hz\tRe(Z)/Ohm\t-Im(Z)/Ohm\t|Z|/Ohm\tPhase(Z)/deg\ttime/s\tCs/µF\tcycle number\t"
    header = ["EC-Lab ASCII FILE", "Nb header lines : 6", "", "Potentio Electrochemical Impedance Spectroscopy", "", columns]
    rows = [
        f"{f:.7E}\t{v.real:.9E}\t{-v.imag:.9E}\t{abs(v):.7E}\t{np.angle(v, deg=True):.7E}\t{i:.3f}\t0\t1.0"
        for i, (f, v) in enumerate(zip(freq_hz, z))
    ]
    return "\n".join(header + rows) + "\n"


def _versastudio_text(freq_hz, z):
    # VersaStudio .par: readVersaStudio numbers segments from the `Segments=` lines in file
    # order and reads segment 1, so Action0's `Segments=0` must come first; data starts four
    # lines after <Segment1> (Type, Version, Definition) with Frequency, Z Real, Z Imag in
    # comma columns 9, 14, 15 (Z Imag is Im(Z) itself).
    definition = (
        "Definition=Segment #, Point #, E(V), I(A), Elapsed Time(s), ADC Sync Input(V), Current Range, Status, "
        "E Applied(V), Frequency(Hz), E Real, E Imag, I Real, I Imag, Z Real, Z Imag, ActionId, AC Amplitude, 0"
    )
    header = ["<Application>", "Name=VersaStudio", "</Application>", "", "<Action0>", "Segments=0", "Name=Common"]
    header += ["</Action0>", "", "<Action1>", "Start Frequency (Hz)=100000", "End Frequency (Hz)=0.1", "Segments=1"]
    header += ["Name=Potentiostatic EIS", "</Action1>", "", "<Segment1>", "Type=2", "Version=3", definition]
    rows = [
        f"0,{i},0,-3.2E-06,{i:.3f},0,5,53,0,{f:.7g},0,0,0,0,{v.real:.9e},{v.imag:.9e},21,0.02"
        for i, (f, v) in enumerate(zip(freq_hz, z))
    ]
    footer = ["</Segment1>", "", "<Graph1>", "XAxisName=Frequency (Hz)", "</Graph1>"]
    return "\n".join(header + rows + footer) + "\n"


def _autolab_text(freq_hz, z):
    # readAutolab: the last line containing 'Freq' is the header; comma rows with frequency
    # in column 0 and Z', Z'' (Im(Z) itself) in columns 4, 5 (the ZView-style text export).
    header = ['"Z60W Data File: Version 1.1"', '""', "0,2,0,1,0.1,100000", str(len(freq_hz))]
    header.append('"  Freq (Hz)    Ampl     Bias   Time(Sec)   Z\'(a)    Z\'\'(b)    GD   Err   Range"')
    rows = [f"{f:.7g},0,0,{i},{v.real:.9e},{v.imag:.9e},0,0,0" for i, (f, v) in enumerate(zip(freq_hz, z))]
    return "\n".join(header + rows) + "\n"


def _parstat_text(freq_hz, z):
    # readParstat: one header line, whitespace-split rows with Frequency, Zre, Zim in columns
    # 3, 4, 5; rows at 0 Hz (the DC rest before the sweep) are dropped by the parser.
    columns = ["Potential (V)", "Current (A)", "Elapsed Time (s)", "Frequency (Hz)", "Zre (ohms)", "Zim (ohms)"]
    header = ["\t".join(columns + ["|Vac| (V)", "|Iac| (A)", ""])]
    rest = [f"0.35{t}\t-1.5E-06\t{t * 10}\t0\t0\t0\t0\t0\t" for t in range(1, 4)]
    rows = [
        f"0.35\t-1.5E-06\t{40 + i}\t{f:.7g}\t{v.real:.9e}\t{v.imag:.9e}\t0.01\t0.001\t"
        for i, (f, v) in enumerate(zip(freq_hz, z))
    ]
    return "\n".join(header + rest + rows) + "\n"


def _chinstruments_text(freq_hz, z):
    # readCHInstruments: data start two lines below the line starting 'Freq/Hz' (CHI leaves
    # a blank line); ', '-separated Freq, Z' and Z'' (Im(Z) itself, negative when capacitive).
    header = ["Jan. 1, 2024   12:00:00", "A.C. Impedance", "Instrument Model:  CHI660E", "", "Init E (V) = 0"]
    header += ["High Frequency (Hz) = 1e+5", "Low Frequency (Hz) = 0.1", "", "Freq/Hz, Z'/ohm, Z\"/ohm, Z/ohm, Phase/deg", ""]
    rows = [f"{f:.7g}, {v.real:.9e}, {v.imag:.9e}, {abs(v):.4e}, {np.angle(v, deg=True):.1f}" for f, v in zip(freq_hz, z)]
    return "\n".join(header + rows) + "\n"


def _powersuite_text(freq_hz, z):
    # readPowerSuite: one header line, then exactly three tab-separated fields per row
    # (Frequency, Zre, Zimg = Im(Z)); PowerSuite sweeps upwards.
    rows = [f"{f:.8g}\t {v.real:.9e}\t {v.imag:.9e}" for f, v in zip(freq_hz[::-1], z[::-1])]
    return "\n".join(["Frequency\t Zre\t Zimg"] + rows) + "\n"


UNKNOWN_TYPE = "unknown file type; expected .csv/.tsv/.txt impedance tables or an instrument file"

# (relative path under the unlabelled folder, instrument it must route to, fixture writer);
# the .txt formats are told apart only by their folder (matched case-insensitively).
INSTRUMENT_CASES = [
    ("cell.z", "zplot", _zplot_text),
    ("cell.DTA", "gamry", _gamry_text),
    ("cell.mpt", "biologic", _biologic_text),
    ("cell.par", "versastudio", _versastudio_text),
    ("autolab/cell.txt", "autolab", _autolab_text),
    ("parstat/cell.txt", "parstat", _parstat_text),
    ("CHInstruments/cell.txt", "chinstruments", _chinstruments_text),
    ("powersuite/cell.txt", "powersuite", _powersuite_text),
    ("Autolab/2026-11-23/cell.txt", "autolab", _autolab_text),  # dated subfolders inside an instrument folder
]
SHARED_SUFFIX_WRITERS = {instrument: writer for name, instrument, writer in INSTRUMENT_CASES if "/" in name}


def _instrument_spectrum():
    """An instrument-like sweep (Hz, downwards) whose Z has both signs of Im(Z)."""
    freq_hz = np.logspace(5, -1, 25)
    params = {"L1": 1e-6, "R1": 0.5, "R2": 1.0, "CPE1_t": 0.9, "CPE1_C": 1e-4}
    z = CIRCUITS["L-R-RCPE-RCPE"].impedance(params | {"R3": 2.0, "CPE2_t": 0.7, "CPE2_C": 1e-2}, 2 * np.pi * freq_hz)
    assert (z.imag > 0).any() and (z.imag < 0).any()  # inductive and capacitive points: a sign flip cannot pass
    return freq_hz, z


@pytest.mark.parametrize(("name", "instrument", "writer"), INSTRUMENT_CASES, ids=[case[0] for case in INSTRUMENT_CASES])
def test_instrument_files_are_read_in_hz_and_converted(tmp_path, name, instrument, writer):
    freq_hz, z = _instrument_spectrum()
    folder = tmp_path / "unlabelled"
    path = folder / name
    path.parent.mkdir(parents=True)
    path.write_text(writer(freq_hz, z), encoding="ISO-8859-1")
    (folder / "notes.docx").write_text("not a spectrum")
    assert formats.instrument_for(path, folder) == instrument
    spectra, rejections = formats.read_unlabelled_folder(folder, "rad_s")
    assert [r.reason for r in rejections] == [UNKNOWN_TYPE]
    (spectrum,) = spectra
    assert spectrum.source == str(path)
    np.testing.assert_allclose(spectrum.omega_rad_s, 2 * np.pi * freq_hz[::-1], rtol=1e-6)
    np.testing.assert_allclose(spectrum.impedance_ohm, z[::-1], rtol=1e-8)


@pytest.mark.parametrize("writer", SHARED_SUFFIX_WRITERS.values(), ids=SHARED_SUFFIX_WRITERS.keys())
def test_a_shared_suffix_instrument_file_outside_its_folder_is_read_right_or_rejected_never_misread(tmp_path, writer):
    # No instrument folder says which reader: the generic table reader tries it. It must give the
    # right spectrum (PowerSuite's plain 'Frequency, Zre, Zimg' table) or a rejection naming the file.
    path = tmp_path / "unlabelled" / "cell.txt"
    path.parent.mkdir()
    freq_hz, z = _instrument_spectrum()
    path.write_text(writer(freq_hz, z))
    assert formats.instrument_for(path) is None
    spectra, rejections = formats.read_unlabelled_folder(path.parent, "rad_s")
    assert len(spectra) + len(rejections) == 1
    for spectrum in spectra:
        np.testing.assert_allclose(spectrum.omega_rad_s, 2 * np.pi * freq_hz[::-1], rtol=1e-6)
        np.testing.assert_allclose(spectrum.impedance_ohm, z[::-1], rtol=1e-8)
    assert all(r.source == str(path) and r.row is None for r in rejections)
    if writer is SHARED_SUFFIX_WRITERS["powersuite"]:
        assert len(spectra) == 1


def test_a_broken_instrument_file_is_rejected_not_raised(tmp_path):
    path = tmp_path / "broken.z"
    path.write_text("End Comments\nnot\tnumbers\n")
    spectra, rejections = formats.read_instrument_file(path, "zplot")
    assert spectra == [] and "unreadable as zplot file" in rejections[0].reason
