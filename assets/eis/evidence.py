"""Evidence from physics for the circuit classifier: how well each candidate circuit fits a spectrum.

Every one of the nine circuits is fitted to every spectrum (assets/eis/fitting.py, batched per class,
one naive start read off the spectrum, 1/|Z| weighting), on the spectrum's own measured points (its
whole frequency range, not the common grid: an inductive tail above the grid or an arc below it is
what tells nested circuits apart). Per circuit the classifier sees log10 of the relative residual and
the BIC above the spectrum's best BIC. The fits use no labels, so train and test spectra get them alike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from assets.eis.circuits import CIRCUIT_NAMES

PREFIX = "evidence__"
RESIDUAL_FLOOR = 1e-8  # relative residuals below this are noise-free fits; log10 is clipped there


def evidence_columns() -> list[str]:
    return [f"{PREFIX}log10_residual_{name}" for name in CIRCUIT_NAMES] + [f"{PREFIX}delta_bic_{name}" for name in CIRCUIT_NAMES]


def circuit_evidence(omegas: list[np.ndarray], impedances: list[np.ndarray], device: str = "cpu") -> pd.DataFrame:
    """One row per spectrum (input order), evidence_columns(): omegas in rad/s ascending, Z in Ohm."""
    from assets.eis.fitting import FitSettings, fit_spectra

    if not omegas:
        return pd.DataFrame(columns=evidence_columns(), dtype=float)
    settings = FitSettings(n_starts=1)
    residual, bic = {}, {}
    for name in CIRCUIT_NAMES:
        fits = fit_spectra(omegas, impedances, [name] * len(omegas), [None] * len(omegas), settings, device)
        residual[name] = np.log10(np.maximum(fits["relative_residual"].to_numpy(float), RESIDUAL_FLOOR))
        bic[name] = fits["bic"].to_numpy(float)
    bics = np.column_stack([bic[name] for name in CIRCUIT_NAMES])
    delta = bics - bics.min(axis=1, keepdims=True)
    values = np.column_stack([residual[name] for name in CIRCUIT_NAMES] + [delta])
    return pd.DataFrame(values, columns=evidence_columns())
