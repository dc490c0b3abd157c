"""Common-grid interpolation and the stored tsfresh selection."""

import numpy as np
import pandas as pd

from assets.eis import features
from assets.eis.features import GridSettings


def test_default_grid_is_ten_to_1e5_rad_s_and_hz_bounds_convert():
    grid = GridSettings().omega_rad_s()
    assert grid[0] == 10.0 and np.isclose(grid[-1], 1e5) and len(grid) == 40
    np.testing.assert_allclose(GridSettings(10, 1e5, "hz", 5).omega_rad_s(), 2 * np.pi * np.logspace(1, 5, 5))


def test_interpolation_is_exact_for_spectra_linear_in_log_frequency():
    omega = np.logspace(-1, 6, 31)
    z = 2.0 * np.log10(omega) - 1j * (5.0 - 0.5 * np.log10(omega))
    grid = GridSettings(points=17).omega_rad_s()
    expected = 2.0 * np.log10(grid) - 1j * (5.0 - 0.5 * np.log10(grid))
    np.testing.assert_allclose(features.interpolate_spectrum(omega, z, grid), expected, rtol=1e-12)


def test_spectra_that_do_not_span_the_grid_are_excluded_not_extrapolated():
    grid = GridSettings(points=5).omega_rad_s()
    table = pd.DataFrame(
        {
            "spectrum_id": ["spans", "exact_edges", "too_short"],
            "omega_rad_s": [np.logspace(0, 6, 9).tolist(), grid.tolist(), np.logspace(2, 6, 9).tolist()],
            "z_real": [np.ones(9).tolist(), np.ones(5).tolist(), np.ones(9).tolist()],
            "z_imag": [np.zeros(9).tolist(), np.zeros(5).tolist(), np.zeros(9).tolist()],
        }
    )
    kept, z = features.interpolate_table(table, grid)
    assert kept["spectrum_id"].tolist() == ["spans", "exact_edges"]
    assert z.shape == (2, 5) and np.all(z == 1)


def test_stored_selection_extracts_exactly_the_training_features():
    rng = np.random.default_rng(0)
    grid = GridSettings(points=16).omega_rad_s()
    n = 24
    labels = ["steep", "flat"] * (n // 2)
    slopes = np.where(np.array(labels) == "steep", 2.0, 0.2) + 0.05 * rng.standard_normal(n)
    z = slopes[:, None] * np.log10(grid)[None, :] - 1j * rng.random((n, len(grid)))
    ids = [f"s{i}" for i in range(n)]
    full = features.extract(ids, z, n_jobs=0, preset="minimal")
    columns, n_relevant = features.select_relevant(full, labels, n_jobs=0, fdr_level=0.05, max_features=3)
    assert n_relevant >= 1 and len(columns) == 3 and all(c.startswith("z_real") for c in columns)
    again = features.extract(ids, z, n_jobs=0, kind_to_fc_parameters=features.settings_for_columns(columns))
    assert sorted(again.columns) == sorted(columns)
    pd.testing.assert_frame_equal(again[columns], full[columns])
