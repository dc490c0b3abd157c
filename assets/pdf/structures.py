"""Crystal structures for the PDF pipeline: generated with pyxtal or read from CIF files.

A `Crystal` is plain arrays (lattice rows in Angstrom, fractional coordinates,
atomic numbers, site occupancies) plus its space-group label, so the PDF
calculator needs neither pyxtal nor pymatgen. Labels always come from spglib:
for generated crystals directly, for CIFs through pymatgen's SpacegroupAnalyzer.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from resources.datapaths import Rejection, atomic_write_bytes

log = logging.getLogger(__name__)

# The eight most common space groups of the Liu et al. (2019) library.
DEFAULT_SPACE_GROUPS = [2, 14, 15, 62, 139, 194, 225, 227]
DEFAULT_ELEMENTS = ["Li", "O", "Na", "Mg", "Al", "Si", "S", "Cl", "K", "Ca", "Ti", "Fe", "Ni", "Cu", "Zn", "Sr"]
SYMPREC_A = 0.01  # spglib tolerance in Angstrom


@dataclass(frozen=True)
class Crystal:
    structure_id: str
    source: str
    space_group: int
    lattice_A: np.ndarray  # (3, 3), rows are the lattice vectors a, b, c
    frac_coords: np.ndarray  # (n_sites, 3)
    atomic_numbers: np.ndarray  # (n_sites,)
    occupancies: np.ndarray  # (n_sites,), 1 for ordered sites
    # (n_sites,) symmetry orbit of each site (spglib's equivalent atoms; sites with one species
    # and one orbit have the same surroundings); None when unknown. Spares the PDF calculator work.
    orbits: np.ndarray | None = None

    @property
    def volume_A3(self) -> float:
        return float(abs(np.linalg.det(self.lattice_A)))

    @property
    def formula(self) -> str:
        counts = pd.Series(self.occupancies, index=self.atomic_numbers).groupby(level=0).sum()
        return " ".join(f"Z{int(z)}:{n:g}" for z, n in counts.items())


@functools.lru_cache(maxsize=256)
def space_group_symbol(number: int) -> str:
    """Short Hermann-Mauguin symbol of an international space-group number (225 -> 'Fm-3m', 14 -> 'P2_1/c').

    From spglib's table: the standard setting is the first Hall number of the group.
    """
    import spglib

    if not 1 <= int(number) <= 230:
        raise ValueError(f"space-group number must be 1..230, not {number}")
    for hall in range(1, 531):
        found = spglib.get_spacegroup_type(hall)
        if found.number == int(number):
            return found.international_short
    raise ValueError(f"spglib has no space group {number}")  # pragma: no cover


def space_group_label(number: int) -> str:
    """'225 Fm-3m': the number and its Hermann-Mauguin symbol, for tables, figures and metadata."""
    return f"{int(number)} {space_group_symbol(number)}"


def spglib_symmetry(lattice_A, frac_coords, atomic_numbers,
                    symprec: float = SYMPREC_A) -> tuple[int | None, np.ndarray | None]:
    """(international space-group number, symmetry orbit of each site) found by spglib; (None, None) if none."""
    import spglib

    dataset = spglib.get_symmetry_dataset(
        (np.asarray(lattice_A), np.asarray(frac_coords), np.asarray(atomic_numbers)), symprec=symprec
    )
    if dataset is None:
        return None, None
    return int(dataset.number), np.asarray(dataset.equivalent_atoms, dtype=int)


def sample_composition(group, n_species: int, max_atoms: int, rng: np.random.Generator) -> list[int] | None:
    """Atoms per species (conventional cell) that fit the group's Wyckoff multiplicities."""
    multiplicities = sorted({w.multiplicity for w in group.Wyckoff_positions if w.multiplicity <= max_atoms})
    for _ in range(50):
        counts = [int(sum(rng.choice(multiplicities, size=rng.integers(1, 3)))) for _ in range(n_species)]
        if sum(counts) <= max_atoms and group.check_compatible(counts)[0]:
            return counts
    return None


LATTICE_POINTS = {"P": 1, "A": 2, "B": 2, "C": 2, "I": 2, "R": 3, "F": 4}  # per conventional cell, by centring


def generate_crystal(space_group: int, elements: list[str], max_atoms: int, max_species: int, seed: int,
                     index: int, max_tries: int = 20) -> Crystal | None:
    """One random symmetric crystal whose spglib space group is the requested one (None if none found).

    max_atoms counts the primitive cell: a centred conventional cell holds up to max_atoms per lattice point
    (a spinel, 14 atoms primitive, is 56 in its F-centred cell). Seeded by (seed, space_group, index), so a
    rerun or another worker gives the same crystal.
    """
    from pyxtal import pyxtal
    from pyxtal.symmetry import Group

    group = Group(space_group)
    max_atoms = max_atoms * LATTICE_POINTS[group.symbol[0]]
    rng = np.random.default_rng([seed, space_group, index])
    for _ in range(max_tries):
        n_species = int(rng.integers(1, min(max_species, len(elements)) + 1))
        species = [str(name) for name in rng.choice(elements, size=n_species, replace=False)]
        counts = sample_composition(group, n_species, max_atoms, rng)
        if counts is None:
            continue
        crystal = pyxtal()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                crystal.from_random(3, space_group, species, counts, random_state=int(rng.integers(2**31)))
            except Exception as error:  # pyxtal raises assorted errors for unlucky draws; draw again
                log.debug("pyxtal failed for %s %s: %s", space_group, counts, error)
                continue
        if not crystal.valid:
            continue
        structure = crystal.to_pymatgen()
        lattice = np.array(structure.lattice.matrix)
        frac = np.array(structure.frac_coords)
        numbers = np.array([site.specie.Z for site in structure])
        # Random coordinates can land on higher symmetry; keep only crystals spglib agrees with.
        found, orbits = spglib_symmetry(lattice, frac, numbers)
        if found != space_group:
            continue
        return Crystal(f"gen-sg{space_group}-{seed}-{index}", "pyxtal", space_group, lattice, frac,
                       numbers, np.ones(len(numbers)), orbits)
    return None


def generate_chunk(task: tuple) -> list[Crystal]:
    """Dask-friendly: (space_group, indices, elements, max_atoms, max_species, seed) -> crystals found."""
    space_group, indices, elements, max_atoms, max_species, seed = task
    found = (generate_crystal(space_group, elements, max_atoms, max_species, seed, index) for index in indices)
    return [crystal for crystal in found if crystal is not None]


def generation_tasks(space_groups: list[int], per_group: int, elements: list[str], max_atoms: int,
                     max_species: int, seed: int, chunk_size: int) -> list[tuple]:
    return [
        (group, list(range(start, min(start + chunk_size, per_group))), list(elements), max_atoms, max_species, seed)
        for group in space_groups
        for start in range(0, per_group, chunk_size)
    ]


GENERATOR_VERSION = 2  # bump when generate_crystal changes what a task yields: old cache entries are then ignored


def chunk_cache_path(folder: Path, task: tuple) -> Path:
    """Where a generation task's crystals are cached: named by the digest of the task's settings."""
    key = json.dumps([GENERATOR_VERSION, *task], sort_keys=True, default=str)
    return Path(folder) / f"chunk-{hashlib.sha256(key.encode()).hexdigest()[:20]}.parquet"


def cached_chunks(folder: Path, tasks: list[tuple]) -> tuple[dict[int, list[Crystal]], list[int]]:
    """({task index: crystals} read from the cache, indices of the tasks still to generate)."""
    found, missing = {}, []
    for i, task in enumerate(tasks):
        path = chunk_cache_path(folder, task)
        if path.is_file():
            found[i] = frame_to_crystals(pd.read_parquet(path))
        else:
            missing.append(i)
    return found, missing


def cache_chunk(folder: Path, task: tuple, crystals: list[Crystal]) -> Path:
    """Write one task's crystals to the cache (atomically: a killed run leaves no half file)."""
    buffer = io.BytesIO()
    crystals_to_frame(crystals).to_parquet(buffer)
    return atomic_write_bytes(chunk_cache_path(folder, task), buffer.getvalue())


def read_cif(path: Path, symprec: float = SYMPREC_A) -> Crystal:
    """A CIF as a Crystal; disordered sites become co-located partial sites. Raises ValueError."""
    from pymatgen.io.cif import CifParser
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            structures = CifParser(str(path)).parse_structures(primitive=False)
        except Exception as error:
            raise ValueError(f"CIF does not parse: {error}") from error
    if not structures:
        raise ValueError("CIF holds no structure")
    structure = structures[0]
    try:
        dataset = SpacegroupAnalyzer(structure, symprec=symprec).get_symmetry_dataset()
    except Exception as error:
        raise ValueError(f"spglib could not determine the symmetry: {error}") from error
    frac, numbers, occupancies, site_orbits = [], [], [], []
    for site, orbit in zip(structure, dataset.equivalent_atoms):
        for species, occupancy in site.species.items():
            frac.append(site.frac_coords)
            numbers.append(species.Z)
            occupancies.append(occupancy)
            site_orbits.append((int(orbit), species.Z))  # a disordered site's species are separate orbits
    orbits = np.unique(np.array(site_orbits), axis=0, return_inverse=True)[1].reshape(-1)
    return Crystal(f"cif-{path.stem}", str(path), int(dataset.number), np.array(structure.lattice.matrix),
                   np.array(frac), np.array(numbers), np.array(occupancies, dtype=float), orbits)


def read_cif_folder(folder: Path, allowed_groups: list[int] | None) -> tuple[list[Crystal], list[Rejection]]:
    """Every *.cif under folder; unreadable ones (or outside allowed_groups) become rejections."""
    crystals, rejections = [], []
    for path in sorted(Path(folder).glob("*.cif")):
        try:
            crystal = read_cif(path)
        except ValueError as error:
            rejections.append(Rejection(str(path), None, str(error)))
            continue
        if allowed_groups and crystal.space_group not in allowed_groups:
            rejections.append(Rejection(str(path), None, f"space group {crystal.space_group} is not one of "
                                                          f"the configured classes {allowed_groups}"))
            continue
        crystals.append(crystal)
    return crystals, rejections


def crystals_to_frame(crystals: list[Crystal]) -> pd.DataFrame:
    """One row per crystal; arrays as flat lists (Parquet list columns)."""
    return pd.DataFrame(
        {
            "structure_id": [c.structure_id for c in crystals],
            "source": [c.source for c in crystals],
            "space_group": [c.space_group for c in crystals],
            "formula": [c.formula for c in crystals],
            "n_sites": [len(c.atomic_numbers) for c in crystals],
            "volume_A3": [c.volume_A3 for c in crystals],
            "lattice_A": [c.lattice_A.ravel().tolist() for c in crystals],
            "frac_coords": [c.frac_coords.ravel().tolist() for c in crystals],
            "atomic_numbers": [c.atomic_numbers.astype(int).tolist() for c in crystals],
            "occupancies": [c.occupancies.astype(float).tolist() for c in crystals],
            "orbits": [[] if c.orbits is None else c.orbits.astype(int).tolist() for c in crystals],  # [] unknown
        }
    )


def frame_to_crystals(frame: pd.DataFrame) -> list[Crystal]:
    return [
        Crystal(
            row.structure_id, row.source, int(row.space_group),
            np.asarray(row.lattice_A, dtype=float).reshape(3, 3),
            np.asarray(row.frac_coords, dtype=float).reshape(-1, 3),
            np.asarray(row.atomic_numbers, dtype=int),
            np.asarray(row.occupancies, dtype=float),
            _orbits_or_none(getattr(row, "orbits", None)),
        )
        for row in frame.itertuples(index=False)
    ]


def _orbits_or_none(stored) -> np.ndarray | None:
    """Orbits from a stored row: absent (older artefacts) or empty means unknown."""
    return None if stored is None or len(stored) == 0 else np.asarray(stored, dtype=int)


def cubic_crystal(structure_id: str, a_A: float, basis_frac, atomic_numbers, space_group: int) -> Crystal:
    """A cubic cell of edge a_A with the given basis (for known reference structures)."""
    basis = np.asarray(basis_frac, dtype=float)
    lattice, numbers = np.eye(3) * a_A, np.asarray(atomic_numbers, dtype=int)
    return Crystal(structure_id, "reference", space_group, lattice, basis, numbers, np.ones(len(basis)),
                   spglib_symmetry(lattice, basis, numbers)[1])


FCC_BASIS = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]


def rock_salt(a_A: float, cation_z: int, anion_z: int, structure_id: str = "rock-salt") -> Crystal:
    anion_sites = (np.array(FCC_BASIS) + 0.5) % 1.0  # octahedral holes of the fcc cation lattice
    basis = np.vstack([FCC_BASIS, anion_sites])
    return cubic_crystal(structure_id, a_A, basis, [cation_z] * 4 + [anion_z] * 4, 225)


def diamond(a_A: float, z: int, structure_id: str = "diamond") -> Crystal:
    basis = np.vstack([FCC_BASIS, np.array(FCC_BASIS) + 0.25])  # second fcc lattice at (1/4, 1/4, 1/4)
    return cubic_crystal(structure_id, a_A, basis, [z] * 8, 227)


def hexagonal_close_packed(a_A: float, c_A: float, z: int, structure_id: str = "hcp") -> Crystal:
    lattice = np.array([[a_A, 0, 0], [-a_A / 2, a_A * np.sqrt(3) / 2, 0], [0, 0, c_A]])
    frac = np.array([[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]])
    return Crystal(structure_id, "reference", 194, lattice, frac, np.array([z, z]), np.ones(2), np.zeros(2, int))
