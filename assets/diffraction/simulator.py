"""Vectorised kinematic electron diffraction: 1D radial profiles for batches of orientations.

Reflections and their structure factors are computed once per phase with diffsims'
own crystallography (`DiffractingVector.from_min_dspacing`,
`get_kinematical_intensities`); orientations are then processed as array
operations. The geometry is diffsims' `SimulationGenerator.get_intersecting_reflections`
without precession: a reflection g, rotated, is excited when its distance s to the
Ewald sphere (radius 1/wavelength) is below the maximum excitation error, and its
intensity is |F|^2 times the Lorentzian rel-rod factor 1 / (1 + (pi s / w)^2).

The 1D profile needs only each rotated reflection's z (beam) component: rotation
preserves |g|, so its in-plane radius is sqrt(|g|^2 - z^2). One matrix product
(reflections x beam directions) therefore gives every spot of every pattern. Each
spot is split linearly between its two neighbouring pixel bins and the profile is
blurred with a Gaussian, which is what azimuthally integrating (summing) a
rendered pattern with Gaussian spots gives.

Units: reciprocal lengths in 1/Angstrom, wavelengths in Angstrom, radii in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d


@dataclass(frozen=True)
class Reflections:
    """Reflections of one phase inside a reciprocal radius, computed once per phase."""

    hkl: np.ndarray  # (n, 3) Miller indices
    xyz_inv_A: np.ndarray  # (n, 3) Cartesian reciprocal vectors of the unrotated crystal
    intensity: np.ndarray  # (n,) kinematic |F|^2

    @property
    def g_squared(self) -> np.ndarray:
        return np.einsum("ij,ij->i", self.xyz_inv_A, self.xyz_inv_A)


@dataclass(frozen=True)
class Geometry:
    """Beam and rel-rod settings shared by every pattern of a simulation."""

    beam_energy_keV: float = 200.0
    max_excitation_error_inv_A: float = 0.02
    relrod_length_inv_A: float = 0.02  # shape-factor width w of the Lorentzian

    @property
    def wavelength_A(self) -> float:
        from diffsims.utils.sim_utils import get_electron_wavelength

        return float(get_electron_wavelength(self.beam_energy_keV))


def phase_reflections(phase, reciprocal_radius_inv_A: float) -> Reflections:
    """All non-zero reflections with |g| <= reciprocal_radius and non-vanishing |F|^2 (diffsims)."""
    from diffsims.crystallography._diffracting_vector import DiffractingVector
    from diffsims.utils.sim_utils import get_kinematical_intensities

    from assets.diffraction.phases import PhaseError

    try:
        vectors = DiffractingVector.from_min_dspacing(
            phase, min_dspacing=1.0 / reciprocal_radius_inv_A, include_zero_vector=False
        )
    except ValueError as error:  # orix: no hkl at all within reach
        raise PhaseError(
            f"phase '{phase.name}': no reflection within the reciprocal radius {reciprocal_radius_inv_A:.4f} 1/A "
            "(expected radial_bins x calibration to reach the first reflection)"
        ) from error
    intensity = get_kinematical_intensities(phase.structure, vectors.hkl, vectors.gspacing, prefactor=1.0)
    # Systematic absences carry |F|^2 ~ 1e-28: dropping them halves the work for fcc.
    present = intensity > intensity.max() * 1e-9
    return Reflections(
        hkl=np.asarray(vectors.hkl[present]).round().astype(int),
        xyz_inv_A=np.asarray(vectors.data[present], dtype=float),
        intensity=np.asarray(intensity[present], dtype=float),
    )


def rotation_matrices(quaternions: np.ndarray) -> np.ndarray:
    """(r, 3, 3) matrices M with rotated g = M @ g, as diffsims applies a rotation (`~rotation * g`)."""
    from orix.quaternion import Rotation

    return (~Rotation(np.asarray(quaternions))).to_matrix().reshape(-1, 3, 3)


def relrod_factor(excitation_error_inv_A: np.ndarray, width_inv_A: float) -> np.ndarray:
    """diffsims' Lorentzian shape factor, simplified: 1 / (1 + (pi s / w)^2)."""
    return 1.0 / (1.0 + (np.pi * excitation_error_inv_A / width_inv_A) ** 2)


def excitation_errors(radius_inv_A, z_inv_A, wavelength_A: float):
    """Distance along z from each spot to the Ewald sphere through the origin (1/A); numpy or torch arrays."""
    k = 1.0 / wavelength_A
    z_sphere = k - (k**2 - radius_inv_A**2).clip(min=0.0) ** 0.5
    return z_sphere - z_inv_A


def spot_lists(reflections: Reflections, quaternions: np.ndarray, geometry: Geometry):
    """Excited spots per orientation, as diffsims' calculate_diffraction2d gives them.

    Returns a list with, per orientation, (xy_inv_A (k, 2), intensity (k,), hkl (k, 3)).
    """
    rotated = np.einsum("rij,nj->rni", rotation_matrices(quaternions), reflections.xyz_inv_A)
    radius = np.hypot(rotated[..., 0], rotated[..., 1])
    error = excitation_errors(radius, rotated[..., 2], geometry.wavelength_A)
    excited = np.abs(error) < geometry.max_excitation_error_inv_A
    intensity = reflections.intensity * relrod_factor(error, geometry.relrod_length_inv_A)
    return [
        (rotated[row][mask, :2], intensity[row][mask], reflections.hkl[mask]) for row, mask in enumerate(excited)
    ]


def excited_spots(
    reflections: Reflections,
    beam_directions: np.ndarray,
    lattice_scale: np.ndarray,
    geometry: Geometry,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Excited spots of a batch of patterns as flat arrays (pattern index, in-plane radius 1/A, intensity).

    beam_directions (r, 3): third rows of the rotation matrices (the z row of M @ g).
    lattice_scale (r,): real-space lattice scaling per pattern (reciprocal vectors shrink by 1/scale).
    """
    inverse_scale = 1.0 / lattice_scale
    # Cheap pre-selection in float32: a spot can only be excited when |z| is below the tolerance
    # plus the sphere's height at the largest radius. Only those few percent are then computed
    # exactly (float64), so the wide (patterns x reflections) passes stay memory-light.
    k = 1.0 / geometry.wavelength_A
    largest_radius = np.sqrt(reflections.g_squared.max()) * inverse_scale.max()
    z_bound = geometry.max_excitation_error_inv_A + k - np.sqrt(k**2 - min(largest_radius, k) ** 2)
    z_scaled_bound = (z_bound * lattice_scale).astype(np.float32)[:, None]
    z_approx = beam_directions.astype(np.float32) @ reflections.xyz_inv_A.T.astype(np.float32)
    rows, cols = np.nonzero(np.abs(z_approx) < z_scaled_bound)
    z = np.einsum("ij,ij->i", beam_directions[rows], reflections.xyz_inv_A[cols]) * inverse_scale[rows]
    radius = np.sqrt(np.maximum(reflections.g_squared[cols] * inverse_scale[rows] ** 2 - z**2, 0.0))
    error = excitation_errors(radius, z, geometry.wavelength_A)
    excited = np.abs(error) < geometry.max_excitation_error_inv_A
    intensity = reflections.intensity[cols[excited]] * relrod_factor(error[excited], geometry.relrod_length_inv_A)
    return rows[excited], radius[excited], intensity


def drop_brightest_spots(rows: np.ndarray, intensity: np.ndarray, drop_counts: np.ndarray) -> np.ndarray:
    """Mask keeping all but the `drop_counts[i]` brightest spots of pattern i (saturated / masked spots)."""
    order = np.lexsort((-intensity, rows))
    sorted_rows = rows[order]
    rank = np.arange(len(order)) - np.searchsorted(sorted_rows, sorted_rows, side="left")
    keep = np.empty(len(order), dtype=bool)
    keep[order] = rank >= drop_counts[sorted_rows]
    return keep


def splat_profiles(
    rows: np.ndarray, radius_px: np.ndarray, intensity: np.ndarray, n_patterns: int, n_bins: int, sigma_px: float
) -> np.ndarray:
    """Sum spots into radial pixel bins (linear split between neighbours) and blur; (n_patterns, n_bins)."""
    lower = np.floor(radius_px).astype(np.int64)
    fraction = radius_px - lower
    inside = lower + 1 < n_bins
    rows, lower, fraction, intensity = rows[inside], lower[inside], fraction[inside], intensity[inside]
    flat = rows * n_bins + lower
    size = n_patterns * n_bins
    profile = np.bincount(flat, intensity * (1.0 - fraction), minlength=size)
    profile += np.bincount(flat + 1, intensity * fraction, minlength=size)
    profile = profile.reshape(n_patterns, n_bins)
    # Below a thousandth of a pixel the blur is the identity (and scipy divides by sigma^2).
    return gaussian_filter1d(profile, sigma_px, axis=1, mode="constant") if sigma_px > 1e-3 else profile


def per_pattern(count: int, pixel_size_inv_A, lattice_scale, drop_counts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixel size 1/A, lattice scale, spots to drop) as one value per pattern; None means 1 and 0."""
    pixel_size_inv_A = np.broadcast_to(np.asarray(pixel_size_inv_A, dtype=float), (count,))
    lattice_scale = np.ones(count) if lattice_scale is None else np.asarray(lattice_scale, dtype=float)
    drop_counts = np.zeros(count, dtype=int) if drop_counts is None else np.asarray(drop_counts, dtype=int)
    return pixel_size_inv_A, lattice_scale, drop_counts


def radial_profiles(
    reflections: Reflections,
    quaternions: np.ndarray,
    geometry: Geometry,
    pixel_size_inv_A: np.ndarray | float,
    n_bins: int,
    sigma_px: float,
    lattice_scale: np.ndarray | None = None,
    drop_counts: np.ndarray | None = None,
    batch_size: int = 512,
) -> np.ndarray:
    """Radial profiles (r, n_bins), bin k centred on radius k pixels, each pattern its own pixel size."""
    count = len(quaternions)
    pixel_size_inv_A, lattice_scale, drop_counts = per_pattern(count, pixel_size_inv_A, lattice_scale, drop_counts)
    beam_directions = rotation_matrices(quaternions)[:, 2, :]
    profiles = np.empty((count, n_bins))
    for start in range(0, count, batch_size):
        batch = slice(start, start + batch_size)
        rows, radius, intensity = excited_spots(reflections, beam_directions[batch], lattice_scale[batch], geometry)
        if drop_counts[batch].any():
            keep = drop_brightest_spots(rows, intensity, drop_counts[batch])
            rows, radius, intensity = rows[keep], radius[keep], intensity[keep]
        radius_px = radius / pixel_size_inv_A[batch][rows]
        profiles[batch] = splat_profiles(rows, radius_px, intensity, len(beam_directions[batch]), n_bins, sigma_px)
    return profiles
