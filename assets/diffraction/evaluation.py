"""Peak-based evaluation of predicted phase maps (no ground truth needed) and accuracy where there is one.

For each predicted phase, the patterns assigned to it are averaged and the peaks of
that mean are compared with the phase's reference peaks (peaks of its mean clean
simulated profile over random orientations). The distance is symmetric: found ->
reference and reference -> found both count, so a phase with many reflections
does not win merely because every found peak lies near one of its many peaks.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import find_peaks

from assets.diffraction.augment import normalise_max


def peak_positions(profile: np.ndarray, q_inv_A: np.ndarray, prominence: float) -> np.ndarray:
    """q (1/A) of the peaks of a profile whose prominence exceeds `prominence` x its maximum."""
    if profile.max() <= 0:
        return np.empty(0)
    indices, _ = find_peaks(profile, prominence=prominence * profile.max())
    return q_inv_A[indices]


def nearest_distances(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """|dq| from each source peak to its nearest target peak (inf when target is empty)."""
    if len(target) == 0:
        return np.full(len(source), np.inf)
    return np.abs(source[:, None] - target[None, :]).min(axis=1)


def peak_match(found: np.ndarray, reference: np.ndarray, tolerance_inv_A: float) -> dict:
    """Symmetric peak agreement: mean |dq| over both directions, precision, recall and F1."""
    to_reference = nearest_distances(found, reference)
    to_found = nearest_distances(reference, found)
    both = np.concatenate([to_reference, to_found])
    both = both[np.isfinite(both)]
    precision = float(np.mean(to_reference <= tolerance_inv_A)) if len(found) else 0.0
    recall = float(np.mean(to_found <= tolerance_inv_A)) if len(reference) else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "found_peaks": len(found),
        "reference_peaks": len(reference),
        "mean_abs_dq_inv_A": float(both.mean()) if len(both) else float("nan"),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def evaluate_map(
    profiles: np.ndarray,
    labels: np.ndarray,
    q_inv_A: np.ndarray,
    reference_peaks: dict[int, np.ndarray],
    tolerance_inv_A: float,
    prominence: float,
) -> list[dict]:
    """One row per predicted phase: pixel count and the peak match of its mean pattern."""
    rows = []
    for phase_index, reference in reference_peaks.items():
        assigned = labels == phase_index
        if not assigned.any():
            continue
        mean_profile = normalise_max(profiles[assigned].mean(axis=0, keepdims=True))[0]
        found = peak_positions(mean_profile, q_inv_A, prominence)
        rows.append({"phase_index": phase_index, "pixels": int(assigned.sum()), **peak_match(found, reference, tolerance_inv_A)})
    return rows
