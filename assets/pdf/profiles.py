"""Model-ready PDF profiles: G(r) on the published grid, min-max normalised, optionally augmented.

Augmentation in the spirit of Lan et al. (J. Appl. Cryst. 55, 2022): every copy of a
structure draws its own Qdamp, Uiso and isotropic lattice scale, and Gaussian noise
is added to the normalised profile (then normalised again).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from assets.pdf.calculator import MODEL_GRID_A, ArrayBackend, PdfSettings, compute_pdfs, normalise_profiles
from assets.pdf.structures import Crystal


@dataclass(frozen=True)
class Augmentation:
    copies_per_structure: int = 1
    qdamp_jitter: float = 0.0  # relative half-width of a uniform draw around the setting
    uiso_jitter: float = 0.0  # relative half-width of a uniform draw around the setting
    lattice_jitter: float = 0.0  # standard deviation of the isotropic lattice scale (relative)
    noise_std: float = 0.0  # Gaussian noise on the normalised profile


def add_noise(profiles: np.ndarray, noise_std: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise on normalised profiles, normalised again (noise_std 0: unchanged)."""
    if noise_std <= 0:
        return profiles
    return normalise_profiles(profiles + rng.normal(0.0, noise_std, profiles.shape))


def profile_set(crystals: list[Crystal], settings: PdfSettings, augmentation: Augmentation,
                rng: np.random.Generator, backend: ArrayBackend | None = None) -> dict[str, np.ndarray]:
    """Normalised profiles for every crystal and copy: arrays r_A, profiles, space_group, structure_id."""
    copies = [crystal for crystal in crystals for _ in range(augmentation.copies_per_structure)]
    n = len(copies)

    def jitter(centre: float, relative: float) -> np.ndarray:
        return centre * (1 + rng.uniform(-relative, relative, n)) if relative > 0 else np.full(n, centre)

    lattice_scale = 1 + rng.normal(0.0, augmentation.lattice_jitter, n) if augmentation.lattice_jitter > 0 else None
    pdfs = compute_pdfs(copies, settings, MODEL_GRID_A, uiso_A2=jitter(settings.uiso_A2, augmentation.uiso_jitter),
                        qdamp_inv_A=jitter(settings.qdamp_inv_A, augmentation.qdamp_jitter),
                        lattice_scale=lattice_scale, backend=backend)
    return {
        "r_A": MODEL_GRID_A.copy(),
        "profiles": add_noise(normalise_profiles(pdfs), augmentation.noise_std, rng).astype(np.float32),
        "space_group": np.array([c.space_group for c in copies], dtype=np.int64),
        "structure_id": np.array([c.structure_id for c in copies], dtype=str),
    }


def class_mean_figure(r_A: np.ndarray, profiles: np.ndarray, space_groups: np.ndarray, new_figure):
    """Mean normalised profile of each space group, stacked with offsets."""
    fig, axes = new_figure(size=(6.0, 5.0))
    ax = axes[0][0]
    for offset, group in enumerate(np.unique(space_groups)):
        ax.plot(r_A, profiles[space_groups == group].mean(axis=0) + offset, lw=1)
        ax.text(r_A[-1], offset + 0.3, f"sg {group}", fontsize=7, ha="right")
    ax.set_xlabel("r (A)")
    ax.set_ylabel("normalised G(r) + offset")
    return fig
