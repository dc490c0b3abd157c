"""matminer composition features, one row per formula (no Dagster import).

A featurizer that fails on a formula (oxidation states that cannot be guessed,
an element without tabulated data) leaves NaN in its columns and a line in the
row's failure list; it never stops the others. matminer ships its element
tables (magpie, pymatgen, deml) inside the package, so this runs offline.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

# Oxidation states are guessed on an integer formula; beyond this many sites
# pymatgen's enumeration gets slow, and the featurizers that need them fail.
MAX_OXIDATION_GUESS_SITES = 80
OXIDATION_FEATURIZERS = ("OxidationStates", "ElectronegativityDiff", "ElectronAffinity", "IonProperty")


def build_featurizers() -> dict:
    """Featurizer name -> instance: the issue's nine composition featurizers."""
    from matminer.featurizers.composition import (
        AtomicOrbitals,
        BandCenter,
        ElectronAffinity,
        ElectronegativityDiff,
        ElementProperty,
        IonProperty,
        OxidationStates,
        TMetalFraction,
        ValenceOrbital,
    )

    return {
        "ElementProperty": ElementProperty.from_preset("magpie"),
        "OxidationStates": OxidationStates(),
        "AtomicOrbitals": AtomicOrbitals(),
        "BandCenter": BandCenter(),
        "ElectronegativityDiff": ElectronegativityDiff(),
        "ElectronAffinity": ElectronAffinity(),
        "ValenceOrbital": ValenceOrbital(),
        "IonProperty": IonProperty(),
        "TMetalFraction": TMetalFraction(),
    }


def oxidation_decorated(composition):
    """The composition with guessed oxidation states, scaled to small integers first."""
    from pymatgen.core import Composition

    formula, _ = composition.get_integer_formula_and_factor(max_denominator=20)
    integer_composition = Composition(formula)
    if set(integer_composition.elements) != set(composition.elements):
        raise ValueError(f"{composition.formula} has amounts too small to write with small integers")
    if integer_composition.num_atoms > MAX_OXIDATION_GUESS_SITES:
        raise ValueError(f"{formula} has more than {MAX_OXIDATION_GUESS_SITES} sites to assign oxidation states to")
    decorated = integer_composition.add_charges_from_oxi_state_guesses()
    if all(getattr(species, "oxi_state", 0) in (0, None) for species in decorated):
        raise ValueError(f"no charge-balanced oxidation states for {formula}")
    return decorated


def featurize_formula(formula: str, featurizers: dict) -> tuple[dict, list[str]]:
    """(feature name -> value, failures as 'Featurizer: reason') for one formula."""
    from assets.electrodes.formulas import parse_composition

    composition = parse_composition(formula)
    try:
        decorated, oxidation_error = oxidation_decorated(composition), None
    except Exception as error:  # pymatgen raises ValueError and others on exotic formulas
        decorated, oxidation_error = None, f"oxidation states: {error}"
    values, failures = {}, []
    for name, featurizer in featurizers.items():
        labels = featurizer.feature_labels()
        needs_oxidation = name in OXIDATION_FEATURIZERS
        try:
            if needs_oxidation and decorated is None:
                raise ValueError(oxidation_error)
            row = featurizer.featurize(decorated if needs_oxidation else composition)
        except Exception as error:  # a failing featurizer is recorded, never fatal
            row = [np.nan] * len(labels)
            failures.append(f"{name}: {error}")
        values.update(zip(labels, row))
    return values, failures


def featurize_chunk(formulas: list[str]) -> list[tuple[dict, list[str]]]:
    """Featurize a list of formulas (the unit fanned out through Dask)."""
    featurizers = build_featurizers()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # matminer warns per call about data sources
        return [featurize_formula(formula, featurizers) for formula in formulas]


def featurize_formulas(formulas: list[str], map_chunks, rows_per_chunk: int) -> tuple[pd.DataFrame, list[str]]:
    """(feature table in input order, failure text per row). map_chunks(fn, chunks) -> list of results.

    A single chunk runs in this process: no cluster start-up for a small table.
    """
    chunks = [formulas[i : i + rows_per_chunk] for i in range(0, len(formulas), rows_per_chunk)]
    results = map_chunks(featurize_chunk, chunks) if len(chunks) > 1 else [featurize_chunk(formulas)]
    pairs = [pair for chunk in results for pair in chunk]
    table = pd.DataFrame([values for values, _ in pairs]).infer_objects()
    return table, ["; ".join(failures) for _, failures in pairs]


def informative_columns(table: pd.DataFrame) -> tuple[list[str], dict[str, list[str]]]:
    """(columns to keep, dropped columns by reason): non-numeric, all-NaN and constant ones go."""
    numeric = table.select_dtypes(include=["number", "bool"])
    all_nan = [c for c in numeric.columns if numeric[c].isna().all()]
    constant = [c for c in numeric.columns if c not in all_nan and numeric[c].nunique(dropna=True) <= 1]
    dropped = {
        "non_numeric": [c for c in table.columns if c not in numeric.columns],
        "all_nan": all_nan,
        "constant": constant,
    }
    keep = [c for c in numeric.columns if c not in all_nan and c not in constant]
    return keep, dropped


def feature_matrix(table: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The given columns as float64 (missing columns of a new table become NaN)."""
    return table.reindex(columns=columns).astype("float64").to_numpy()


# Columns of the feature table that are not features.
META_COLUMNS = ["battery_id", "working_ion", "formula_discharge", "target_name", "target", "featurizer_failures"]


def build_feature_table(
    records: pd.DataFrame, target: str, map_chunks, rows_per_chunk: int
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """(meta columns + informative features per record, dropped feature columns by reason).

    Features describe the discharged composition; `target` is one of the records' numeric columns.
    """
    table, failures = featurize_formulas(list(records["formula_discharge"]), map_chunks, rows_per_chunk)
    keep, dropped = informative_columns(table)
    meta = pd.DataFrame(
        {
            "battery_id": records["battery_id"].to_numpy(),
            "working_ion": records["working_ion"].to_numpy(),
            "formula_discharge": records["formula_discharge"].to_numpy(),
            "target_name": target,
            "target": records[target].to_numpy(float),
            "featurizer_failures": failures,
        }
    )
    return pd.concat([meta, table[keep].astype("float64")], axis=1), dropped


def feature_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in META_COLUMNS]


def failure_counts(failures: pd.Series) -> dict[str, int]:
    """Featurizer name -> number of rows it failed on."""
    counts: dict[str, int] = {}
    for text in failures:
        for failure in filter(None, str(text).split("; ")):
            name = failure.split(":", 1)[0]
            counts[name] = counts.get(name, 0) + 1
    return counts
