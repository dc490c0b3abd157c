"""Circuit selection on fitted spectra: each spectrum's candidate circuits fitted (assets/eis/fitting.py), the
lowest information criterion kept, then the simplest circuit that fit supports (assets/eis/supported.py).

The imports run one way: this module uses the fitter and the reduction loop; neither uses it. (Calls go through
the `fitting` module, so a test that replaces fitting.fit_spectra sees every fit.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from assets.eis import fitting, uncertainty
from assets.eis.formats import format_parameters
from assets.eis.supported import supported_circuits


def fit_with_selection(
    spectra: pd.DataFrame, candidates: list[list[str]], initial: list[dict | None], settings: fitting.FitSettings, criterion: str, device="cpu"
) -> pd.DataFrame:
    """Fit each spectrum's first candidate from `initial` and from the naive start and keep the
    better fit (the naive columns report the naive start alone); fit the other candidates from
    the naive start and keep, per spectrum, the lowest `criterion` ("aic"/"bic"); then the simplest
    circuit the kept fit supports (assets/eis/supported.py).

    spectra: rows with omega_rad_s, z_real, z_imag lists (formats.spectra_table) plus
    spectrum_id, source, row, origin. Returns FIT_COLUMNS, parameters and standard errors as
    challenge-format text ('R1: 1.3, ...'), undetermined parameters as 'name: reason; ...'.
    """
    omegas = [np.asarray(o) for o in spectra["omega_rad_s"]]
    impedances = [np.asarray(re) + 1j * np.asarray(im) for re, im in zip(spectra["z_real"], spectra["z_imag"])]
    first = [c[0] for c in candidates]
    primary = fitting.fit_spectra(omegas, impedances, first, initial, settings, device)
    naive = fitting.fit_spectra(omegas, impedances, first, [None] * len(first), settings, device)
    naive_better = naive["aic"] < primary["aic"]  # same circuit and points: lower AIC = lower cost
    chosen = primary.mask(naive_better, naive).assign(selected_by="classifier", start=np.where(naive_better, "naive", "initial"))
    for rank in range(1, max(map(len, candidates), default=1)):
        rows = [i for i, c in enumerate(candidates) if len(c) > rank]
        alternative = fitting.fit_spectra([omegas[i] for i in rows], [impedances[i] for i in rows], [candidates[i][rank] for i in rows], [None] * len(rows), settings, device)
        alternative.index = rows
        better = alternative[criterion] < chosen.loc[rows, criterion]
        chosen.loc[better[better].index, alternative.columns] = alternative[better]
        chosen.loc[better[better].index, ["selected_by", "start"]] = [criterion, "naive"]
    chosen = chosen.reset_index(drop=True)
    supported = supported_circuits(omegas, impedances, chosen, settings, device)
    table = spectra[["spectrum_id", "source", "row", "origin"]].reset_index(drop=True).assign(
        classifier_circuit=first,
        circuit=chosen["circuit"].to_numpy(),
        selected_by=chosen["selected_by"].to_numpy(),
        start=chosen["start"].to_numpy(),
        initial_parameters=[format_parameters(start) if start else "" for start in initial],
        parameters=[format_parameters(values) for values in chosen["parameters"]],
        standard_errors=[format_parameters(values) for values in chosen["standard_errors"]],
        relative_residual=chosen["relative_residual"].to_numpy(float),
        reproduces=chosen["reproduces"].to_numpy(bool),
        determined=chosen["determined"].to_numpy(bool),
        undetermined=[uncertainty.reasons_text(reasons) for reasons in chosen["undetermined"]],
        max_abs_correlation=chosen["max_abs_correlation"].to_numpy(float),
        correlated_pair=chosen["correlated_pair"].to_numpy(),
        iterations=chosen["iterations"].to_numpy(int),
        aic=chosen["aic"].to_numpy(float),
        bic=chosen["bic"].to_numpy(float),
        supported_circuit=supported["supported_circuit"].to_numpy(),
        supported_parameters=[format_parameters(values) for values in supported["supported_parameters"]],
        supported_standard_errors=[format_parameters(values) for values in supported["supported_standard_errors"]],
        supported_undetermined=[uncertainty.reasons_text(reasons) for reasons in supported["supported_undetermined"]],
        supported_relative_residual=supported["supported_relative_residual"].to_numpy(float),
        supported_bic=supported["supported_bic"].to_numpy(float),
        initial_relative_residual=primary["relative_residual"].to_numpy(float),
        initial_reproduces=primary["reproduces"].to_numpy(bool),
        initial_iterations=primary["iterations"].to_numpy(int),
        naive_parameters=[format_parameters(values) for values in naive["parameters"]],
        naive_relative_residual=naive["relative_residual"].to_numpy(float),
        naive_reproduces=naive["reproduces"].to_numpy(bool),
        naive_iterations=naive["iterations"].to_numpy(int),
    )
    return table[fitting.FIT_COLUMNS]
