"""Robustness of the classifiers to experimental conditions (after Lan et al., J. Appl. Cryst. 55, 2022).

Test structures are recomputed with one parameter shifted at a time (Qmax, Qdamp, Uiso),
truncated to a shorter measured range (r_max: zero beyond it, as for a measured file),
or given noise; each model's accuracy on those profiles is one row of the sweep table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd

from assets.pdf.calculator import MODEL_GRID_A, PdfSettings, compute_pdfs, normalise_profiles
from assets.pdf.classifiers import top_k_accuracy
from assets.pdf.profiles import add_noise
from assets.pdf.structures import Crystal

RECOMPUTED = ("qmax_inv_A", "qdamp_inv_A", "uiso_A2")  # parameters that need a new calculation


def truncate_profiles(pdfs: np.ndarray, r_max_A: float, grid_A: np.ndarray = MODEL_GRID_A) -> np.ndarray:
    """G zero beyond r_max (a shorter measured range, as the reader and the r-cut augmentation do), normalised."""
    return normalise_profiles(np.where(grid_A <= r_max_A, pdfs, 0.0))


def shifted_profiles(crystals: list[Crystal], settings: PdfSettings, base_pdfs: np.ndarray, parameter: str,
                     value: float, rng: np.random.Generator) -> np.ndarray:
    """Normalised profiles of the crystals with one condition changed (base_pdfs: G at the settings)."""
    if parameter in RECOMPUTED:
        return normalise_profiles(compute_pdfs(crystals, replace(settings, **{parameter: value})))
    if parameter == "r_max_A":
        return truncate_profiles(base_pdfs, value)
    if parameter == "noise_std":
        return add_noise(normalise_profiles(base_pdfs), value, rng)
    raise ValueError(f"unknown sweep parameter {parameter!r}; expected one of {RECOMPUTED} r_max_A noise_std")


def robustness_sweep(crystals: list[Crystal], true_index: np.ndarray, settings: PdfSettings,
                     sweeps: dict[str, list[float]], predictors: dict[str, Callable[[np.ndarray], np.ndarray]],
                     rng: np.random.Generator, top_k: int = 6) -> pd.DataFrame:
    """Rows: parameter, value, model, top1_accuracy, topk_accuracy, n_structures."""
    base_pdfs = compute_pdfs(crystals, settings)
    rows = []
    for parameter, values in sweeps.items():
        for value in values:
            profiles = shifted_profiles(crystals, settings, base_pdfs, parameter, float(value), rng).astype(np.float32)
            for model, predict in predictors.items():
                probabilities = predict(profiles)
                rows.append({
                    "parameter": parameter, "value": float(value), "model": model,
                    "top1_accuracy": top_k_accuracy(probabilities, true_index, 1),
                    f"top{top_k}_accuracy": top_k_accuracy(probabilities, true_index, top_k),
                    "n_structures": len(crystals),
                })
    return pd.DataFrame(rows)


SWEEP_LABELS = {"qmax_inv_A": "Qmax (1/Å)", "qdamp_inv_A": "Qdamp (1/Å)", "uiso_A2": "Uiso (Å²)",
                "r_max_A": "r_max (Å)", "noise_std": "noise std"}


def sweep_figure(sweep: pd.DataFrame, new_figure):
    """One panel per parameter: top-1 accuracy versus its value, a line per model (legible at 150 dpi)."""
    parameters = list(dict.fromkeys(sweep["parameter"]))
    fig, axes = new_figure(ncols=len(parameters), size=(3.8, 3.4))
    for ax, parameter in zip(axes[0], parameters):
        for model, rows in sweep[sweep["parameter"] == parameter].groupby("model"):
            ax.plot(rows["value"], rows["top1_accuracy"], "o-", label=model)
        ax.set_xlabel(SWEEP_LABELS.get(parameter, parameter), fontsize=11)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=9)
    axes[0][0].set_ylabel("top-1 accuracy", fontsize=11)
    axes[0][0].legend(fontsize=9)
    fig.tight_layout()
    return fig
