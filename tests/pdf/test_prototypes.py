"""Real structure types (AFLOW prototypes, pyxtal's CIFs): their groups, their decorations and the split by type."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from assets.pdf import classifiers, prototypes, structures, variants

GROUPS = structures.DEFAULT_SPACE_GROUPS


@pytest.fixture(scope="module")
def loaded():
    return prototypes.load_prototypes(GROUPS, 24)


def claimed_group(prototype) -> int:
    """The group the library states: the third field of an AFLOW label, or the CIF's space-group number tag."""
    library, name = prototype.source.split()[:2]
    if library == "AFLOW":
        return int(name.split("_")[2])
    text = (prototypes.pyxtal_cif_folder() / name).read_text(errors="replace")
    return int(prototypes.CIF_GROUP_TAG.search(text).group(1))


def test_every_loaded_type_is_in_the_group_its_library_claims_by_spglib(loaded):
    assert {p.space_group for p in loaded} == set(GROUPS)  # every class has at least one real type
    for prototype in loaded:
        found, _ = structures.spglib_symmetry(prototype.lattice_A, prototype.frac_coords, prototype.atomic_numbers)
        assert found == prototype.space_group == claimed_group(prototype), prototype.source
        assert prototype.structure_id.startswith(f"proto-sg{found}-")
    assert {p.source.split()[0] for p in loaded} == {"AFLOW", "pyxtal"}


def test_one_structure_type_from_both_libraries_gets_one_id(loaded):
    """AFLOW's halite and pyxtal's NaCl.cif are both rock salt (Na on 4a, Cl on 4b of Fm-3m)."""
    rock_salt = {p.source.split()[1] for p in loaded if p.structure_id == "proto-sg225-a_b"}
    assert {"AB_cF8_225_a_b", "NaCl.cif"} <= rock_salt
    spinel = next(p for p in loaded if p.source.startswith("AFLOW A2BC4_cF56_227_d_a_e"))
    assert len(spinel.atomic_numbers) == 56  # the conventional F cell: 14 atoms per lattice point


def test_max_atoms_counts_the_primitive_cell():
    small = prototypes.load_prototypes([194, 225, 227], 2)
    assert all(prototypes.structure_type(p)[1] <= 2 for p in small)
    names = {p.source.split()[1] for p in small}
    assert {"A_cF4_225_a", "A_hP2_194_c", "A_cF8_227_a", "AB_cF8_225_a_b"} <= names  # Cu, Mg, diamond, halite
    assert "A2BC4_cF56_227_d_a_e" not in names  # spinel: 14 atoms in its primitive cell


def test_size_scale_is_the_cube_root_of_the_atomic_volume_ratio():
    from pymatgen.core import Element

    copper, silver = Element("Cu").atomic_radius, Element("Ag").atomic_radius
    assert prototypes.size_scale(np.array([29, 29]), np.array([47, 47])) == pytest.approx(silver / copper)
    assert prototypes.size_scale(np.array([11, 17]), np.array([11, 17])) == pytest.approx(1.0)


def test_decorations_keep_the_group_the_sites_and_the_parent(loaded):
    rng = np.random.default_rng(0)
    for prototype in loaded:
        found = prototypes.decorations(prototype, 3, rng)
        assert found, prototype.source
        for crystal in found:
            assert structures.spglib_symmetry(crystal.lattice_A, crystal.frac_coords,
                                              crystal.atomic_numbers)[0] == prototype.space_group
            assert variants.parent_id(crystal.structure_id) == prototype.structure_id
            np.testing.assert_array_equal(crystal.frac_coords, prototype.frac_coords)
            same_before = prototype.atomic_numbers[:, None] == prototype.atomic_numbers[None, :]
            same_after = crystal.atomic_numbers[:, None] == crystal.atomic_numbers[None, :]
            np.testing.assert_array_equal(same_before, same_after)  # one new element per site set, one to one


def test_an_unstrained_decoration_scales_the_cell_by_the_new_elements_size(loaded):
    halite = next(p for p in loaded if p.source.startswith("AFLOW AB_cF8_225_a_b"))
    crystal = prototypes.decorations(halite, 1, np.random.default_rng(1), strain=0.0, angle_deg=0.0)[0]
    scale = prototypes.size_scale(halite.atomic_numbers, crystal.atomic_numbers)
    assert crystal.volume_A3 == pytest.approx(halite.volume_A3 * scale**3)


def test_group_crystals_share_the_count_and_number_a_type_across_libraries(loaded):
    rock_salts = [p for p in loaded if p.structure_id == "proto-sg225-a_b"]
    crystals = prototypes.group_decorations(rock_salts, 10, seed=0)
    ids = [c.structure_id for c in crystals]
    assert len(ids) == len(set(ids)) == 10  # rock salt stays rock salt: no decoration is dropped
    assert {variants.parent_id(i) for i in ids} == {"proto-sg225-a_b"}
    again = prototypes.group_decorations(rock_salts, 10, seed=0)
    np.testing.assert_array_equal(crystals[-1].lattice_A, again[-1].lattice_A)  # seeded


def test_the_split_keeps_every_crystal_of_a_type_on_one_side(tmp_path):
    crystals = prototypes.cached_prototype_crystals(tmp_path, GROUPS, 40, 24, seed=0)
    again = prototypes.cached_prototype_crystals(tmp_path, GROUPS, 40, 24, seed=0)  # read from the cache
    pd.testing.assert_frame_equal(structures.crystals_to_frame(again), structures.crystals_to_frame(crystals))
    assert len(list(tmp_path.glob("*.parquet"))) == 1
    ids = np.array([c.structure_id for c in crystals])
    parents = np.array([variants.parent_id(i) for i in ids])
    split = classifiers.stratified_split(ids, np.array([c.space_group for c in crystals]), 0.2, 0.2, 0,
                                         parent_ids=parents)
    sides = split.groupby("parent_id")["subset"].nunique()
    assert (sides == 1).all() and len(sides) == len(set(parents))
    assert set(split["subset"]) == {"train", "validation", "test"}


def test_held_out_types_are_a_quarter_of_each_group_and_never_a_groups_only_type(loaded):
    from benchmarks.pdf_seeds import held_out_types

    crystals = prototypes.prototype_crystals(GROUPS, 20, 24, seed=0)
    held = held_out_types(crystals, seed=0)
    for group in GROUPS:
        types = {variants.parent_id(c.structure_id) for c in crystals if c.space_group == group}
        expected = max(1, round(0.25 * len(types))) if len(types) >= 2 else 0
        assert len(held & types) == expected


def test_pdf_structures_adds_decorated_types_next_to_the_random_ones_and_caches_them(data_root, test_resources):
    from dagster import DagsterInstance, materialize

    from assets.pdf import defs as pdf_defs
    from tests.pdf.test_assets import materialization_metadata

    config = {"space_groups": [225, 227], "structures_per_group": 2, "max_atoms": 2, "variants_per_structure": 0,
              "prototype_crystals_per_group": 6}
    result = materialize([pdf_defs.pdf_structures], resources=test_resources, instance=DagsterInstance.ephemeral(),
                         run_config={"ops": {"pdf_structures": {"config": config}}})
    frame = result.output_for_node("pdf_structures")
    decorated = frame[frame["structure_id"].str.startswith("proto-")]
    assert len(decorated) == 12 and set(decorated["space_group"]) == {225, 227}
    assert (decorated["space_group"].astype(str) == decorated["structure_id"].str.extract(r"sg(\d+)-")[0]).all()
    metadata = materialization_metadata(result, "pdf_structures")
    assert metadata["n_prototype_crystals"] == 12
    assert metadata["n_prototype_types"] == len({variants.parent_id(i) for i in decorated["structure_id"]})
    assert metadata["n_generated_parents"] == len(frame) - 12  # no variants asked for
    folder = data_root / "cache" / "pdf" / "structures"
    entries = sorted(folder.glob("*.parquet"))
    cached = prototypes.cached_prototype_crystals(folder, [225, 227], 6, 2, seed=0)  # the run's settings
    assert sorted(folder.glob("*.parquet")) == entries  # read back, not generated again
    assert sorted(c.structure_id for c in cached) == sorted(decorated["structure_id"])
