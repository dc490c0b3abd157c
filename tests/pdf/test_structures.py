"""Generated crystals have the requested symmetry; CIFs are labelled by spglib or rejected."""

from __future__ import annotations

import numpy as np
import pytest

from assets.pdf import structures


@pytest.mark.parametrize("space_group", structures.DEFAULT_SPACE_GROUPS)
def test_generated_crystal_has_the_requested_space_group(space_group):
    crystal = structures.generate_crystal(space_group, structures.DEFAULT_ELEMENTS, 16, 2, seed=7, index=0)
    assert crystal is not None
    assert crystal.space_group == space_group
    found, orbits = structures.spglib_symmetry(crystal.lattice_A, crystal.frac_coords, crystal.atomic_numbers)
    assert found == space_group
    np.testing.assert_array_equal(crystal.orbits, orbits)
    # sites of one orbit carry one species
    for orbit in np.unique(orbits):
        assert len(set(crystal.atomic_numbers[orbits == orbit])) == 1


def test_generation_is_seeded():
    first = structures.generate_chunk((62, [0, 1], ["Na", "Cl", "O"], 12, 2, 3))
    again = structures.generate_chunk((62, [0, 1], ["Na", "Cl", "O"], 12, 2, 3))
    assert [c.structure_id for c in first] == [c.structure_id for c in again]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.frac_coords, b.frac_coords)


def test_frame_round_trip_keeps_the_arrays():
    crystal = structures.rock_salt(5.64, 11, 17, "NaCl")
    (back,) = structures.frame_to_crystals(structures.crystals_to_frame([crystal]))
    np.testing.assert_array_equal(back.lattice_A, crystal.lattice_A)
    np.testing.assert_array_equal(back.frac_coords, crystal.frac_coords)
    np.testing.assert_array_equal(back.atomic_numbers, crystal.atomic_numbers)
    np.testing.assert_array_equal(back.orbits, crystal.orbits)
    assert back.space_group == 225
    unknown = structures.Crystal("x", "test", 1, np.eye(3), np.zeros((1, 3)), np.array([3]), np.ones(1))
    (back,) = structures.frame_to_crystals(structures.crystals_to_frame([unknown]))
    assert back.orbits is None


def test_cif_folder_labels_by_symmetry_and_quarantines_the_rest(tmp_path):
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    magnesium = Structure.from_spacegroup("P6_3/mmc", Lattice.hexagonal(3.209, 5.211), ["Mg"], [[1 / 3, 2 / 3, 0.25]])
    CifWriter(magnesium).write_file(tmp_path / "Mg.cif")
    tungsten = Structure.from_spacegroup("Im-3m", Lattice.cubic(3.165), ["W"], [[0, 0, 0]])
    CifWriter(tungsten).write_file(tmp_path / "W.cif")
    (tmp_path / "empty.cif").write_text("")
    crystals, rejections = structures.read_cif_folder(tmp_path, structures.DEFAULT_SPACE_GROUPS)
    assert [(c.structure_id, c.space_group, len(c.atomic_numbers)) for c in crystals] == [("cif-Mg", 194, 2)]
    reasons = {r.source.rsplit("/", 1)[-1]: r.reason for r in rejections}
    assert set(reasons) == {"W.cif", "empty.cif"}
    assert "229" in reasons["W.cif"]  # bcc W is Im-3m, not one of the classes


def test_cif_orbits_keep_disordered_species_apart_and_the_pdf_unchanged(tmp_path):
    from dataclasses import replace

    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    from assets.pdf.calculator import compute_pdfs

    # rock salt with the cation site shared by Na and K: 4 + 4 co-located partial sites, 4 Cl
    mixed = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.9), [{"Na": 0.5, "K": 0.5}, "Cl"],
                                      [[0, 0, 0], [0.5, 0.5, 0.5]])
    CifWriter(mixed).write_file(tmp_path / "NaKCl.cif")
    crystal = structures.read_cif(tmp_path / "NaKCl.cif")
    assert crystal.space_group == 225 and len(crystal.atomic_numbers) == 12
    assert len(np.unique(crystal.orbits)) == 3  # Na part, K part, Cl
    for orbit in np.unique(crystal.orbits):
        assert len(set(crystal.atomic_numbers[crystal.orbits == orbit])) == 1
    pdfs = compute_pdfs([crystal, replace(crystal, orbits=None)])
    np.testing.assert_allclose(pdfs[0], pdfs[1], atol=1e-9 * np.abs(pdfs[1]).max())
