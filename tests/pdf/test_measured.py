"""Reading .gr files as PDFgetX2, PDFgetX3, PDFgetN and PDFgui write them; resampling; the top-k table.

The headers below are written by hand in each tool's style (key spellings, spacing, the
numeric tables inside PDFgetN / PDFgetX2 histories, the `#### start data` / `##### start
data` markers, the `#L` column lines); the data rows come from a known G(r), so the test
knows what the reader must recover. Nothing here goes through our own writer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from assets.pdf import measured
from assets.pdf.calculator import MODEL_GRID_A, PdfSettings, compute_pdfs, normalise_profiles


def known_pdf(r):
    """A G(r)-like curve: damped oscillation on a -4 pi rho0 r baseline (values of order 1)."""
    return np.sin(2.5 * r) * np.exp(-0.03 * r) * 3 - 0.2 * r * np.exp(-r)


PDFGETX3_HEADER = """[DEFAULT]

version = diffpy.pdfgetx-2.1.2

# input and output specifications
dataformat = twotheta
inputfile = NaCl_300K.chi
backgroundfile = kapton_300K.chi
outputtype = gr

# PDF calculation setup
mode = xray
wavelength = 0.1839
twothetazero = 0
composition = NaCl
bgscale = 0.98
rpoly = 0.9
qmaxinst = 26.0
qmin = 0.6
qmax = 24.5
rmin = 0
rmax = 30
rstep = 0.01

# End of config --------------------------------------------------------------

#### start data
#S 1
#L r(\u00c5)  G(\u00c5$^{-2}$)
"""

# PDFgetX2 history: several key=value pairs to a line, numeric table rows inside the header.
PDFGETX2_HEADER = """History written: Tue Mar 20 16:25:44 2007
produced by xpdfuser
##### PDFgetX2 - Version 1.0 build 20060927
##### Run Information
title=PDF analysis
datadir=/home/xpdfuser/data/Ni     datafile=Ni_300K.chi
bkgdir=/home/xpdfuser/data/Ni     bkgfile=kapton.chi
##### Experimental Setup
lambda=0.1078     polarization=0.95     2thetaMin=0.5     2thetaMax=40.0
##### Sample Composition
numElements=1
Ni 1.0000 58.6934 28.0000 0.0000 0.0000
##### Corrections
 1   0.0000   1.0000
 2   0.5000   0.9800
 3   1.0000   0.9500
##### Fourier Transform
numRpoints=3001     maxR=30.0     numDensity=0.0914     Qmin=0.80     Qmax=26.00
sofqDamping=0     fourierFilter=none
#### start data
#S 1 - PDF from PDFgetX2
#P0  -0.21429   0.77551   0.00000   0.00000   0.00000   0.00000   0.00000
#L r G(r) dr dG(r)
"""

# PDFgetN history (Hist.pm layout): bank table of numbers, element table, Ft and Damp key lines.
PDFGETN_HEADER = """History written: Thu Jan 12 14:03:11 2006
produced by npdfuser
##### Run Information     runCorrection=T
prep=sepd     machine=NPDF
run=npdf_01234     background=npdf_01230
smooth=0    smoothParam=0.1 0.1 0.1    backKillThresh=-1.0
in beam: radius=0.3175     height=5.0
temp=300.0     runTitle=MnO powder 300K

##### Vanadium     runCorrection=T
run=npdf_01220     background=npdf_01230
in beam: radius=0.4500     height=5.0

##### Sample     runCorrection=T     numElements=2     NormLaue=0.16
Element  NumOf  Mass  CoherCS  IncoherCS  AbsorpCS
Mn  1.0000  54.9380  1.7500  0.4000  13.3000
O  1.0000  15.9990  4.2320  0.0008  0.0002
density=5.37     effDensity=3.10

##### Banks=4     deltaQ=0.02     matchRef=0     matchScal=T     matchOffset=T
bank  angle  Qmin  Qmax
1  46.0  0.50  12.00
2  90.0  0.80  22.00
3  119.0  1.00  30.00
4  148.0  1.20  35.00

##### Program-specific Information
## Ft     calcError=1
numRpoints=3001     maxR=30.0     numDensity=0.0877     intMaxR=1.5
## Damp     Qmin=0.50     Qmax=35.00     startDampQ=35.00     QAveMin=0.60
dampFuncType=0     modEqn=1.0000*S(Q)+0.0000+0.0000*Q
## Blend     numBanks=3     banks=2,3,4
## Soqd     minProcOut=0
samPlazcek=T     vanPlazcek=T     smoothData=0     modifyData=0
#### start data
#S 1 - PDF from PDFgetN
#P0  -13.48722     5.99018     0.50000     0.02000     0.00000     0.00000     0.00000
#L r G(r) dr dG(r)
"""

# PDFgui "export data": five-hash marker, stype and qmax lines.
PDFGUI_HEADER = """History written: Mon Nov 30 10:00:00 2026
produced by pdfguiuser
##### PDFgui
stype=X  x-ray scattering
qmax=25.00
qdamp=0.04
qbroad=0
dscale=1
##### start data
#L r(A) G(r) d_r d_Gr
"""


# xPDFsuite configuration block (key = value), a blank line, `#### start data`, `#L r($\AA$)  G($\AA^{-2}$)`,
# and data rows printed with %g (r from 0, `0 0` first).
XPDFSUITE_HEADER = """# xPDFsuite Configuration #
[PDF]
wavelength = 0.7093
dataformat = Qnm
inputfile = sample_rt.chi
backgroundfile = kapton_background.chi
mode = xray
bgscale = 1.0
composition = Zr H2 P2 O8 H2 O
outputtype = gr
qmaxinst = 25.0
qmin = 0.49995
qmax = 18.0
rmax = 100.0
rmin = 0.0
rstep = 0.01
rpoly = 0.9

#### start data
#S 1
#L r($\\AA$)  G($\\AA^{-2}$)
"""

# PDFgetX2 (Get_XPDF) history: a detector table whose value row is 15 numbers, long before the data, and a
# sample table `#L symbol valence fractions z ...` whose amounts are in the third column.
PDFGETX2_XPDF_HEADER = """History written:        Wed Jul 30 00:37:52 2003
Produced by me
####### Get_XPDF #######
##### General_Setting
title=RAPDF
sourcedir=C:\\Program Files\\PDFgetX2\\
quiet=0    debug=0    autosave_isa=1    savefilenamebase=Ag_qspace
##### DataFileFormat
datatype=2    (0:SPEC, 1:CHI, 2:nxm column, 3:unknown)
num_skiplines=32    comment_id=#    delimiter=
##### Data&Background
samfile=Ag_qspace.chi    num_sams=1
det#  used  xcol detcol deterrcol xmin  xmax  add_det  mul_det   add_bkg  mul_bkg  add_con  mul_con  add_conbkg   mul_conbkg
  0    1    0    1    2    0.700000    36.0000    0.000000    6.00000    0.000000    1.50000    0.000000    1.00000    0.000000    1.00000
##### Experiment_Setup
title=PDF analysis
temperature=300.000    containermut=0.0200000    filtermut=0.0200000
## X-Ray   radiationtype=3
           (0: Ag K_alpha, 1:Cu K_alpha, 2:Mo K_alpha, 3:Customize)
lambda=0.126514    energy=98.0010    polartype=0    polardegree=1.00000
##### Sample_Setup information    num_atoms=2
#L symbol valence fractions z user_f1 user_f2 user_macoef
  Cu    0.00   1.000000    29   0.000000   0.000000   0.000000
  Ir    0.00   2.000000    77   0.000000   0.000000   0.001000
geometry=2    mut=1.1059000    numberdensity=0.0400000
##### SqGr_Optimization Setup
## S(q)  qmin=1.000000    qmax=30.000000    qgrid=0.000000
## G(r)  rmin=0.000000    rmax=35.000000    rgrid=0.104720
##### start data
#F Ag_qspace.gr
#D Sat Feb 21 19:07:17 2015
#C
#S 1    G(r)
#D
#L r(A)    G(r)    d_r    d_Gr
"""

# PDFgetN output with a short header: `# Npoints`, the count, then the marker, #O0 and #P0 lines; ends at 20 A.
PDFGETN_SHORT_HEADER = """# Npoints
#         2001
##### start data
#O0 rg_int sig_rg_int low_int sig_low_int rmax rhofit
#S 1 - PDF from PDFgetN
#P0    3.87291    0.30411    0.59852    0.00944    1.50  0.0783
#L r G(r) dr dG(r)
"""


def xpdfsuite_rows(r):
    return "".join(f"{x:g} {known_pdf(x):g}\n" for x in r)


def windows_e(value: float) -> str:
    """%e with the three-digit exponent PDFgetX2 (a Windows build) writes: 1.047198e-001."""
    mantissa, exponent = f"{value:.6e}".split("e")
    return f"{mantissa}e{exponent[0]}{int(exponent[1:]):03d}"


def x2_exponent_rows(r):  # PDFgetX2's %e columns with a two-space indent
    return "".join(f"  {windows_e(x)}   {windows_e(known_pdf(x))}   {windows_e(-0.05)}    {windows_e(0.27)}\n"
                   for x in r)


def n_short_rows(r):
    return "".join(f"{x:7.3f}{known_pdf(x):11.3f}{0.0:6.1f}{0.0171:11.4f}\n" for x in r)


def x3_rows(r):
    return "".join(f"{x:g} {known_pdf(x):.6g}\n" for x in r)


def x2_rows(r):  # right-aligned fixed columns with uncertainties
    return "".join(f"{x:12.6f}{known_pdf(x):12.6f}{0.0:12.6f}{0.012:12.6f}\n" for x in r)


def pdfgui_rows(r):
    return "".join(f"{x:g} {known_pdf(x):g} 0 0.0123\n" for x in r)


STYLES = {
    # name: (header, rows, r grid, facts the header states)
    "PDFgetX3": (PDFGETX3_HEADER, x3_rows, np.round(np.arange(0, 3001) * 0.01, 2),
                 {"wavelength_A": 0.1839, "qmax_inv_A": 24.5, "composition": "NaCl", "radiation": "xray",
                  "tool": "PDFgetX3"}),
    "PDFgetX2": (PDFGETX2_HEADER, x2_rows, np.arange(1, 3002) * 0.01,
                 {"wavelength_A": 0.1078, "qmax_inv_A": 26.0, "composition": "Ni", "radiation": "xray",
                  "tool": "PDFgetX2"}),
    "PDFgetN": (PDFGETN_HEADER, x2_rows, np.arange(1, 1601) * 0.02,
                {"wavelength_A": None, "qmax_inv_A": 35.0, "composition": "MnO", "radiation": "neutron",
                 "tool": "PDFgetN"}),
    "PDFgui": (PDFGUI_HEADER, pdfgui_rows, np.round(np.arange(1.5, 30.0001, 0.05), 2),
               {"wavelength_A": None, "qmax_inv_A": 25.0, "composition": None, "radiation": "xray",
                "tool": "PDFgui"}),
    "xPDFsuite": (XPDFSUITE_HEADER, xpdfsuite_rows, np.round(np.arange(0, 10001) * 0.01, 2),
                  {"wavelength_A": 0.7093, "qmax_inv_A": 18.0, "composition": "Zr H2 P2 O8 H2 O",
                   "radiation": "xray", "tool": "xPDFsuite"}),
    "PDFgetX2-xpdf": (PDFGETX2_XPDF_HEADER, x2_exponent_rows, np.array([float(f"{x:.6e}") for x in
                                                                        np.arange(1, 335) * np.pi / 30]),
                      {"wavelength_A": 0.126514, "qmax_inv_A": 30.0, "composition": "CuIr2", "radiation": "xray",
                       "tool": "PDFgetX2"}),
}


@pytest.mark.parametrize("style", sorted(STYLES))
def test_each_tools_header_is_skipped_and_its_facts_read(tmp_path, style):
    header, rows, r, facts = STYLES[style]
    path = tmp_path / f"{style}.gr"
    path.write_text(header + rows(r), encoding="utf-8")
    gr = measured.read_gr_file(path)
    assert gr.data_start_row == header.count("\n") + 1
    np.testing.assert_allclose(gr.r_A, r, atol=1e-6)
    np.testing.assert_allclose(gr.pdf, known_pdf(r), atol=1e-5)
    assert gr.header == facts


def test_every_style_gives_the_same_model_input_whatever_its_r_grid(tmp_path):
    expected = normalise_profiles(known_pdf(MODEL_GRID_A)[None, :])[0]
    for style, (header, rows, r, _) in STYLES.items():
        (tmp_path / f"{style}.gr").write_text(header + rows(r), encoding="utf-8")
    found = measured.read_measured_folder(tmp_path)
    assert found.names == sorted(f"{style}.gr" for style in STYLES) and not found.rejections
    steps = {f"{style}.gr": np.diff(r).max() for style, (_, _, r, _) in STYLES.items()}
    for name, row in zip(found.names, found.inputs):
        # linear interpolation of a curve with 2.5 rad/A oscillations: 0.01-0.05 A steps cost < 1 %;
        # the Nyquist grid (pi / 30 A) about 3 % (h^2 k^2 / 8 of the amplitude)
        np.testing.assert_allclose(row, expected, atol=0.01 if steps[name] <= 0.05 else 0.04, err_msg=name)
    assert sorted(h["tool"] for h in found.headers) == sorted(facts["tool"] for *_, facts in STYLES.values())


def test_numeric_history_rows_without_a_marker_are_header_not_data(tmp_path):
    """A PDFgetN file whose `#### start data` block was cut: the bank table (4 numeric rows)
    and the numRpoints line must not be taken for data; the first long numeric run is."""
    header = PDFGETN_HEADER.split("#### start data")[0]
    r = np.arange(1, 1601) * 0.02
    (tmp_path / "cut.gr").write_text(header + x2_rows(r))
    gr = measured.read_gr_file(tmp_path / "cut.gr")
    np.testing.assert_allclose(gr.r_A, r)
    assert gr.header["composition"] == "MnO" and gr.header["radiation"] == "neutron"


def test_a_nacl_pdf_in_a_pdfgetx3_file_is_the_models_input_for_nacl(tmp_path):
    nacl = measured.reference_crystals()[0]
    r = np.round(np.arange(0, 3501) * 0.01, 2)
    pdf = compute_pdfs([nacl], PdfSettings(r_max_A=35.0), r)[0]
    (tmp_path / "NaCl.gr").write_text(PDFGETX3_HEADER + "".join(f"{x:g} {g:.6g}\n" for x, g in zip(r, pdf)))
    found = measured.read_measured_folder(tmp_path)
    expected = normalise_profiles(compute_pdfs([nacl], PdfSettings(), MODEL_GRID_A))[0]
    np.testing.assert_allclose(found.inputs[0], expected, atol=5e-3)


def test_a_pdfgetn_file_that_ends_at_20_A_is_read_to_its_end_as_the_r_cut_training_profiles_are(tmp_path):
    r = np.round(np.arange(1, 2001) * 0.01, 2)
    (tmp_path / "x020t010q35.gr").write_text(PDFGETN_SHORT_HEADER + n_short_rows(r))
    found = measured.read_measured_folder(tmp_path)
    assert found.names == ["x020t010q35.gr"] and not found.rejections
    assert found.r_max_used_A == [20.0]
    assert found.headers[0]["radiation"] == "neutron" and found.headers[0]["tool"] == "PDFgetN"
    cut = np.where(MODEL_GRID_A <= 20.0, known_pdf(MODEL_GRID_A), 0.0)  # G zero beyond, then normalised
    np.testing.assert_allclose(found.inputs[0], normalise_profiles(cut[None, :])[0], atol=0.01)


@pytest.mark.parametrize(("r_first", "r_last", "words"),
                         [(0.01, 12.0, "reach at least 15 A"), (2.0, 40.0, "start at or below 1.5 A"),
                          (0.5, 14.9, "reach at least 15 A")],
                         ids=["maxR-12", "starts-at-2", "stops-at-14.9"])
def test_a_file_too_short_for_the_model_is_rejected_with_its_range(tmp_path, r_first, r_last, words):
    r = np.arange(r_first, r_last + 1e-9, 0.01)
    (tmp_path / "short.gr").write_text(PDFGETX2_HEADER + x2_rows(r))
    found = measured.read_measured_folder(tmp_path)
    assert found.names == [] and len(found.rejections) == 1
    reason = found.rejections[0].reason
    assert f"r range {r_first:.2f}..{r_last:.2f} A is too short" in reason and words in reason


@pytest.mark.parametrize("r_last", [15.0, 22.5, 29.0, 30.0, 70.0])
def test_files_ending_from_15_A_on_are_read_to_min_of_their_end_and_30_A(tmp_path, r_last):
    r = np.arange(0.01, r_last + 1e-9, 0.01)
    (tmp_path / "f.gr").write_text(PDFGETX2_HEADER + x2_rows(r))
    found = measured.read_measured_folder(tmp_path)
    assert found.r_max_used_A == [pytest.approx(min(r[-1], 30.0))]
    beyond = MODEL_GRID_A > r[-1] + measured.COVERAGE_TOLERANCE_A
    assert np.ptp(found.inputs[0][beyond]) == 0 if beyond.any() else True  # flat (G = 0) where not measured


@pytest.mark.parametrize(
    ("text", "row", "words"),
    [
        (PDFGETX3_HEADER + x3_rows(np.arange(0, 40) * 0.01) + "3.0 oops\n", PDFGETX3_HEADER.count("\n") + 41,
         "two or more numbers"),
        (PDFGETX3_HEADER + "1 2\n" * 3, None, "at least"),
        (PDFGETX3_HEADER + "".join(f"{i % 10} 1\n" for i in range(30)), None, "increase"),
        (PDFGETX3_HEADER + "0.5 nan\n" + x3_rows(np.arange(1, 40)), None, "not finite"),
        ("title=PDF analysis\nnothing but words\n", None, "no run of 20"),
        (PDFGUI_HEADER, None, "no data rows after"),
    ],
    ids=["word-in-data", "too-short", "not-increasing", "nan", "no-numbers", "marker-only"],
)
def test_unusable_files_name_the_row_and_the_expectation(tmp_path, text, row, words):
    (tmp_path / "bad.gr").write_text(text)
    with pytest.raises(measured.GrFormatError, match=words) as error:
        measured.read_gr_file(tmp_path / "bad.gr")
    assert error.value.row == row


def test_measured_folder_keeps_going_after_a_bad_file(tmp_path):
    header, rows, r, _ = STYLES["PDFgetX3"]
    (tmp_path / "good.gr").write_text(header + rows(r))
    (tmp_path / "broken.gr").write_bytes(b"\xff\xfe binary \x00 junk")
    found = measured.read_measured_folder(tmp_path)
    assert found.names == ["good.gr"] and found.inputs.shape == (1, 209)
    assert [rejection.source.rsplit("/", 1)[-1] for rejection in found.rejections] == ["broken.gr"]


def test_embedded_examples_are_labelled_synthetic_and_read_back(tmp_path):
    paths = measured.write_embedded_examples(tmp_path, np.random.default_rng(0))
    assert sorted(p.name for p in paths) == ["Mg.gr", "NaCl.gr", "Si.gr"]
    found = measured.read_measured_folder(tmp_path)
    assert found.names == ["Mg.gr", "NaCl.gr", "Si.gr"] and not found.rejections
    assert "synthetic" in paths[0].read_text().splitlines()[1]


def test_top_k_table_orders_by_probability_and_names_the_groups():
    probabilities = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    headers = [{"wavelength_A": 0.1839, "qmax_inv_A": 24.5, "composition": "NaCl", "radiation": "xray"}, {}]
    table = measured.top_k_table(["a.gr", "b.gr"], probabilities, [14, 225, 227], 2, "model-1", headers)
    a, b = table[table["file"] == "a.gr"], table[table["file"] == "b.gr"]
    assert a["space_group"].tolist() == [225, 227]
    assert a["space_group_symbol"].tolist() == ["Fm-3m", "Fd-3m"]
    assert b["space_group_symbol"].tolist() == ["P2_1/c", "Fd-3m"]
    assert b["probability"].tolist() == [0.5, 0.3]
    assert a["composition"].tolist() == ["NaCl", "NaCl"] and a["wavelength_A"].tolist() == [0.1839] * 2
    assert b["composition"].isna().all() and b["qmax_inv_A"].isna().all()
    assert (table["model_id"] == "model-1").all() and (table["source"] == "user").all()


# Mutation run (issue 25 item 3): edges of the reader, the messages' row numbers, the embedded examples.

def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def two_columns(r, sep=" "):
    return "".join(f"{x:.4f}{sep}{known_pdf(x):.6f}\n" for x in r)


def test_reference_crystals_are_the_cited_room_temperature_structures():
    lengths = {c.structure_id: np.round(np.linalg.norm(c.lattice_A, axis=1), 3).tolist()
               for c in measured.reference_crystals()}
    elements = {c.structure_id: sorted(set(c.atomic_numbers.tolist())) for c in measured.reference_crystals()}
    assert lengths["NaCl"] == [5.64] * 3 and elements["NaCl"] == [11, 17]
    assert lengths["Si"] == [5.431] * 3 and elements["Si"] == [14]
    assert lengths["Mg"] == [3.209, 3.209, 5.211] and elements["Mg"] == [12]


def test_embedded_examples_are_the_reference_pdfs_with_three_percent_noise_and_read_with_their_facts(tmp_path):
    paths = measured.write_embedded_examples(tmp_path, np.random.default_rng(0))
    crystals = {c.structure_id: c for c in measured.reference_crystals()}
    r = np.arange(0.01, 35.0, 0.01)
    for path in paths:
        gr = measured.read_gr_file(path)
        np.testing.assert_allclose(gr.r_A, r, atol=1e-6)
        clean = compute_pdfs([crystals[path.stem]], PdfSettings(r_max_A=35.0), r)[0]
        noise = gr.pdf - clean
        assert abs(np.mean(noise)) < 0.003 * np.abs(clean).max()
        assert np.std(noise) == pytest.approx(0.03 * np.abs(clean).max(), rel=0.05)
        assert gr.header == {"wavelength_A": 0.1839, "qmax_inv_A": 25.0, "composition": path.stem,
                             "radiation": "xray", "tool": None}
        assert f"space group {crystals[path.stem].space_group}" in path.read_text()
    nameless = write(tmp_path, "x.gr", measured.gr_text(r, np.sin(r), "test"))
    assert measured.read_gr_file(nameless).header["composition"] is None  # no composition given, none claimed


def test_examples_top_k_hits_looks_at_the_synthetic_examples_only():
    table = pd.DataFrame({
        "file": ["NaCl.gr", "NaCl.gr", "Si.gr", "Si.gr", "Mg.gr", "Mg.gr", "NaCl.gr", "mine.gr"],
        "source": ["synthetic"] * 6 + ["user", "synthetic"],
        "rank": [1, 2, 1, 2, 1, 2, 1, 1],
        "space_group": [225, 14, 194, 227, 225, 227, 14, 225],
    })
    assert measured.examples_top_k_hits(table) == {"NaCl.gr": True, "Si.gr": True, "Mg.gr": False}
    assert measured.examples_top_k_hits(table, k=1) == {"NaCl.gr": True, "Si.gr": False, "Mg.gr": False}


def test_the_short_readers_return_what_the_full_ones_do(tmp_path):
    header, rows, r, _ = STYLES["PDFgetX3"]
    path = write(tmp_path, "a.gr", header + rows(r))
    write(tmp_path, "b.gr", "nothing here\n")
    r_A, pdf = measured.read_gr(path)
    np.testing.assert_array_equal(r_A, measured.read_gr_file(path).r_A)
    np.testing.assert_array_equal(pdf, measured.read_gr_file(path).pdf)
    names, inputs, rejections = measured.measured_inputs(tmp_path)
    found = measured.read_measured_folder(tmp_path)
    assert names == found.names == ["a.gr"] and np.array_equal(inputs, found.inputs)
    assert [x.source for x in rejections] == [x.source for x in found.rejections] == [str(tmp_path / "b.gr")]
    assert found.paths == [str(path)] and found.inputs.dtype == np.float32


def test_an_empty_folder_gives_no_rows_of_the_model_width(tmp_path):
    found = measured.read_measured_folder(tmp_path)
    assert (found.names, found.paths, found.headers, found.rejections, found.r_max_used_A) == ([], [], [], [], [])
    assert found.inputs.shape == (0, len(MODEL_GRID_A)) and found.inputs.dtype == np.float32
    empty = measured.MeasuredSet.empty()
    assert empty.inputs.shape == (0, len(MODEL_GRID_A)) and empty.inputs.dtype == np.float32
    assert (empty.names, empty.paths, empty.headers, empty.rejections, empty.r_max_used_A) == ([], [], [], [], [])


def test_plain_two_column_files_without_a_marker_read_also_comma_separated(tmp_path):
    r = np.arange(0.01, 30.0, 0.01)
    for name, sep in (("space.gr", " "), ("comma.gr", ",")):
        gr = measured.read_gr_file(write(tmp_path, name, "# r G\n\n" + two_columns(r, sep)))
        assert gr.data_start_row == 3 and len(gr.r_A) == len(r)
        np.testing.assert_allclose(gr.pdf, known_pdf(r), atol=1e-6)


def test_the_data_start_when_numeric_rows_come_before_it(tmp_path):
    table = "".join(f"{i} {i * 0.5}\n" for i in range(19))  # 19 numeric rows: a header table, not data
    r = np.arange(0.01, 0.21, 0.01)  # exactly MIN_POINTS data rows, no marker
    gr = measured.read_gr_file(write(tmp_path, "a.gr", "title=x\n" + table + "Qmax=25\n" + two_columns(r)))
    assert gr.data_start_row == 22 and len(gr.r_A) == 20
    right_after = "#### start data\n" + two_columns(np.arange(0.01, 0.31, 0.01))  # no #S or #L lines
    assert measured.read_gr_file(write(tmp_path, "b.gr", right_after)).data_start_row == 2


def test_messages_name_the_rows_the_user_must_look_at(tmp_path):
    def message(text):
        with pytest.raises(measured.GrFormatError) as error:
            measured.read_gr_file(write(tmp_path, "bad.gr", text))
        return str(error.value)

    r = np.arange(0.01, 0.41, 0.01)
    marker_only = "title=x\n\n#### start data\n#L r G\n"
    assert "marker on line 3" in message(marker_only)
    assert "from line 2 on, got 'oops'" in message("#### start data\n" + two_columns(r) + "oops\n")
    rows = two_columns(r).splitlines()
    assert "data row 2 is not finite" in message("\n".join(rows[:1] + ["0.02 nan"] + rows[2:]) + "\n")
    assert "data row 4 does not" in message("\n".join(rows[:3] + [rows[1]] + rows[4:]) + "\n")
    assert "data row 3 does not" in message("\n".join(rows[:2] + [rows[1]] + rows[3:]) + "\n")  # r repeated
    assert "expected a header followed by data rows" in message("words only\n" * 30)
    missing = tmp_path / "missing.gr"
    with pytest.raises(measured.GrFormatError, match="cannot read the file") as error:
        measured.read_gr_file(missing)
    assert error.value.row is None


def test_rows_may_add_dr_and_dg_columns_part_way(tmp_path):
    r = np.arange(0.01, 0.41, 0.01)
    text = "#### start data\n" + two_columns(r[:20]) + "".join(f"{x:.4f} {known_pdf(x):.6f} 0 0.01\n" for x in r[20:])
    gr = measured.read_gr_file(write(tmp_path, "a.gr", text))
    np.testing.assert_allclose(gr.pdf, known_pdf(r), atol=1e-6)


def test_a_rejected_file_keeps_the_row_to_blame(tmp_path):
    write(tmp_path, "bad.gr", "#### start data\n" + two_columns(np.arange(0.01, 0.41, 0.01)) + "oops\n")
    found = measured.read_measured_folder(tmp_path)
    assert [(x.row, "oops" in x.reason) for x in found.rejections] == [(42, True)]


@pytest.mark.parametrize(("r", "read"), [
    (np.round(np.arange(1.5, 30.01, 0.1), 2), True),  # starts on the grid's first point, 0.1 A steps
    (np.round(np.arange(1.55, 30.01, 0.05), 2), True),  # starts at the tolerance
    (np.round(np.arange(0.1, 15.01, 0.1), 2), True),  # ends at 15 A in 0.1 A steps
    (np.round(np.arange(0.05, 14.951, 0.05), 2), True),  # ends at the tolerance below 15 A
    (np.round(np.arange(1.6, 30.01, 0.1), 2), False),
])
def test_range_edges_within_the_tolerance_are_read(tmp_path, r, read):
    write(tmp_path, "f.gr", "#### start data\n" + two_columns(r))
    found = measured.read_measured_folder(tmp_path)
    assert (found.names == ["f.gr"]) is read


def test_the_tool_is_recognised_in_any_case():
    assert measured.parse_header("# written by PDFgetX3 1.1\nqmax = 25\n")["tool"] == "PDFgetX3"


def test_a_fraction_column_is_read_when_the_table_names_it_without_hash_l():
    header = "symbol valence fractions z\n  Cu 0.00 1.0 29 0 0\n  Ir 0.00 2.0 77 0 0\n"
    assert measured.parse_header(header)["composition"] == "CuIr2"


def test_top_k_table_columns_ranks_and_the_model_that_made_it():
    probabilities = np.array([[0.2, 0.8]])
    header = {"radiation": "neutron", "qmax_inv_A": 35.0, "wavelength_A": None, "composition": "MnO"}
    table = measured.top_k_table(["n.gr"], probabilities, [62, 225], 2, "id-7", [header], r_max_used_A=[20.0],
                                 model="compact")
    assert list(table.columns) == measured.PREDICTION_COLUMNS
    assert table["rank"].tolist() == [1, 2] and table["space_group"].tolist() == [225, 62]
    assert table["r_max_used_A"].tolist() == [20.0, 20.0] and table["radiation"].tolist() == ["neutron"] * 2
    assert table["qmax_inv_A"].tolist() == [35.0, 35.0] and table["model"].tolist() == ["compact"] * 2
    unnamed = measured.top_k_table(["n.gr"], probabilities, [62, 225], 1, "id-7")
    assert unnamed["model"].tolist() == [""] and unnamed["r_max_used_A"].isna().all()
    assert unnamed["members_first"].tolist() == [""]  # a single network
    three_seeds = measured.top_k_table(["n.gr"], probabilities, [62, 225], 2, "id-7", members_first=np.array([[1, 0, 1]]))
    assert three_seeds["members_first"].tolist() == ["225 Fm-3m, 62 Pnma, 225 Fm-3m"] * 2
    assert list(measured.top_k_table([], np.zeros((0, 2)), [62, 225], 2, "id-7").columns) == measured.PREDICTION_COLUMNS


def test_comment_and_blank_lines_inside_the_data_are_skipped_not_the_end(tmp_path):
    r = np.arange(0.01, 0.61, 0.01)
    rows = two_columns(r).splitlines()
    text = "#### start data\n" + "\n".join(rows[:25] + ["# bank 2", ""] + rows[25:]) + "\n"
    gr = measured.read_gr_file(write(tmp_path, "a.gr", text))
    np.testing.assert_allclose(gr.r_A, np.round(r, 4))
