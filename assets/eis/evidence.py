"""Evidence from physics for the circuit classifier: how well each candidate circuit fits a spectrum.

Every one of the nine circuits is fitted to every spectrum (assets/eis/fitting.py, batched per class,
one naive start read off the spectrum and `random_starts` random restarts where it does not reproduce
the spectrum, 1/|Z| weighting), on the spectrum's own measured points (its
whole frequency range, not the common grid: an inductive tail above the grid or an arc below it is
what tells nested circuits apart). Per circuit the classifier sees log10 of the relative residual, the
BIC above the spectrum's best BIC and the fitted parameters (resistances relative to max|Z|). The fits
use no labels, so train and test spectra get them alike, and a batch's evidence can be cached by the
digest of its spectra and settings (the same spectra in every fold of a CV are fitted once).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from assets.eis.circuits import CIRCUIT_NAMES, CIRCUITS, Circuit

PREFIX = "evidence__"
RESIDUAL_FLOOR = 1e-8  # relative residuals below this are noise-free fits; log10 is clipped there
EVIDENCE_VERSION = 2  # part of the cache key: raise it when the fits change


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


def evidence_digest(omegas: list[np.ndarray], impedances: list[np.ndarray], random_starts: int) -> str:
    """Digest of a batch of spectra (values and order) and the evidence settings."""
    digest = hashlib.sha256(f"{EVIDENCE_VERSION}:{random_starts}:{len(omegas)}".encode())
    for omega, z in zip(omegas, impedances):
        digest.update(np.ascontiguousarray(omega, dtype=float).tobytes())
        digest.update(np.ascontiguousarray(z, dtype=complex).tobytes())
    return digest.hexdigest()[:32]


def circuit_evidence(
    omegas: list[np.ndarray], impedances: list[np.ndarray], device: str = "cpu", random_starts: int = 0, cache: Path | None = None
) -> pd.DataFrame:
    """One row per spectrum (input order), evidence_columns(): omegas in rad/s ascending, Z in Ohm.
    Per circuit: log10 relative residual, BIC above the spectrum's best, the fitted parameters scaled.
    With `cache` (a folder) a batch computed before is read back instead of refitted."""
    if not omegas:
        return pd.DataFrame(columns=evidence_columns(), dtype=float)
    path = cache / f"{evidence_digest(omegas, impedances, random_starts)}.parquet" if cache is not None else None
    if path is not None and path.exists():
        return pd.read_parquet(path)  # a data format: a file written into the cache cannot run code
    evidence = _fitted_evidence(omegas, impedances, device, random_starts)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_suffix(f".{os.getpid()}.tmp")
        evidence.to_parquet(staging)
        os.replace(staging, path)  # readers see a whole file or none
    return evidence


def _fitted_evidence(omegas: list[np.ndarray], impedances: list[np.ndarray], device: str, random_starts: int) -> pd.DataFrame:
    from assets.eis.fitting import FitSettings, fit_spectra

    settings = FitSettings(n_starts=1, random_starts=random_starts)
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
