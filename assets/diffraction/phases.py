"""Crystal phases from CIF files and orientation sampling per point group (orix).

A phase name is the stem of its CIF: `crystal_models/Pb.cif` is phase "Pb". User
CIFs dropped in <data root>/raw/diffraction/cif/ take precedence over the shipped
ones, so a study can swap a structure without editing the repository.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from resources.datapaths import raw_dir

CRYSTAL_MODELS_DIR = Path(__file__).resolve().parents[2] / "crystal_models"


class PhaseError(ValueError):
    """A CIF that cannot be found or read; the message names the file."""


def cif_path(name: str) -> Path:
    """The CIF of phase `name`: a user drop in raw/diffraction/cif/ first, then crystal_models/."""
    for folder in (raw_dir("diffraction") / "cif", CRYSTAL_MODELS_DIR):
        candidate = folder / f"{name}.cif"
        if candidate.is_file():
            return candidate
    raise PhaseError(f"phase '{name}': no {name}.cif in {raw_dir('diffraction') / 'cif'} or {CRYSTAL_MODELS_DIR}")


def available_phases() -> list[str]:
    """Names of every phase with a CIF (user drops and shipped models)."""
    folders = (raw_dir("diffraction") / "cif", CRYSTAL_MODELS_DIR)
    return sorted({path.stem for folder in folders if folder.is_dir() for path in folder.glob("*.cif")})


def load_phase(name: str):
    """orix Phase (with its diffpy structure) of phase `name`; PhaseError naming the file if unreadable."""
    from orix.crystal_map import Phase

    path = cif_path(name)
    try:
        phase = Phase.from_cif(str(path))
    except Exception as error:  # diffpy raises many types for malformed CIFs
        raise PhaseError(f"{path}: not a readable CIF ({type(error).__name__}: {error})") from error
    if len(phase.structure) == 0:
        raise PhaseError(f"{path}: the CIF defines no atoms (expected an _atom_site loop)")
    if phase.space_group is None:
        raise PhaseError(f"{path}: no space group (expected _symmetry_space_group_name_H-M)")
    phase.name = name
    return phase


def sample_orientations(phase, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` orientations uniform in SO(3), mapped into the phase's point-group fundamental zone.

    Returns unit quaternions (count, 4) in orix's (a, b, c, d) convention. A uniform
    quaternion is a normalised 4D Gaussian sample (Shoemake 1992); using our own
    generator keeps the sample reproducible from the request seed.
    """
    from orix.quaternion import Orientation

    quaternions = rng.standard_normal((count, 4))
    quaternions /= np.linalg.norm(quaternions, axis=1, keepdims=True)
    orientations = Orientation(quaternions, symmetry=phase.point_group)
    return orientations.reduce().data
