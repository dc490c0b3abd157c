"""Symmetry-preserving variants of generated crystals: more distinct training crystals per pyxtal call.

A pyxtal structure costs about 0.06 s (24 atoms, one core); a variant costs one spglib call.
A variant keeps the parent's sites and changes what the PDF sees:
- other elements on the same sites: an injective map of the parent's species onto new elements,
  so sites that were different stay different and the space group cannot change;
- a lattice strain the crystal system allows: independent relative changes of the free cell
  lengths (a; a, c; a, b, c) and, for monoclinic and triclinic cells, of the free angles.
spglib checks every variant (a strain can land on a higher symmetry by accident); a variant whose
group differs from its parent's is dropped. Variants carry the parent's id in `parent_id`, so a
split by parent never trains on a variant of a test structure.
"""

from __future__ import annotations

import numpy as np

from assets.pdf.structures import Crystal, generate_crystal, spglib_symmetry

# Elements a variant may take, light to heavy (Z 3..83): cations and anions of common inorganic crystals,
# including the heavy scatterers (Ba, La, Ir, Pb, Bi, ...) that dominate an X-ray PDF.
VARIANT_ELEMENTS = [3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30,
                    31, 32, 33, 34, 35, 37, 38, 39, 40, 41, 42, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 55, 56, 57,
                    58, 60, 62, 64, 66, 68, 70, 72, 73, 74, 76, 77, 78, 79, 80, 81, 82, 83]


def crystal_system(space_group: int) -> str:
    """triclinic, monoclinic, orthorhombic, tetragonal, trigonal, hexagonal or cubic (ITA numbering)."""
    for last, name in ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
                       (167, "trigonal"), (194, "hexagonal"), (230, "cubic")):
        if space_group <= last:
            return name
    raise ValueError(f"space-group number must be 1..230, not {space_group}")


def lattice_parameters(lattice_A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a, b, c) in Angstrom and (alpha, beta, gamma) in degrees of lattice rows a, b, c."""
    lengths = np.linalg.norm(lattice_A, axis=1)
    a, b, c = lattice_A
    cosines = [b @ c / (lengths[1] * lengths[2]), a @ c / (lengths[0] * lengths[2]), a @ b / (lengths[0] * lengths[1])]
    return lengths, np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0)))


def lattice_from_parameters(lengths_A: np.ndarray, angles_deg: np.ndarray) -> np.ndarray:
    """Lattice rows (a along x, b in the xy plane) of the given lengths and angles."""
    a, b, c = lengths_A
    alpha, beta, gamma = np.radians(angles_deg)
    cx = c * np.cos(beta)
    cy = c * (np.cos(alpha) - np.cos(beta) * np.cos(gamma)) / np.sin(gamma)
    cz = np.sqrt(max(c**2 - cx**2 - cy**2, 1e-12))
    return np.array([[a, 0.0, 0.0], [b * np.cos(gamma), b * np.sin(gamma), 0.0], [cx, cy, cz]])


def strained_lattice(lattice_A: np.ndarray, space_group: int, strain: float, angle_deg: float,
                     rng: np.random.Generator) -> np.ndarray:
    """A lattice strained within what the crystal system allows (strain: relative std of free lengths)."""
    lengths, angles = lattice_parameters(lattice_A)
    system = crystal_system(space_group)
    factors = 1.0 + rng.normal(0.0, strain, 3)
    if system == "cubic":
        factors[:] = factors[0]
    elif system in ("tetragonal", "trigonal", "hexagonal"):
        # the two equal cell lengths keep their ratio; the third (c) is free
        matches = np.isclose(lengths[:, None], lengths[None, :], rtol=1e-6).sum(axis=1)
        if matches.min() == 1 and matches.max() == 2:
            equal = np.flatnonzero(matches == 2)
            factors[equal] = factors[equal[0]]
        else:  # rhombohedral axes (a = b = c): keep the metric, scale it
            factors[:] = factors[0]
    new_angles = angles.copy()
    if system in ("monoclinic", "triclinic"):
        free = np.abs(angles - 90.0) > 1e-6 if system == "monoclinic" else np.ones(3, bool)
        new_angles = np.where(free, angles + rng.normal(0.0, angle_deg, 3), angles)
        new_angles = np.clip(new_angles, 60.0, 120.0)
    if np.allclose(new_angles, angles):
        return lattice_A * factors[:, None]  # same orientation: only the lengths change
    return lattice_from_parameters(lengths * factors, new_angles)


def substituted_numbers(atomic_numbers: np.ndarray, elements: list[int], rng: np.random.Generator) -> np.ndarray:
    """The parent's species mapped one-to-one onto distinct elements drawn from `elements`."""
    species = np.unique(atomic_numbers)
    if len(species) > len(elements):
        raise ValueError(f"{len(species)} species cannot map one-to-one onto {len(elements)} elements")
    new = rng.choice(np.asarray(elements), size=len(species), replace=False)
    return new[np.searchsorted(species, atomic_numbers)]


def crystal_variants(parent: Crystal, n_variants: int, rng: np.random.Generator, elements: list[int] | None = None,
                     strain: float = 0.03, angle_deg: float = 2.0) -> list[Crystal]:
    """Up to n_variants crystals of the parent's space group: other elements on its sites and a strained cell.

    Ids are '<parent id>-v<k>'; a variant spglib places in another group is dropped.
    """
    elements = VARIANT_ELEMENTS if elements is None else elements
    found = []
    for k in range(n_variants):
        lattice = strained_lattice(parent.lattice_A, parent.space_group, strain, angle_deg, rng)
        numbers = substituted_numbers(parent.atomic_numbers, elements, rng)
        group, orbits = spglib_symmetry(lattice, parent.frac_coords, numbers)
        if group != parent.space_group:
            continue
        found.append(Crystal(f"{parent.structure_id}-v{k}", f"variant of {parent.structure_id}", parent.space_group,
                             lattice, parent.frac_coords, numbers, parent.occupancies, orbits))
    return found


def parent_id(structure_id: str) -> str:
    """The generated parent a crystal descends from ('gen-sg14-0-7-v3' -> 'gen-sg14-0-7'); itself otherwise."""
    head, _, tail = structure_id.rpartition("-v")
    return head if head and tail.isdigit() else structure_id


def generate_family_chunk(task: tuple) -> list[Crystal]:
    """Dask-friendly: (parent generation task, n_variants, strain, angle_deg) -> each parent then its variants.

    Variants are seeded by (seed, space group, parent index), so a rerun or another worker gives the same ones.
    """
    (space_group, indices, elements, max_atoms, max_species, seed), n_variants, strain, angle_deg = task
    crystals = []
    for index in indices:
        parent = generate_crystal(space_group, elements, max_atoms, max_species, seed, index)
        if parent is None:
            continue
        rng = np.random.default_rng([seed, space_group, index, 7])
        crystals += [parent, *crystal_variants(parent, n_variants, rng, strain=strain, angle_deg=angle_deg)]
    return crystals
