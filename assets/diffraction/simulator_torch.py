"""The simulator on torch, for a GPU: simulator.py's physics on dense (pattern x reflection) blocks.

On the CPU, `simulator.excited_spots` first selects the few percent of (pattern,
reflection) pairs that can be excited and computes only those. On a GPU selecting
costs more than computing, so here every pair of a batch is evaluated and the
non-excited ones get zero intensity; the brightest-spot removal is a top-k per
pattern, the binning a scatter-add and the blur a 1D convolution with the kernel
scipy's `gaussian_filter1d` uses (truncated at 4 sigma, zero outside). Float64
throughout, so on the same device it agrees with the numpy path to rounding
(tests/diffraction/test_simulator.py runs it with device="cpu").
"""

from __future__ import annotations

import numpy as np

from assets.diffraction.simulator import (
    Geometry,
    Reflections,
    excitation_errors,
    per_pattern,
    relrod_factor,
    rotation_matrices,
)

SCIPY_GAUSSIAN_TRUNCATE = 4.0  # gaussian_filter1d's default kernel half-width, in sigma


def gaussian_kernel(sigma_px: float) -> np.ndarray:
    """scipy's gaussian_filter1d weights: radius int(4 sigma + 0.5), normalised to sum 1."""
    radius = int(SCIPY_GAUSSIAN_TRUNCATE * sigma_px + 0.5)
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma_px) ** 2)
    return weights / weights.sum()


def _spot_intensities(torch, reflections_xyz, reflections_intensity, g_squared, beams, inverse_scale,
                      geometry: Geometry):
    """(radius 1/A, intensity) of every (pattern, reflection) pair; zero intensity when not excited."""
    z = (beams @ reflections_xyz.T) * inverse_scale[:, None]
    radius = torch.sqrt(torch.clamp(g_squared * inverse_scale[:, None] ** 2 - z**2, min=0.0))
    error = excitation_errors(radius, z, geometry.wavelength_A)
    excited = torch.abs(error) < geometry.max_excitation_error_inv_A
    intensity = reflections_intensity * relrod_factor(error, geometry.relrod_length_inv_A)
    return radius, torch.where(excited, intensity, torch.zeros_like(intensity))


def _drop_brightest(torch, intensity, drop_counts):
    """Zero the drop_counts[i] brightest spots of pattern i."""
    most = int(drop_counts.max())
    if most == 0:
        return intensity
    _, brightest = torch.topk(intensity, min(most, intensity.shape[1]), dim=1)
    ranks = torch.arange(brightest.shape[1], device=intensity.device)
    dropped = ranks[None, :] < drop_counts[:, None]
    return intensity.scatter(1, brightest, torch.where(dropped, 0.0, intensity.gather(1, brightest)))


def _binned_profiles(torch, radius_px, intensity, n_bins: int, sigma_px: float):
    """Spots split linearly between their two neighbouring radial bins, then blurred; (b, n_bins)."""
    count = radius_px.shape[0]
    lower = torch.floor(radius_px)
    fraction = radius_px - lower
    inside = lower + 1 < n_bins
    lower = torch.where(inside, lower, torch.zeros_like(lower)).long()
    intensity = torch.where(inside, intensity, torch.zeros_like(intensity))
    rows = torch.arange(count, device=radius_px.device)[:, None] * n_bins
    profile = torch.zeros(count * n_bins, dtype=intensity.dtype, device=intensity.device)
    profile.index_add_(0, (rows + lower).reshape(-1), (intensity * (1.0 - fraction)).reshape(-1))
    profile.index_add_(0, (rows + lower + 1).reshape(-1), (intensity * fraction).reshape(-1))
    profile = profile.reshape(count, n_bins)
    if sigma_px <= 1e-3:  # as the numpy path: below a thousandth of a pixel the blur is the identity
        return profile
    kernel = torch.as_tensor(gaussian_kernel(sigma_px), dtype=profile.dtype, device=profile.device)
    blurred = torch.nn.functional.conv1d(profile[:, None, :], kernel[None, None, :], padding=len(kernel) // 2)
    return blurred[:, 0, :]


def radial_profiles_torch(
    reflections: Reflections,
    quaternions: np.ndarray,
    geometry: Geometry,
    pixel_size_inv_A: np.ndarray | float,
    n_bins: int,
    sigma_px: float,
    lattice_scale: np.ndarray | None = None,
    drop_counts: np.ndarray | None = None,
    batch_size: int = 512,
    device: str = "cuda",
) -> np.ndarray:
    """simulator.radial_profiles on torch: (r, n_bins), bin k centred on radius k pixels."""
    import torch

    def as_tensor(values, dtype=torch.float64):
        return torch.tensor(np.array(values), dtype=dtype, device=device)  # a copy: inputs may be read-only views

    count = len(quaternions)
    pixel_size, lattice_scale, drop_counts = per_pattern(count, pixel_size_inv_A, lattice_scale, drop_counts)
    pixel_size, inverse_scale = as_tensor(pixel_size), 1.0 / as_tensor(lattice_scale)
    drops = as_tensor(drop_counts, torch.int64)
    beams = as_tensor(rotation_matrices(quaternions)[:, 2, :])
    xyz, spot_intensity = as_tensor(reflections.xyz_inv_A), as_tensor(reflections.intensity)
    g_squared = as_tensor(reflections.g_squared)
    profiles = []
    for start in range(0, count, batch_size):
        batch = slice(start, start + batch_size)
        radius, intensity = _spot_intensities(torch, xyz, spot_intensity, g_squared, beams[batch],
                                              inverse_scale[batch], geometry)
        intensity = _drop_brightest(torch, intensity, drops[batch])
        radius_px = radius / pixel_size[batch][:, None]
        profiles.append(_binned_profiles(torch, radius_px, intensity, n_bins, sigma_px).cpu().numpy())
    return np.concatenate(profiles) if profiles else np.zeros((0, n_bins))
