"""Real structure types for the PDF pipeline, decorated into many training crystals.

pyxtal's random crystals have the right symmetry but arbitrary atomic arrangements; measured materials are
real structure types (rock salt, spinel, perovskite, ...). Two libraries that ship inside installed packages
give such types (nothing is downloaded):
- pymatgen's AFLOW prototype library (`aflow_prototypes.json.gz`: the space group is the third field of each
  entry's AFLOW label, e.g. 'AB_cF8_225_a_b');
- pyxtal's example CIFs (`pyxtal/database/cifs`: the group is the CIF's `_symmetry_Int_Tables_number` or
  `_space_group_IT_number`; a CIF without one has no claim to check and is skipped).
A type is kept when spglib (structures.spglib_symmetry) places it in its claimed group, its sites are
ordered and its primitive cell holds at most max_atoms atoms.

A decoration is a crystal_variants variant of a type (its species mapped one-to-one onto other elements, so
every set of sites one species held gets one new element; a strain its crystal system allows), with the cell
scaled to the new elements' sizes (pymatgen's atomic radii: a Ba-decorated Cu cell would otherwise put Ba
atoms 2.5 A apart). Every crystal of one structure type, whichever library it came from, gets the id
'<type id>-v<k>', so variants.parent_id groups them and a split by parent never trains on a decoration of a
test type. The type id is the group and the Wyckoff letters of each species, anonymised
('proto-sg225-a_b' for rock salt, whether AFLOW's halite or pyxtal's NaCl.cif).
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import json
import logging
import re
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from assets.pdf import structures, variants
from assets.pdf.structures import Crystal

log = logging.getLogger(__name__)

PROTOTYPE_VERSION = 1  # bump when loading or decoration changes what a cached task yields
CIF_GROUP_TAG = re.compile(r"^\s*_(?:symmetry_Int_Tables_number|space_group_IT_number)\s+(\d+)", re.MULTILINE)


def aflow_library_path() -> Path:
    return Path(str(importlib.resources.files("pymatgen.analysis.prototypes") / "aflow_prototypes.json.gz"))


def pyxtal_cif_folder() -> Path:
    return Path(str(importlib.resources.files("pyxtal") / "database" / "cifs"))


def structure_type(crystal: Crystal) -> tuple[str, int]:
    """(type id, atoms in the primitive cell) from spglib: 'proto-sg<group>-<Wyckoff letters per species>'."""
    import spglib

    dataset = spglib.get_symmetry_dataset((crystal.lattice_A, crystal.frac_coords, crystal.atomic_numbers),
                                          symprec=structures.SYMPREC_A)
    orbits = np.unique(dataset.equivalent_atoms)  # one representative site per orbit
    letters = {}
    for site in orbits:
        letters.setdefault(int(crystal.atomic_numbers[site]), []).append(dataset.wyckoffs[site])
    key = "_".join(sorted("".join(sorted(found)) for found in letters.values()))
    lattice_points = int(sum(np.allclose(rotation, np.eye(3)) for rotation in dataset.rotations))
    return f"proto-sg{dataset.number}-{key}", len(crystal.atomic_numbers) // lattice_points


def aflow_entries(groups: list[int]) -> list[tuple[int, Crystal]]:
    """(claimed group, crystal) of each AFLOW prototype whose label names one of the groups."""
    from pymatgen.core import Structure

    with gzip.open(aflow_library_path(), "rt") as handle:
        entries = json.load(handle)
    found = []
    for entry in entries:
        label = entry["tags"]["aflow"]
        claimed = int(label.split("_")[2])
        if claimed not in groups:
            continue
        structure = Structure.from_dict(entry["snl"])
        mineral = entry["tags"].get("mineral") or ""
        found.append((claimed, Crystal(label, f"AFLOW {label} {mineral}".strip(), claimed,
                                       np.array(structure.lattice.matrix), np.array(structure.frac_coords),
                                       np.array([site.specie.Z for site in structure]), np.ones(len(structure)))))
    return found


def pyxtal_cif_entries(groups: list[int]) -> list[tuple[int, Crystal]]:
    """(claimed group, crystal) of each pyxtal example CIF that states one of the groups and parses."""
    found = []
    for path in sorted(pyxtal_cif_folder().glob("*.cif")):
        claim = CIF_GROUP_TAG.search(path.read_text(errors="replace"))
        if claim is None or int(claim.group(1)) not in groups:
            continue
        try:
            crystal = structures.read_cif(path)
        except ValueError as error:
            log.debug("pyxtal CIF %s skipped: %s", path.name, error)
            continue
        found.append((int(claim.group(1)), replace(crystal, source=f"pyxtal {path.name}")))
    return found


def conventional(crystal: Crystal) -> Crystal:
    """The crystal in spglib's conventional standard cell (AFLOW stores primitive cells; a strain of the
    conventional axes is what the crystal system allows, as for pyxtal's crystals)."""
    import spglib

    lattice, frac, numbers = spglib.standardize_cell((crystal.lattice_A, crystal.frac_coords, crystal.atomic_numbers),
                                                     to_primitive=False, symprec=structures.SYMPREC_A)
    return replace(crystal, lattice_A=np.asarray(lattice), frac_coords=np.asarray(frac),
                   atomic_numbers=np.asarray(numbers), occupancies=np.ones(len(numbers)), orbits=None)


@functools.lru_cache(maxsize=8)
def _load(groups: tuple[int, ...], max_atoms: int) -> tuple[Crystal, ...]:
    kept = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        entries = aflow_entries(list(groups)) + pyxtal_cif_entries(list(groups))
    for claimed, crystal in entries:
        if np.any(crystal.occupancies < 1):
            continue  # a disordered site has no one element to replace
        crystal = conventional(crystal)
        group, orbits = structures.spglib_symmetry(crystal.lattice_A, crystal.frac_coords, crystal.atomic_numbers)
        if group != claimed:
            log.info("%s dropped: spglib finds group %s, not %s", crystal.source, group, claimed)
            continue
        type_id, primitive_atoms = structure_type(crystal)
        if primitive_atoms <= max_atoms:
            kept.append(replace(crystal, structure_id=type_id, space_group=group, orbits=orbits))
    return tuple(kept)


def load_prototypes(groups: list[int], max_atoms: int) -> list[Crystal]:
    """The structure types of the groups (id: the type id, shared by duplicates; source: library and name),
    in library order: AFLOW, then pyxtal's CIFs."""
    return list(_load(tuple(sorted(int(g) for g in groups)), int(max_atoms)))


def atomic_radius_A(z: int) -> float | None:
    from pymatgen.core import Element

    radius = Element.from_Z(int(z)).atomic_radius
    return None if radius is None else float(radius)


def size_scale(old_numbers: np.ndarray, new_numbers: np.ndarray) -> float:
    """Linear cell scale for new elements on the same sites: cube root of the ratio of the summed atomic
    volumes (r^3 per site); 1 when an element has no tabulated radius."""
    old = [atomic_radius_A(z) for z in old_numbers]
    new = [atomic_radius_A(z) for z in new_numbers]
    if None in old or None in new:
        return 1.0
    return float((np.sum(np.power(new, 3)) / np.sum(np.power(old, 3))) ** (1 / 3))


def decorations(prototype: Crystal, n: int, rng: np.random.Generator, strain: float = 0.03,
                angle_deg: float = 2.0) -> list[Crystal]:
    """Up to n decorations of a type (ids '<type id>-v<k>', k = 0..n-1): other elements one-to-one on its
    species, a strain its crystal system allows, the cell scaled to the new elements' sizes. spglib checks
    the final cell (a strain, or a scale against its absolute tolerance, can change the group); a decoration
    in another group is dropped."""
    found = []
    for k in range(n):
        lattice = variants.strained_lattice(prototype.lattice_A, prototype.space_group, strain, angle_deg, rng)
        numbers = variants.substituted_numbers(prototype.atomic_numbers, variants.VARIANT_ELEMENTS, rng)
        lattice = lattice * size_scale(prototype.atomic_numbers, numbers)
        group, orbits = structures.spglib_symmetry(lattice, prototype.frac_coords, numbers)
        if group == prototype.space_group:
            found.append(Crystal(f"{prototype.structure_id}-v{k}", f"decoration of {prototype.source}", group,
                                 lattice, prototype.frac_coords, numbers, prototype.occupancies, orbits))
    return found


def group_decorations(prototypes: list[Crystal], per_group: int, seed: int, strain: float = 0.03,
                      angle_deg: float = 2.0) -> list[Crystal]:
    """About per_group crystals of one group: each type as it is plus decorations, the group's count shared
    evenly among its types. Crystals of one type id are numbered '-v0', '-v1', ... across the libraries."""
    if not prototypes:
        return []
    shares = [per_group // len(prototypes) + (i < per_group % len(prototypes)) for i in range(len(prototypes))]
    by_type: dict[str, list[Crystal]] = {}
    for ordinal, (prototype, share) in enumerate(zip(prototypes, shares)):
        if share == 0:
            continue
        rng = np.random.default_rng([seed, prototype.space_group, ordinal, 11])
        by_type.setdefault(prototype.structure_id, []).extend(
            [prototype, *decorations(prototype, share - 1, rng, strain, angle_deg)])
    return [replace(crystal, structure_id=f"{type_id}-v{k}")
            for type_id, found in by_type.items() for k, crystal in enumerate(found)]


def prototype_crystals(groups: list[int], per_group: int, max_atoms: int, seed: int, strain: float = 0.03,
                       angle_deg: float = 2.0) -> list[Crystal]:
    """Decorated structure types for every group (see group_decorations)."""
    loaded = load_prototypes(groups, max_atoms)
    return [crystal for group in groups
            for crystal in group_decorations([p for p in loaded if p.space_group == group], per_group, seed,
                                             strain, angle_deg)]


def cached_prototype_crystals(folder: Path | None, groups: list[int], per_group: int, max_atoms: int, seed: int,
                              strain: float = 0.03, angle_deg: float = 2.0) -> list[Crystal]:
    """prototype_crystals, read from or written to the structure cache in folder (None: no cache), keyed by
    the settings and PROTOTYPE_VERSION like a generation task."""
    task = ("prototypes", PROTOTYPE_VERSION, sorted(int(g) for g in groups), per_group, max_atoms, seed, strain,
            angle_deg)
    if folder is not None:
        found, missing = structures.cached_chunks(folder, [task])
        if not missing:
            return found[0]
    crystals = prototype_crystals(groups, per_group, max_atoms, seed, strain, angle_deg)
    if folder is not None:
        structures.cache_chunk(folder, task, crystals)
    return crystals
