"""Reading .gr files, the embedded default and the top-k table."""

from __future__ import annotations

import numpy as np
import pytest

from assets.pdf import measured
from assets.pdf.calculator import MODEL_GRID_A, PdfSettings, compute_pdfs, model_input


def test_embedded_default_round_trips_through_the_gr_reader(tmp_path):
    paths = measured.write_embedded_measured(tmp_path, np.random.default_rng(0), noise_fraction=0.0)
    assert sorted(p.name for p in paths) == ["Mg.gr", "NaCl.gr", "Si.gr"]
    r, pdf = measured.read_gr(tmp_path / "Si.gr")
    assert r[0] == pytest.approx(0.01) and r[-1] == pytest.approx(34.99)
    silicon = [c for c in measured.reference_crystals() if c.structure_id == "Si"]
    expected = compute_pdfs(silicon, PdfSettings(r_max_A=35.0), MODEL_GRID_A)[0]
    # linear interpolation from the 0.01 A file grid costs ~0.1 % of the peak height
    np.testing.assert_allclose(np.interp(MODEL_GRID_A, r, pdf), expected, atol=3e-3 * np.abs(expected).max())


def test_gr_without_pdfgetx3_header_and_with_extra_columns(tmp_path):
    r = np.linspace(1.0, 25.0, 100)
    rows = "\n".join(f"{x} {np.sin(x)} 0.01 0.02" for x in r)
    (tmp_path / "plain.gr").write_text("# my own header\nsample = x\n" + rows + "\n")
    read_r, read_g = measured.read_gr(tmp_path / "plain.gr")
    np.testing.assert_allclose(read_r, r)
    np.testing.assert_allclose(read_g, np.sin(r))


@pytest.mark.parametrize(
    ("text", "row", "words"),
    [
        ("#### start data\n" + "".join(f"{i} 1\n" for i in range(30)) + "3.0 oops\n", 32, "two or more numbers"),
        ("1 2\n" * 3, None, "at least"),
        ("".join(f"{i % 10} 1\n" for i in range(30)), None, "increase"),
        ("".join(f"{i * 0.01} 1\n" for i in range(30)), None, "covers less"),
    ],
    ids=["bad-row", "too-short", "not-increasing", "out-of-range"],
)
def test_unusable_files_name_the_row_and_the_expectation(tmp_path, text, row, words):
    (tmp_path / "bad.gr").write_text(text)
    with pytest.raises(measured.GrFormatError, match=words) as error:
        measured.read_gr(tmp_path / "bad.gr")
    assert error.value.row == row


def test_measured_inputs_keep_going_after_a_bad_file(tmp_path):
    measured.write_embedded_measured(tmp_path, np.random.default_rng(1))
    (tmp_path / "broken.gr").write_text("nothing here\n")
    names, inputs, rejections = measured.measured_inputs(tmp_path)
    assert names == ["Mg.gr", "NaCl.gr", "Si.gr"]
    assert inputs.shape == (3, 209)
    assert [r.source.rsplit("/", 1)[-1] for r in rejections] == ["broken.gr"]


def test_short_measured_range_is_zero_outside_before_normalising():
    r = np.linspace(2.0, 10.0, 400)
    row = model_input(r, np.cos(3 * r))
    zero_level = (0 - np.cos(3 * r).min()) / np.ptp(np.cos(3 * r))
    assert np.allclose(row[MODEL_GRID_A > 10.0], zero_level, atol=1e-3)
    assert np.allclose(row[MODEL_GRID_A < 2.0], zero_level, atol=1e-3)


def test_top_k_table_orders_by_probability():
    probabilities = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    table = measured.top_k_table(["a.gr", "b.gr"], probabilities, [14, 225, 227], 2, "model-1")
    assert table[table["file"] == "a.gr"]["space_group"].tolist() == [225, 227]
    assert table[table["file"] == "b.gr"]["probability"].tolist() == [0.5, 0.3]
    assert (table["model_id"] == "model-1").all()
