"""The simulator on torch, for a GPU: simulator.py's physics on dense (pattern x reflection) blocks.

On the CPU, `simulator.excited_spots` first selects the few percent of (pattern,
reflection) pairs that can be excited and computes only those. On a GPU selecting
costs more than computing, so here every pair of a batch is evaluated and the
non-excited ones get zero intensity; the brightest-spot removal is a top-k per
pattern, the binning a scatter-add along each pattern's row and the blur one matmul with a banded matrix of
the kernel scipy's `gaussian_filter1d` uses (truncated at 4 sigma, zero outside).

Precision: float64 agrees with the numpy path to rounding. float32 (the default on
CUDA) keeps the geometry in float64 (excitation errors decide which spots are excited,
and a float32 radius in pixels is off by ~1e-5 px) and runs intensities, top-k, binning
and blur in float32: within 1e-5 of the float64 profiles' maximum.
tests/diffraction/test_simulator.py runs both with device="cpu".
"""

from __future__ import annotations

from typing import Literal

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
Precision = Literal["auto", "float64", "float32"]
CUDA_BATCH_SIZE = 8192  # patterns per block on a GPU (H200, float64: 441k patterns/s at 2048, 604k at 8192)
CPU_BATCH_SIZE = 512


def gaussian_kernel(sigma_px: float) -> np.ndarray:
    """scipy's gaussian_filter1d weights: radius int(4 sigma + 0.5), normalised to sum 1."""
    radius = int(SCIPY_GAUSSIAN_TRUNCATE * sigma_px + 0.5)
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma_px) ** 2)
    return weights / weights.sum()


def blur_matrix(n_bins: int, sigma_px: float) -> np.ndarray | None:
    """(n_bins, n_bins) banded matrix B with profile @ B = gaussian_filter1d(profile, sigma_px, mode="constant");
    None below a thousandth of a pixel, where the numpy path skips the blur."""
    if sigma_px <= 1e-3:
        return None
    kernel = gaussian_kernel(sigma_px)
    radius = len(kernel) // 2
    offsets = np.arange(n_bins)[:, None] - np.arange(n_bins)[None, :] + radius
    inside = (offsets >= 0) & (offsets < len(kernel))
    return np.where(inside, kernel[np.clip(offsets, 0, len(kernel) - 1)], 0.0)


def _spot_intensities(torch, reflections_xyz, reflections_intensity, g_squared, beams, inverse_scale,
                      geometry: Geometry):
    """(radius 1/A, intensity) of every (pattern, reflection) pair; zero intensity when not excited.

    The geometry runs in the inputs' float64; intensities in reflections_intensity's dtype."""
    z = (beams @ reflections_xyz.T) * inverse_scale[:, None]
    radius = torch.sqrt(torch.clamp(g_squared * inverse_scale[:, None] ** 2 - z**2, min=0.0))
    error = excitation_errors(radius, z, geometry.wavelength_A)
    excited = torch.abs(error) < geometry.max_excitation_error_inv_A
    shape_factor = relrod_factor(error.to(reflections_intensity.dtype), geometry.relrod_length_inv_A)
    intensity = reflections_intensity * shape_factor
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


def _binned_profiles(torch, radius_px, intensity, n_bins: int, blur):
    """Spots split linearly between their two neighbouring radial bins (a scatter-add per side), then blurred by
    the banded matrix `blur` (None: no blur); (b, n_bins) in intensity's dtype."""
    lower = torch.floor(radius_px)
    fraction = (radius_px - lower).to(intensity.dtype)
    inside = lower + 1 < n_bins
    lower = torch.where(inside, lower, torch.zeros_like(lower)).long()
    intensity = torch.where(inside, intensity, torch.zeros_like(intensity))
    upper_share = intensity * fraction
    profile = torch.zeros(len(radius_px), n_bins, dtype=intensity.dtype, device=intensity.device)
    profile.scatter_add_(1, lower, intensity - upper_share).scatter_add_(1, lower + 1, upper_share)
    # A matmul, not conv1d: cuDNN may run float32 convolutions as TF32 (torch's default), matmuls not.
    return profile if blur is None else profile @ blur


def radial_profiles_torch(
    reflections: Reflections,
    quaternions: np.ndarray,
    geometry: Geometry,
    pixel_size_inv_A: np.ndarray | float,
    n_bins: int,
    sigma_px: float,
    lattice_scale: np.ndarray | None = None,
    drop_counts: np.ndarray | None = None,
    batch_size: int | None = None,
    device: str = "cuda",
    precision: Precision = "auto",
) -> np.ndarray:
    """simulator.radial_profiles on torch: (r, n_bins), bin k centred on radius k pixels.

    batch_size None: CUDA_BATCH_SIZE patterns per block on CUDA, CPU_BATCH_SIZE elsewhere; precision "auto":
    float32 on CUDA, float64 elsewhere (see the module docstring)."""
    import torch

    def as_tensor(values, dtype=torch.float64):
        return torch.tensor(np.array(values), dtype=dtype, device=device)  # a copy: inputs may be read-only views

    count = len(quaternions)
    pixel_size, lattice_scale, drop_counts = per_pattern(count, pixel_size_inv_A, lattice_scale, drop_counts)
    pixel_size, inverse_scale = as_tensor(pixel_size), 1.0 / as_tensor(lattice_scale)
    drops = as_tensor(drop_counts, torch.int64)
    beams = as_tensor(rotation_matrices(quaternions)[:, 2, :])
    on_cuda = torch.device(device).type == "cuda"
    batch_size = batch_size or (CUDA_BATCH_SIZE if on_cuda else CPU_BATCH_SIZE)
    single = precision == "float32" or (precision == "auto" and on_cuda)
    working = torch.float32 if single else torch.float64
    xyz, spot_intensity = as_tensor(reflections.xyz_inv_A), as_tensor(reflections.intensity, working)
    g_squared = as_tensor(reflections.g_squared)
    blur = blur_matrix(n_bins, sigma_px)
    blur = None if blur is None else as_tensor(blur, working)
    profiles = []
    for start in range(0, count, batch_size):
        batch = slice(start, start + batch_size)
        radius, intensity = _spot_intensities(torch, xyz, spot_intensity, g_squared, beams[batch],
                                              inverse_scale[batch], geometry)
        intensity = _drop_brightest(torch, intensity, drops[batch])
        radius_px = radius / pixel_size[batch][:, None]
        profiles.append(_binned_profiles(torch, radius_px, intensity, n_bins, blur).cpu().double().numpy())
    return np.concatenate(profiles) if profiles else np.zeros((0, n_bins))
