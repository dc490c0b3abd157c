"""Model-ready PDF profiles: G(r) on the published grid, min-max normalised, augmented over instrument conditions.

Augmentation in the spirit of Lan et al. (J. Appl. Cryst. 55, 2022), over what varies between
measured PDFs: every copy of a structure draws its own Qmax, Qdamp, Uiso, isotropic lattice
scale, X-ray or neutron weighting, a spherical-nanoparticle envelope (diameter D), a cut of
the r range (zero beyond r_cut, as a shorter measurement) and Gaussian noise on the
normalised profile. Copy 0 of each structure can stay at the library's parameters.

Spherical-particle envelope (Kodama et al., Acta Cryst. A 62, 444, 2006; PDFgui's spdiameter):
    f(r) = 1 - 3 r / (2 D) + r^3 / (2 D^3) for r <= D, 0 beyond; G_np(r) = f(r) G(r).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from assets.pdf.calculator import MODEL_GRID_A, ArrayBackend, PdfSettings, compute_pdfs, normalise_profiles
from assets.pdf.structures import Crystal, space_group_label

QMAX_STEP_INV_A = 0.5  # drawn Qmax values are rounded to this step: few distinct calculations per run


@dataclass(frozen=True)
class Augmentation:
    """Per-copy draws; a range (low, high) is uniform, None keeps the settings' value for every copy."""

    copies_per_structure: int = 1
    qmax_range_inv_A: tuple[float, float] | None = None
    qdamp_range_inv_A: tuple[float, float] | None = None
    uiso_range_A2: tuple[float, float] | None = None
    lattice_jitter: float = 0.0  # standard deviation of the isotropic lattice scale (relative)
    noise_std_range: tuple[float, float] = (0.0, 0.0)  # Gaussian noise on the normalised profile
    neutron_share: float = 0.0  # share of copies with neutron scattering lengths (else the settings' weighting)
    nanoparticle_share: float = 0.0  # share of copies with a spherical-particle envelope
    diameter_range_A: tuple[float, float] = (20.0, 100.0)
    r_cut_share: float = 0.0  # share of copies cut at r_cut (zero beyond)
    r_cut_range_A: tuple[float, float] = (15.0, 30.0)
    clean_first_copy: bool = True  # copy 0 of every structure at the settings (no draw, no noise)


def spherical_envelope(r_A: np.ndarray, diameter_A) -> np.ndarray:
    """f(r) of a sphere of diameter D (rows: one per diameter; inf gives 1 everywhere)."""
    d = np.asarray(diameter_A, dtype=float).reshape(-1, 1)
    x = np.asarray(r_A, dtype=float)[None, :] / d
    return np.where(x <= 1.0, 1.0 - 1.5 * x + 0.5 * x**3, 0.0)


def draw_conditions(n_structures: int, settings: PdfSettings, augmentation: Augmentation,
                    rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-copy conditions for n_structures x copies_per_structure profiles (structure-major order)."""
    copies = augmentation.copies_per_structure
    n = n_structures * copies
    drawn = np.ones(n, dtype=bool)
    if augmentation.clean_first_copy and copies > 1:
        drawn[::copies] = False

    def uniform(span, default):
        if span is None:
            return np.full(n, float(default))
        return np.where(drawn, rng.uniform(span[0], span[1], n), float(default))

    def chosen(share):
        return drawn & (rng.random(n) < share)

    qmax = uniform(augmentation.qmax_range_inv_A, settings.qmax_inv_A)
    if augmentation.qmax_range_inv_A is not None:
        low, high = augmentation.qmax_range_inv_A
        qmax = np.clip(np.round(qmax / QMAX_STEP_INV_A) * QMAX_STEP_INV_A, low, high)
    neutron = chosen(augmentation.neutron_share)
    nanoparticle = chosen(augmentation.nanoparticle_share)
    cut = chosen(augmentation.r_cut_share)
    scale = 1 + rng.normal(0.0, augmentation.lattice_jitter, n) if augmentation.lattice_jitter > 0 else np.ones(n)
    return {
        "qmax_inv_A": qmax,
        "qdamp_inv_A": uniform(augmentation.qdamp_range_inv_A, settings.qdamp_inv_A),
        "uiso_A2": uniform(augmentation.uiso_range_A2, settings.uiso_A2),
        "lattice_scale": np.where(drawn, scale, 1.0),
        "weighting": np.where(neutron, "neutron", settings.weighting),
        "diameter_A": np.where(nanoparticle, rng.uniform(*augmentation.diameter_range_A, n), np.inf),
        "r_cut_A": np.where(cut, rng.uniform(*augmentation.r_cut_range_A, n), np.inf),
        "noise_std": np.where(drawn, rng.uniform(*augmentation.noise_std_range, n), 0.0),
    }


def add_noise(profiles: np.ndarray, noise_std, rng: np.random.Generator, measured: np.ndarray | None = None) -> np.ndarray:
    """Gaussian noise (one std per row, or one for all) on normalised profiles, normalised again.

    measured: where the profile holds data (True); beyond a cut r range stays noise-free, as in a
    measured file that simply ends there.
    """
    std = np.broadcast_to(np.asarray(noise_std, dtype=float).reshape(-1, 1), (len(profiles), 1))
    if not np.any(std > 0):
        return profiles
    noise = rng.normal(0.0, 1.0, profiles.shape) * std
    if measured is not None:
        noise = np.where(measured, noise, 0.0)
    noisy = normalise_profiles(profiles + noise)
    return np.where(std > 0, noisy, profiles)


def conditioned_pdfs(crystals: list[Crystal], settings: PdfSettings, conditions: dict[str, np.ndarray],
                     backend: ArrayBackend | None = None, grid_A: np.ndarray = MODEL_GRID_A) -> np.ndarray:
    """G(r) of each crystal (one per row of conditions) at its own Qmax, weighting, Qdamp, Uiso, scale,
    particle envelope and r cut; one compute_pdfs call per (Qmax, weighting) pair."""
    pdfs = np.zeros((len(crystals), len(grid_A)))
    keys = list(zip(conditions["qmax_inv_A"].tolist(), conditions["weighting"].tolist()))
    for qmax, weighting in sorted(set(keys)):
        rows = np.array([i for i, key in enumerate(keys) if key == (qmax, weighting)])
        pdfs[rows] = compute_pdfs([crystals[i] for i in rows], replace(settings, qmax_inv_A=qmax, weighting=weighting),
                                  grid_A, uiso_A2=conditions["uiso_A2"][rows],
                                  qdamp_inv_A=conditions["qdamp_inv_A"][rows],
                                  lattice_scale=conditions["lattice_scale"][rows], backend=backend)
    pdfs *= spherical_envelope(grid_A, conditions["diameter_A"])
    return np.where(grid_A[None, :] <= conditions["r_cut_A"][:, None], pdfs, 0.0)


def profile_set(crystals: list[Crystal], settings: PdfSettings, augmentation: Augmentation,
                rng: np.random.Generator, backend: ArrayBackend | None = None, chunk_size: int = 2000,
                progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """Normalised profiles for every crystal and copy: r_A, profiles, space_group, structure_id, and the
    drawn conditions of each profile (qmax_inv_A, qdamp_inv_A, uiso_A2, weighting, diameter_A, r_cut_A, ...).

    Computed chunk_size crystals at a time; progress(n_crystals_done) after each chunk.
    """
    copies = [crystal for crystal in crystals for _ in range(augmentation.copies_per_structure)]
    conditions = draw_conditions(len(crystals), settings, augmentation, rng)
    pdfs = np.zeros((len(copies), len(MODEL_GRID_A)))
    step = max(chunk_size, 1) * augmentation.copies_per_structure
    for start in range(0, len(copies), step):
        rows = slice(start, start + step)
        pdfs[rows] = conditioned_pdfs(copies[rows], settings, {k: v[rows] for k, v in conditions.items()}, backend)
        if progress is not None:
            progress(min(start + step, len(copies)) // augmentation.copies_per_structure)
    measured = MODEL_GRID_A[None, :] <= conditions["r_cut_A"][:, None]
    profiles = add_noise(normalise_profiles(pdfs), conditions["noise_std"], rng, measured)
    return {
        "r_A": MODEL_GRID_A.copy(),
        "profiles": profiles.astype(np.float32),
        "space_group": np.array([c.space_group for c in copies], dtype=np.int64),
        "structure_id": np.array([c.structure_id for c in copies], dtype=str),
        **{f"condition_{key}": value for key, value in conditions.items()},
    }


def class_mean_figure(r_A: np.ndarray, profiles: np.ndarray, space_groups: np.ndarray, new_figure):
    """Mean normalised profile of each space group, stacked with offsets, labelled by number and symbol."""
    groups = np.unique(space_groups)
    fig, axes = new_figure(size=(7.0, 1.0 + 0.6 * len(groups)))
    ax = axes[0][0]
    for offset, group in enumerate(groups):
        ax.plot(r_A, profiles[space_groups == group].mean(axis=0) + offset, lw=1.2)
        ax.text(r_A[-1], offset + 0.35, space_group_label(int(group)), fontsize=10, ha="right")
    ax.set_xlabel("r (Å)", fontsize=11)
    ax.set_ylabel("normalised G(r) + offset", fontsize=11)
    ax.tick_params(labelsize=10)
    return fig
