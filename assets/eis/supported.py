"""The simplest circuit the data supports.

A fit with undetermined parameters (assets/eis/uncertainty.py) is refitted without each element that
holds one, one element at a time (circuits.reduced_circuit: L-R-RCPE without its invisible inductance
is R-RCPE; an RCPE block whose arc lies outside the measured span goes, its resistance taken up by
the series resistor), started from the remaining fitted values. The reduced fit with the lowest BIC
replaces the current one when it is lower than the current fit's; this repeats while the current fit
has undetermined elements and more than one element would remain. One at a time because two
undetermined parameters are often one trade-off (R1 + R3 fixed): removing both would lose the sum. BIC compares fits of one spectrum with the same weighting, so the fewer parameters
win unless the cost rises by more than ln(2 n) per parameter dropped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from assets.eis.circuits import CIRCUITS, reduced_circuit
from assets.eis import fitting

def removable_elements(parent_name: str, removed: frozenset[int], undetermined: dict) -> list[int]:
    """Positions (in the parent's elements) of the elements holding an undetermined parameter, when
    removing one leaves at least one element."""
    elements = CIRCUITS[parent_name].elements
    if len(removed) + 1 >= len(elements):
        return []
    return [k for k, (_, parameters) in enumerate(elements) if k not in removed and set(parameters) & set(undetermined)]


def supported_circuits(omegas: list, impedances: list, fits: pd.DataFrame, settings, device="cpu") -> pd.DataFrame:
    """Per row of `fits` (fitting.fit_spectra's table, circuits named as in CIRCUITS; dict columns) the
    supported circuit's fit: supported_circuit (name), supported_parameters, supported_standard_errors,
    supported_undetermined (dicts), supported_relative_residual, supported_bic. A fit with every
    parameter determined supports itself."""
    keys = ["circuit", "parameters", "standard_errors", "undetermined", "relative_residual", "bic"]
    current = [dict(zip(keys, values)) for values in zip(*(fits[key].tolist() for key in keys))]
    parents = fits["circuit"].tolist()
    removed = [frozenset()] * len(fits)
    pending = [i for i, fit in enumerate(current) if fit["undetermined"]]
    while pending:
        tasks = [(i, removed[i] | {k}) for i in pending for k in removable_elements(parents[i], removed[i], current[i]["undetermined"])]
        if not tasks:
            break
        circuits = [reduced_circuit(CIRCUITS[parents[i]], without) for i, without in tasks]
        starts = [{p: current[i]["parameters"][p] for p in circuit.parameters} for (i, _), circuit in zip(tasks, circuits)]
        reduced = fitting.fit_spectra([omegas[i] for i, _ in tasks], [impedances[i] for i, _ in tasks], circuits, starts, settings, device)
        improved = set()
        for (i, without), fit in zip(tasks, reduced[keys].to_dict("records")):
            if fit["bic"] < current[i]["bic"]:
                current[i], removed[i] = fit, without
                improved.add(i)
        pending = [i for i in sorted(improved) if current[i]["undetermined"]]
    return pd.DataFrame({f"supported_{key}": [fit[key] for fit in current] for key in keys}, index=fits.index)


def differs_share_by_class(labels: list[str], supported: list[str]) -> dict[str, float]:
    """Per labelled class: the share of spectra whose supported circuit is not the label."""
    frame = pd.DataFrame({"label": labels, "differs": np.array(labels, dtype=object) != np.array(supported, dtype=object)})
    return frame.groupby("label")["differs"].mean().to_dict()
