"""Readers on files written by hand in the styles other tools write (not by our own writer)."""

import math

import numpy as np
import pytest

from assets.eis import formats
from assets.eis.circuits import CIRCUITS

# Two rows in the exact style of the public challenge file (numpy-padded complex numbers: a space
# before the sign of the imaginary part, two where the imaginary part is short, a trailing space
# before the comma, exponents in the real part); values made up for this test.
CHALLENGE_TEXT = (
    ",freq,Z,Circuit,Parameters\n"
    '7,"[1.00000000e-01, 1.00000000e+00, 1.00000000e+01, 1.00000000e+02, 1.00000000e+03]",'
    '"[3.21000000e+02-101.5j , 2.40500000e+02 -98.25j , 6.10000000e+01  -9.5j , 5.25000000e+00  -0.75j , '
    '1.5 -0.0625j]",RCPE-RCPE,"R1: 2.00e+00, R2: 3.00e+02, CPE1_t: 8.00e-01, CPE1_C: 1.00e-05, '
    'CPE2_t: 1.01e+00, CPE2_C: 2.00e-03"\n'
    '8,"[1.00000000e-02, 3.16227766e-01, 1.00000000e+01]","[7.40438451-0.00054149j, 7.4008021 -0.04249638j, '
    '7.3539363 -0.16837545j]",Rs_Ws,"R1: 1.00e+00, W1_R: 6.40e+00, W1_T: 2.00e-01, W1_p: 3.25e+00"\n'
)


def test_challenge_rows_in_the_padded_numpy_style_parse_exactly(tmp_path):
    path = tmp_path / "challenge.csv"
    path.write_text(CHALLENGE_TEXT)
    spectra, rejections = formats.read_challenge_csv(path, formats.CHALLENGE, labelled=True)
    assert rejections == []
    first, second = spectra
    assert [s.row for s in spectra] == [0, 1]
    np.testing.assert_array_equal(first.omega_rad_s, [0.1, 1.0, 10.0, 100.0, 1000.0])  # rad/s: no 2 pi
    np.testing.assert_array_equal(first.impedance_ohm, [321 - 101.5j, 240.5 - 98.25j, 61 - 9.5j, 5.25 - 0.75j, 1.5 - 0.0625j])
    assert first.parameters["CPE2_t"] == 1.01  # CPE exponents slightly above 1 occur and are kept
    np.testing.assert_array_equal(second.impedance_ohm, [7.40438451 - 0.00054149j, 7.4008021 - 0.04249638j, 7.3539363 - 0.16837545j])
    assert second.parameters["W1_p"] == pytest.approx(0.5)  # stored W1_p = exponent x 6.5


def test_warburg_scale_is_a_per_source_setting():
    text = "R1: 1.0, W1_R: 2.0, W1_T: 0.1, W1_p: 3.25"
    assert formats.parse_parameters(text, "Rs_Ws", 6.5)["W1_p"] == pytest.approx(0.5)
    assert formats.parse_parameters(text, "Rs_Ws", 1.0)["W1_p"] == 3.25


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1.89-0.0143j, 1.88-0.02j ]", [1.89 - 0.0143j, 1.88 - 0.02j]),
        ("[7.65359341e+00  -9.17912415j, 1.2+-0.3j]", [7.65359341 - 9.17912415j, 1.2 - 0.3j]),
        ("[1.5e+02 -2.5e-03j 2.0 +1.0j 3.-4.j]", [150 - 0.0025j, 2 + 1j, 3 - 4j]),  # numpy str(): no commas
        ("[(1+2j), (3-4j)]", [1 + 2j, 3 - 4j]),
    ],
)
def test_complex_lists_in_the_spellings_other_tools_write(text, expected):
    np.testing.assert_array_equal(formats.parse_complex_list(text), expected)


def _spectrum():
    omega = np.logspace(-1, 5, 12) * 2 * math.pi
    return omega, CIRCUITS["RCPE-RCPE"].impedance(
        {"R1": 10.0, "CPE1_t": 0.85, "CPE1_C": 1e-4, "R2": 50.0, "CPE2_t": 0.7, "CPE2_C": 1e-2}, omega)


# (file name, text) of potentiostat-style exports, written by hand: header spellings and units vary.
def _fixtures(omega, z):
    hz = omega / (2 * math.pi)
    phase = np.degrees(np.angle(z))
    return {
        "ec_lab.csv": "Frequency (Hz),Z' (Ohm),-Z'' (Ohm)\n" + "".join(f"{f:.6e},{v.real:.9e},{-v.imag:.9e}\n" for f, v in zip(hz, z)),
        "biologic_export.txt": "freq/Hz\tRe(Z)/Ohm\t-Im(Z)/Ohm\t|Z|/Ohm\tPhase(Z)/deg\n"
        + "".join(f"{f:.6e}\t{v.real:.9e}\t{-v.imag:.9e}\t{abs(v):.6e}\t{p:.4f}\n" for f, v, p in zip(hz, z, phase)),
        "gamry_like.tsv": "Pt\tFreq\tZreal\tZimag\tZmod\n" + "".join(f"{i}\t{f:.6e}\t{v.real:.9e}\t{v.imag:.9e}\t{abs(v):.5e}\n" for i, (f, v) in enumerate(zip(hz, z))),
        "khz_kohm.csv": "Freq [kHz];Z' [kOhm];-Z'' [kOhm]\n" + "".join(f"{f / 1e3:.9e};{v.real / 1e3:.12e};{-v.imag / 1e3:.12e}\n" for f, v in zip(hz, z)),
        "rad_s_mohm.csv": "omega (rad/s),Zre (mOhm),Zim (mOhm)\n" + "".join(f"{o:.9e},{v.real * 1e3:.9e},{v.imag * 1e3:.9e}\n" for o, v in zip(omega, z)),
        "modulus_phase.csv": "# exported by a potentiostat\nFrequency / Hz,|Z| / Ohm,Phase / deg\n"
        + "".join(f"{f:.6e},{abs(v):.12e},{p:.12f}\n" for f, v, p in zip(hz, z, phase)),
        "zview_unicode.csv": "Freq (Hz),Z\u2032 (\u03a9),\u2212Z\u2033 (\u03a9)\n" + "".join(f"{f:.6e},{v.real:.9e},{-v.imag:.9e}\n" for f, v in zip(hz, z)),
    }


@pytest.mark.parametrize("name", list(_fixtures(*_spectrum())))
def test_generic_impedance_tables_are_read_in_their_header_units(tmp_path, name):
    omega, z = _spectrum()
    path = tmp_path / name
    path.write_text(_fixtures(omega, z)[name], encoding="utf-8")
    spectra, rejections = formats.read_impedance_table(path)
    assert rejections == []
    (spectrum,) = spectra
    assert spectrum.source == str(path) and spectrum.row is None
    np.testing.assert_allclose(spectrum.omega_rad_s, omega, rtol=1e-6)
    np.testing.assert_allclose(spectrum.impedance_ohm, z, rtol=1e-6, atol=1e-9)


def test_a_spectrum_id_column_gives_one_spectrum_per_id_with_its_first_row(tmp_path):
    omega, z = _spectrum()
    lines = ["spectrum_id,Frequency (Hz),Z' (Ohm),Z'' (Ohm)"]
    for cell, scale in (("cellA", 1.0), ("cellB", 3.0)):
        lines += [f"{cell},{o / (2 * math.pi):.9e},{v.real * scale:.12e},{v.imag * scale:.12e}" for o, v in zip(omega, z)]
    path = tmp_path / "two_cells.csv"
    path.write_text("\n".join(lines) + "\n")
    spectra, rejections = formats.read_impedance_table(path)
    assert rejections == [] and [s.row for s in spectra] == [0, len(omega)]
    np.testing.assert_allclose(spectra[1].impedance_ohm, 3 * z, rtol=1e-9)


def test_frequency_without_a_unit_follows_the_source_convention(tmp_path):
    omega, z = _spectrum()
    path = tmp_path / "bare.csv"
    path.write_text("Frequency,Zreal,Zimag\n" + "".join(f"{o:.12e},{v.real:.12e},{v.imag:.12e}\n" for o, v in zip(omega, z)))
    (hz,), _ = formats.read_impedance_table(path)  # default: Hz
    np.testing.assert_allclose(hz.omega_rad_s, 2 * math.pi * omega)
    (rad,), _ = formats.read_impedance_table(path, formats.SourceConventions(table_freq_unit="rad_s"))
    np.testing.assert_allclose(rad.omega_rad_s, omega)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Frequency (Hz),Z' (Ohm),Zreal,Z'' (Ohm)", "ambiguous header: 2 real columns"),
        ("Frequency (Hz),Time (s),Current (A)", "expected a frequency column and real + imaginary"),
        ("Frequency (Hz),Z' (furlong),Z'' (Ohm)", "unknown unit 'furlong'"),
    ],
)
def test_an_ambiguous_or_incomplete_header_is_a_clear_error_naming_the_columns(tmp_path, header, message):
    path = tmp_path / "export.csv"
    path.write_text(header + "\n1,2,3,4\n")
    spectra, (rejection,) = formats.read_impedance_table(path)
    assert spectra == [] and rejection.row is None and rejection.source == str(path)
    assert message in rejection.reason and "columns seen: [" in rejection.reason and "Frequency (Hz)" in rejection.reason


def test_a_bad_cell_rejects_its_spectrum_naming_row_and_column(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("Frequency (Hz),Z' (Ohm),-Z'' (Ohm)\n10,1,1\n1,n/a,2\n")
    spectra, (rejection,) = formats.read_impedance_table(path)
    assert spectra == [] and "row 1: column \"Z' (Ohm)\" is 'n/a'; expected a number" in rejection.reason


def test_generic_tables_dropped_beside_labelled_files_are_predicted_not_rejected(tmp_path):
    omega, z = _spectrum()
    raw = tmp_path / "raw" / "eis"
    raw.mkdir(parents=True)
    (raw / "challenge.csv").write_text(CHALLENGE_TEXT)
    (raw / "potentiostat.csv").write_text(_fixtures(omega, z)["ec_lab.csv"])
    labelled, refused = formats.read_labelled_folder(raw, raw / "unlabelled", formats.CHALLENGE)
    assert refused == [] and len(labelled) == 2
    unlabelled, refused = formats.read_unlabelled_folder(raw / "unlabelled", formats.CHALLENGE, labelled_root=raw)
    assert refused == [] and [s.source for s in unlabelled] == [str(raw / "potentiostat.csv")]
