"""Common-grid interpolation and tsfresh features of impedance spectra.

Spectra are interpolated (linear in log frequency, separately for Re Z and Im Z) onto
one log-spaced grid of angular frequency; a spectrum that does not span the grid is
excluded, never extrapolated. tsfresh then sees Re Z and Im Z along the grid as two
time series ("kinds") per spectrum. Relevant-feature selection (Benjamini-Yekutieli
tests, multiclass) is fitted on training spectra only and returned as
`kind_to_fc_parameters`, which is all that later extraction needs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from assets.eis.formats import FreqUnit, to_rad_s

FcPreset = Literal["minimal", "compact", "efficient", "comprehensive"]
KINDS = ("z_real", "z_imag")
# "compact": the efficient set's calculators that cost about one pass over the series
# (change_quantiles alone is ~half the efficient set's time on 40-point spectra).
COMPACT_CALCULATORS = (
    "mean", "median", "standard_deviation", "minimum", "maximum", "abs_energy", "mean_change",
    "mean_abs_change", "skewness", "kurtosis", "linear_trend", "quantile", "index_mass_quantile",
    "cid_ce", "autocorrelation", "fft_coefficient", "first_location_of_maximum",
    "first_location_of_minimum", "last_location_of_maximum", "last_location_of_minimum",
)
COMPACT_MAX_FFT_COEFF = 20


@dataclass(frozen=True)
class GridSettings:
    """Grid bounds in `unit` (rad_s by default: the challenge files' freq unit)."""

    low: float = 10.0
    high: float = 1e5
    unit: FreqUnit = "rad_s"
    points: int = 40

    def omega_rad_s(self) -> np.ndarray:
        low, high = to_rad_s(np.array([self.low, self.high]), self.unit)
        return np.logspace(math.log10(low), math.log10(high), self.points)


def spans_grid(omega: np.ndarray, grid: np.ndarray) -> bool:
    # Relative tolerance: a spectrum ending exactly at the grid edge must count as spanning it.
    return omega[0] <= grid[0] * (1 + 1e-12) and omega[-1] >= grid[-1] * (1 - 1e-12)


def interpolate_spectrum(omega: np.ndarray, z: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Z on the grid (complex), linear in log10(omega); omega ascending and spanning the grid."""
    log_omega, log_grid = np.log10(omega), np.log10(np.clip(grid, omega[0], omega[-1]))
    return np.interp(log_grid, log_omega, z.real) + 1j * np.interp(log_grid, log_omega, z.imag)


def interpolate_table(spectra: pd.DataFrame, grid: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """(rows of spectra that span the grid, their Z on the grid (N, points))."""
    keep, rows = [], []
    for index, record in enumerate(spectra.itertuples(index=False)):
        omega = np.asarray(record.omega_rad_s)
        if spans_grid(omega, grid):
            z = np.asarray(record.z_real) + 1j * np.asarray(record.z_imag)
            keep.append(index)
            rows.append(interpolate_spectrum(omega, z, grid))
    values = np.array(rows) if rows else np.zeros((0, len(grid)), dtype=complex)
    kept = spectra.iloc[keep].drop(columns=["omega_rad_s", "z_real", "z_imag"]).reset_index(drop=True)
    return kept, values


def raw_grid_table(ids: list[str], z_on_grid: np.ndarray) -> pd.DataFrame:
    """spectrum_id then Re Z and Im Z at each grid point: the baseline's features."""
    points = z_on_grid.shape[1]
    columns = [f"re_{i}" for i in range(points)] + [f"im_{i}" for i in range(points)]
    table = pd.DataFrame(np.hstack([z_on_grid.real, z_on_grid.imag]), columns=columns)
    table.insert(0, "spectrum_id", ids)
    return table


def long_format(ids: list[str], z_on_grid: np.ndarray) -> pd.DataFrame:
    """tsfresh's long layout: id, time (grid index), kind, value."""
    n, points = z_on_grid.shape
    frames = [
        pd.DataFrame(
            {
                "id": np.repeat(np.asarray(ids, dtype=object), points),
                "time": np.tile(np.arange(points), n),
                "kind": kind,
                "value": part.ravel(),
            }
        )
        for kind, part in zip(KINDS, (z_on_grid.real, z_on_grid.imag))
    ]
    return pd.concat(frames, ignore_index=True)


def resolve_n_jobs(n_jobs: int) -> int:
    """tsfresh wants a worker count (0 = in process); -1 means every core."""
    return (os.cpu_count() or 1) if n_jobs < 0 else n_jobs


def fc_parameters(preset: FcPreset) -> dict:
    from tsfresh.feature_extraction import ComprehensiveFCParameters, EfficientFCParameters, MinimalFCParameters

    if preset == "compact":
        efficient = EfficientFCParameters()
        compact = {name: efficient[name] for name in COMPACT_CALCULATORS}
        # Grids of up to ~40 points have at most ~21 Fourier coefficients; the rest are NaN.
        compact["fft_coefficient"] = [p for p in compact["fft_coefficient"] if p["coeff"] <= COMPACT_MAX_FFT_COEFF]
        return compact
    return {"minimal": MinimalFCParameters, "efficient": EfficientFCParameters, "comprehensive": ComprehensiveFCParameters}[
        preset
    ]()


def extract(ids: list[str], z_on_grid: np.ndarray, n_jobs: int, preset: FcPreset | None = None, kind_to_fc_parameters=None):
    """tsfresh features, one row per id (in ids order); NaN left for the models to handle."""
    from tsfresh import extract_features

    settings = {"kind_to_fc_parameters": kind_to_fc_parameters} if kind_to_fc_parameters else {
        "default_fc_parameters": fc_parameters(preset)
    }
    features = extract_features(
        long_format(ids, z_on_grid),
        column_id="id",
        column_sort="time",
        column_kind="kind",
        column_value="value",
        n_jobs=resolve_n_jobs(n_jobs),
        disable_progressbar=True,
        **settings,
    )
    return features.reindex(ids)


def select_relevant(
    train_features: pd.DataFrame, train_labels: list[str], n_jobs: int, fdr_level: float, max_features: int
) -> tuple[list[str], int]:
    """(columns kept, count tsfresh finds relevant) from training rows only.

    tsfresh's multiclass relevance table (one test per class, Benjamini-Yekutieli at
    fdr_level); the relevant columns are ranked by their smallest p-value over classes
    and the best max_features kept. When none passes, the best max_features by p-value
    are kept all the same (a tiny training set must still give a model).
    """
    from tsfresh.feature_selection.relevance import calculate_relevance_table
    from tsfresh.utilities.dataframe_functions import impute

    # impute (in place) a copy used only for the tests; the stored features keep NaN.
    imputed = impute(train_features.copy())
    labels = pd.Series(list(train_labels), index=imputed.index)
    table = calculate_relevance_table(imputed, labels, multiclass=True, fdr_level=fdr_level, n_jobs=resolve_n_jobs(n_jobs))
    best_p = table.filter(like="p_value").min(axis=1)  # p_value (binary) or p_value_<class>
    relevant = table["relevant"].astype(bool)
    ranked = best_p[relevant].sort_values() if relevant.any() else best_p.sort_values()
    return list(ranked.index[:max_features]), int(relevant.sum())


def settings_for_columns(columns: list[str]) -> dict:
    """kind_to_fc_parameters that extract exactly these columns."""
    from tsfresh.feature_extraction.settings import from_columns

    return from_columns(columns)


def shape_features(z_on_grid: np.ndarray) -> pd.DataFrame:
    """Scale-invariant features of spectra on the common grid (N, points), one row per spectrum.

    Impedances of real cells span decades (the challenge data: R from 1e-2 to 1e5 Ohm), so Re and
    Im values at fixed frequencies mostly measure the scale. These describe the shape: Z normalised
    by |Z| at the lowest grid frequency, the phase (degrees) and the slopes of log10|Z| and of the
    phase against log10(omega), the count and places of arcs (local maxima of -Im Z), the ratio of
    low- to high-frequency |Z|, plus log10|Z| at both ends (the scale, kept as two features).
    """
    z = np.asarray(z_on_grid, dtype=complex)
    n, points = z.shape
    modulus = np.maximum(np.abs(z), 1e-300)
    scale = modulus[:, :1]
    normalised = z / scale
    phase = np.degrees(np.angle(z))
    log_modulus = np.log10(modulus)
    step = 1.0 if points < 2 else 1.0 / (points - 1)
    slope_modulus = np.diff(log_modulus, axis=1) / step
    slope_phase = np.diff(phase, axis=1) / step
    minus_im = -normalised.imag
    interior = (minus_im[:, 1:-1] > minus_im[:, :-2]) & (minus_im[:, 1:-1] >= minus_im[:, 2:])
    phase_min = (phase[:, 1:-1] < phase[:, :-2]) & (phase[:, 1:-1] <= phase[:, 2:])
    columns = {}
    for i in range(points):
        columns[f"shape__re_norm_{i}"] = normalised[:, i].real
        columns[f"shape__im_norm_{i}"] = normalised[:, i].imag
        columns[f"shape__phase_deg_{i}"] = phase[:, i]
    for i in range(points - 1):
        columns[f"shape__dlogmod_{i}"] = slope_modulus[:, i]
        columns[f"shape__dphase_{i}"] = slope_phase[:, i]
    columns["shape__n_arcs"] = interior.sum(axis=1).astype(float)
    columns["shape__n_phase_minima"] = phase_min.sum(axis=1).astype(float)
    columns["shape__argmax_minus_im"] = minus_im.argmax(axis=1).astype(float)
    columns["shape__argmin_phase"] = phase.argmin(axis=1).astype(float)
    columns["shape__min_phase_deg"] = phase.min(axis=1)
    columns["shape__max_phase_deg"] = phase.max(axis=1)
    columns["shape__log_mod_ratio"] = log_modulus[:, 0] - log_modulus[:, -1]
    columns["shape__log_mod_low"] = log_modulus[:, 0]
    columns["shape__log_mod_high"] = log_modulus[:, -1]
    columns["shape__re_high_over_low"] = z[:, -1].real / np.where(z[:, 0].real == 0, 1e-300, z[:, 0].real)
    columns["shape__inductive_share"] = (z.imag > 0).mean(axis=1)
    return pd.DataFrame(columns, index=range(n))


def shape_feature_columns(points: int) -> list[str]:
    return list(shape_features(np.ones((1, points), dtype=complex)).columns)
