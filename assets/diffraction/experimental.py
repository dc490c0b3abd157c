"""Experimental 4D-STEM maps as radial profiles: validation, resampling, and the synthetic default.

An experimental file is an .npz with `x` (q axis in 1/A, n points) and `y`
(rows, cols, n) azimuthally integrated patterns; an optional `truth` (rows, cols)
of phase indices into an optional `phases` list enables accuracy scoring.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assets.diffraction.augment import augment_profiles, normalise_max
from assets.diffraction.requests import SimulationRequest
from assets.diffraction.simulation import clean_profiles


class MapError(ValueError):
    """An experimental file that does not match the expected layout; the message names the file."""


def load_map(path: Path, expected_points: int) -> dict:
    """The validated arrays of one experimental .npz; MapError naming the file and what was expected."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as error:  # zip, pickle and format errors all mean "not a readable npz"
        raise MapError(f"{path}: not a readable .npz ({type(error).__name__}: {error})") from error
    missing = sorted({"x", "y"} - set(arrays))
    if missing:
        raise MapError(f"{path}: missing key(s) {missing}; expected 'x' (q axis, {expected_points}) and 'y' (rows, cols, {expected_points}), found {sorted(arrays)}")
    x, y = arrays["x"], arrays["y"]
    if x.ndim != 1 or x.shape[0] != expected_points:
        raise MapError(f"{path}: 'x' has shape {x.shape}; expected ({expected_points},)")
    if y.ndim != 3 or y.shape[2] != expected_points:
        raise MapError(f"{path}: 'y' has shape {y.shape}; expected (rows, cols, {expected_points})")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(np.diff(x) > 0)):
        raise MapError(f"{path}: expected finite values and a strictly increasing q axis 'x'")
    if "truth" in arrays and arrays["truth"].shape != y.shape[:2]:
        raise MapError(f"{path}: 'truth' has shape {arrays['truth'].shape}; expected {y.shape[:2]}")
    return arrays


def profiles_on_axis(patterns: np.ndarray, q_source: np.ndarray, q_target: np.ndarray) -> np.ndarray:
    """(..., n) patterns resampled linearly from q_source to q_target, flattened to (pixels, m), max-normalised."""
    flat = patterns.reshape(-1, patterns.shape[-1]).astype(float)
    if q_source.shape != q_target.shape or not np.allclose(q_source, q_target):
        flat = np.stack([np.interp(q_target, q_source, row, left=0.0, right=0.0) for row in flat])
    return normalise_max(flat)


def region_weights(rows: int, cols: int, n_phases: int, boundary_px: float, rng: np.random.Generator):
    """Voronoi regions, one per phase, mixed across boundaries.

    Returns (truth (rows, cols) nearest-phase index, second (rows, cols) next-nearest index,
    share (rows, cols) of the second phase: 0.5 on a boundary, 0 beyond boundary_px from it).
    """
    centres = rng.uniform([0, 0], [rows, cols], size=(n_phases, 2))
    grid = np.stack(np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij"), -1)
    distance = np.linalg.norm(grid[:, :, None, :] - centres[None, None], axis=-1)
    order = np.argsort(distance, axis=-1)
    nearest = np.take_along_axis(distance, order[..., :2], axis=-1)
    share = 0.5 * np.clip(1.0 - (nearest[..., 1] - nearest[..., 0]) / boundary_px, 0.0, 1.0)
    return order[..., 0], order[..., 1], share


def synthetic_map(request: SimulationRequest, rows: int, cols: int, boundary_px: float, seed: int) -> dict:
    """A synthetic experimental map of the request's phases with its ground truth (embedded default).

    Every pixel gets a random orientation of its phase (and one of its neighbour's phase,
    mixed in across boundaries), the map's single calibration, background and noise.
    """
    rng = np.random.default_rng(seed)
    truth, second, share = region_weights(rows, cols, len(request.phases), boundary_px, rng)
    clean = np.stack([clean_profiles(request, index, rows * cols, rng) for index in range(len(request.phases))])
    pixels = np.arange(rows * cols)
    mixed = (1 - share.ravel())[:, None] * clean[truth.ravel(), pixels] + share.ravel()[:, None] * clean[second.ravel(), pixels]
    q_axis = request.q_axis_inv_A()
    noisy = augment_profiles(mixed, q_axis, request.augmentation, rng)
    return {
        "x": q_axis,
        "y": noisy.reshape(rows, cols, -1),
        "truth": truth,
        "phases": np.array(request.phases),
    }
