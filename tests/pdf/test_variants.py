"""Symmetry-preserving variants and the generation cache: more distinct crystals per pyxtal call, reused on rerun."""

from __future__ import annotations

import numpy as np
import pytest

from assets.pdf import structures, variants
from assets.pdf.structures import spglib_symmetry

GROUPS = [2, 14, 15, 62, 139, 194, 225, 227]


def site_partition(numbers: np.ndarray) -> np.ndarray:
    """Which sites share a species (labels by first appearance): what fixes the symmetry of a decoration."""
    _, first, inverse = np.unique(numbers, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse]


@pytest.mark.parametrize("space_group", GROUPS)
def test_variants_keep_the_group_the_sites_and_the_metric_their_crystal_system_allows(space_group):
    parent = structures.generate_crystal(space_group, ["Na", "Mg", "O", "Cl", "Ti"], 8, 3, seed=2, index=0)
    found = variants.crystal_variants(parent, 4, np.random.default_rng(0), strain=0.04, angle_deg=3.0)
    assert len(found) >= 3
    lengths0, angles0 = variants.lattice_parameters(parent.lattice_A)
    system = variants.crystal_system(space_group)
    for variant in found:
        assert spglib_symmetry(variant.lattice_A, variant.frac_coords, variant.atomic_numbers)[0] == space_group
        np.testing.assert_array_equal(variant.frac_coords, parent.frac_coords)
        np.testing.assert_array_equal(site_partition(variant.atomic_numbers), site_partition(parent.atomic_numbers))
        lengths, angles = variants.lattice_parameters(variant.lattice_A)
        assert not np.allclose(lengths, lengths0)  # strained
        if system == "cubic":
            np.testing.assert_allclose(lengths / lengths0, lengths[0] / lengths0[0])  # one scale for all
            np.testing.assert_allclose(angles, 90.0)
        if system == "hexagonal":
            assert lengths[0] == pytest.approx(lengths[1]) and sorted(np.round(angles, 6)) == [90, 90, 120]
        if system in ("tetragonal", "orthorhombic"):
            np.testing.assert_allclose(angles, 90.0)
        if system == "monoclinic":
            assert np.sum(np.isclose(angles, 90.0)) == 2
    assert any(not np.array_equal(v.atomic_numbers, parent.atomic_numbers) for v in found)
    assert [variants.parent_id(v.structure_id) for v in found] == [parent.structure_id] * len(found)


def test_substitution_is_one_to_one():
    numbers = np.array([11, 11, 17, 17, 8])
    new = variants.substituted_numbers(numbers, variants.VARIANT_ELEMENTS, np.random.default_rng(1))
    assert len(set(new)) == 3 and new[0] == new[1] and new[2] == new[3] and new[4] not in (new[0], new[2])
    for seed in range(20):  # exactly as many elements as species: every draw is a permutation of them
        drawn = variants.substituted_numbers(numbers, [3, 4, 5], np.random.default_rng(seed))
        assert sorted(set(drawn)) == [3, 4, 5]
    with pytest.raises(ValueError, match="one-to-one"):
        variants.substituted_numbers(numbers, [3, 4], np.random.default_rng(1))


@pytest.mark.parametrize(("structure_id", "parent"), [("gen-sg14-0-7-v3", "gen-sg14-0-7"), ("gen-sg14-0-7", "gen-sg14-0-7"),
                                                      ("cif-NaCl", "cif-NaCl"), ("cif-a-vb", "cif-a-vb")])
def test_parent_id(structure_id, parent):
    assert variants.parent_id(structure_id) == parent


def test_family_chunks_are_seeded_and_cached_by_their_settings(tmp_path):
    task = ((62, [0, 1], ["Na", "Cl", "O"], 8, 2, 3), 2, 0.03, 2.0)
    first, again = variants.generate_family_chunk(task), variants.generate_family_chunk(task)
    assert [c.structure_id for c in first] == [c.structure_id for c in again]
    assert len(first) >= 4 and sum("-v" in c.structure_id for c in first) >= 2
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.lattice_A, b.lattice_A)
        np.testing.assert_array_equal(a.atomic_numbers, b.atomic_numbers)
    other = ((62, [0, 1], ["Na", "Cl", "O"], 8, 2, 3), 3, 0.03, 2.0)  # one more variant: another entry
    structures.cache_chunk(tmp_path, task, first)
    found, missing = structures.cached_chunks(tmp_path, [task, other])
    assert missing == [1] and list(found) == [0]
    for a, b in zip(found[0], first):
        assert a.structure_id == b.structure_id and a.space_group == b.space_group
        np.testing.assert_allclose(a.lattice_A, b.lattice_A)
        np.testing.assert_array_equal(a.orbits, b.orbits)
