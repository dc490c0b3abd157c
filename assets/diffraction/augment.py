"""Augmentations that make clean simulated profiles look measured (all arrays (n, points), q in 1/A)."""

from __future__ import annotations

import numpy as np


def normalise_max(profiles: np.ndarray) -> np.ndarray:
    """Scale each profile to a maximum of 1 (an all-zero profile stays zero)."""
    peak = profiles.max(axis=1, keepdims=True)
    return np.divide(profiles, peak, out=np.zeros_like(profiles), where=peak > 0)


def exponential_background(q_inv_A: np.ndarray, amplitude: np.ndarray, tau_A: np.ndarray) -> np.ndarray:
    """A * exp(-tau * q) per profile: the diffuse inelastic background falling off from the beam."""
    return amplitude[:, None] * np.exp(-tau_A[:, None] * q_inv_A[None, :])


def poisson_noise(profiles: np.ndarray, snr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Counting noise with signal-to-noise ratio `snr` at each profile's maximum (max counts = snr^2)."""
    counts_per_unit = (snr**2 / np.maximum(profiles.max(axis=1), 1e-12))[:, None]
    return rng.poisson(profiles * counts_per_unit) / counts_per_unit


def salt_spikes(profiles: np.ndarray, probability: float, rng: np.random.Generator) -> np.ndarray:
    """Replace a share `probability` of points by spikes between 0.5 and 1 times the profile maximum."""
    hit = rng.random(profiles.shape) < probability
    heights = rng.uniform(0.5, 1.0, profiles.shape) * profiles.max(axis=1, keepdims=True)
    return np.where(hit, heights, profiles)


def augment_profiles(profiles: np.ndarray, q_inv_A: np.ndarray, augmentation, rng: np.random.Generator) -> np.ndarray:
    """Background, Poisson noise at a random SNR and salt spikes, then max-normalised (float32)."""
    count = len(profiles)
    clean = normalise_max(profiles)
    amplitude = rng.uniform(*augmentation.background_amplitude_range, count)
    tau_A = rng.uniform(*augmentation.background_tau_range_A, count)
    snr = rng.uniform(*augmentation.snr_range, count)
    noisy = poisson_noise(clean + exponential_background(q_inv_A, amplitude, tau_A), snr, rng)
    spiked = salt_spikes(noisy, augmentation.spike_probability, rng)
    return normalise_max(spiked).astype(np.float32)
