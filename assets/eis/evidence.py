"""Evidence from physics for the circuit classifier: how well each candidate circuit fits a spectrum.

Every one of the nine circuits is fitted to every spectrum (assets/eis/fitting.py, batched per class,
one naive start read off the spectrum and no random restarts, 1/|Z| weighting), on the spectrum's own measured points (its
whole frequency range, not the common grid: an inductive tail above the grid or an arc below it is
what tells nested circuits apart). Per circuit the classifier sees log10 of the relative residual, the
BIC above the spectrum's best BIC and the fitted parameters (resistances relative to max|Z|). The fits
use no labels, so train and test spectra get them alike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from assets.eis.circuits import CIRCUIT_NAMES, CIRCUITS, Circuit

PREFIX = "evidence__"
RESIDUAL_FLOOR = 1e-8  # relative residuals below this are noise-free fits; log10 is clipped there


def evidence_columns() -> list[str]:
    columns = [f"{PREFIX}log10_residual_{name}" for name in CIRCUIT_NAMES] + [f"{PREFIX}delta_bic_{name}" for name in CIRCUIT_NAMES]
    return columns + [f"{PREFIX}{name}__{parameter}" for name in CIRCUIT_NAMES for parameter in CIRCUITS[name].parameters]


def scaled_parameters(circuit: Circuit, values: np.ndarray, modulus_max_ohm: np.ndarray) -> np.ndarray:
    """Fitted parameters (N, P) on scales comparable across cells: resistances as log10(R / max|Z|),
    other log-scaled parameters as log10, exponents as they are."""
    scaled = np.array(values, dtype=float)
    for j, (kind, log_scaled) in enumerate(zip(circuit.kinds, circuit.log_scaled)):
        if kind == "resistance":
            scaled[:, j] = np.log10(values[:, j] / modulus_max_ohm)
        elif log_scaled:
            scaled[:, j] = np.log10(values[:, j])
    return scaled


def circuit_evidence(omegas: list[np.ndarray], impedances: list[np.ndarray], device: str = "cpu") -> pd.DataFrame:
    """One row per spectrum (input order), evidence_columns(): omegas in rad/s ascending, Z in Ohm.
    Per circuit: log10 relative residual, BIC above the spectrum's best, the fitted parameters scaled."""
    from assets.eis.fitting import FitSettings, fit_spectra

    if not omegas:
        return pd.DataFrame(columns=evidence_columns(), dtype=float)
    settings = FitSettings(n_starts=1, random_starts=0)
    modulus_max = np.array([np.abs(z).max() for z in impedances])
    residual, bic, parameters = [], [], []
    for name in CIRCUIT_NAMES:
        circuit = CIRCUITS[name]
        fits = fit_spectra(omegas, impedances, [name] * len(omegas), [None] * len(omegas), settings, device)
        residual.append(np.log10(np.maximum(fits["relative_residual"].to_numpy(float), RESIDUAL_FLOOR)))
        bic.append(fits["bic"].to_numpy(float))
        values = np.array([[fitted[p] for p in circuit.parameters] for fitted in fits["parameters"]])
        parameters.append(scaled_parameters(circuit, values, modulus_max))
    bics = np.column_stack(bic)
    values = np.column_stack([*residual, bics - bics.min(axis=1, keepdims=True), *parameters])
    return pd.DataFrame(values, columns=evidence_columns())
