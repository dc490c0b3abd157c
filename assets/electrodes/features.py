"""Composition, working-ion and space-group features of an electrode, one row per record (no Dagster import).

Every feature comes from what a candidate row has: its formula (charged and
discharged compositions), its working ion and, where given, its space group. No
measured capacity, energy or stability ever enters (they are voltage times
capacity, or DFT outputs a user predicting a new material does not have).

Feature columns are named `<group>:<label>`; the groups (FEATURE_GROUPS) are
    discharged  matminer's nine composition featurizers on the discharged composition
    charged     magpie ElementProperty of the charged composition (the host, plus any ion left in it)
    delta       discharged minus charged magpie features
    ion         working-ion properties (valence, electronegativity, radius, ionisation energy, mass, one-hot)
    redox       ion per host at both ends and their difference, ion atomic fraction, the formula's capacity,
                mean oxidation state of the host cations at both ends by charge balance (never NaN)
    structure   space-group number and crystal system (one-hot) when the row has a space group
    host        lattice centring of the space group (one-hot: P, base A/B/C, I, F, R) and whether the export
                calls the electrode a conversion rather than an intercalation one (NaN when not given)

A featurizer that fails on a formula leaves NaN in its columns and a line in the
row's failure list; it never stops the others. Oxidation-state featurizers fall
back from charge-balanced guesses to pymatgen's full list of states and then to
a fixed-anion charge balance (fractional states allowed), so rows whose charge
balance fails keep their oxidation features. matminer ships its element tables,
so this runs offline.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pandas as pd

# Oxidation states are guessed on an integer formula; beyond this many sites
# pymatgen's enumeration gets slow and the fixed-anion balance is used instead.
MAX_OXIDATION_GUESS_SITES = 40
OXIDATION_FEATURIZERS = ("OxidationStates", "ElectronegativityDiff", "ElectronAffinity", "IonProperty")
FEATURE_GROUPS = ("discharged", "charged", "delta", "ion", "redox", "structure", "host")
WORKING_IONS = ("Li", "Na", "K", "Mg", "Ca", "Zn", "Al")
ION_VALENCE = {"Li": 1, "Na": 1, "K": 1, "Rb": 1, "Cs": 1, "Mg": 2, "Ca": 2, "Zn": 2, "Y": 3, "Al": 3}
# Anions in charge balance: element -> oxidation state (the most electronegative first wins the electrons).
ANION_STATES = {"F": -1, "O": -2, "Cl": -1, "N": -3, "Br": -1, "S": -2, "I": -1, "Se": -2, "Te": -2}
CRYSTAL_SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic")
# Lattice centrings (A, B and C are one base-centred kind: which face is a choice of axes).
CENTRINGS = ("P", "base", "I", "F", "R")
ELECTRODE_TYPES = ("intercalation", "conversion")
# Columns of the feature table that are not features.
META_COLUMNS = [
    "battery_id", "working_ion", "formula_charge", "formula_discharge", "spacegroup_number", "target_name", "target",
    "featurizer_failures",
]
# Record columns that are measured or computed outcomes: never features of a voltage model (target leakage).
OUTCOME_COLUMNS = (
    "average_voltage_V", "capacity_grav_mAh_g", "capacity_vol_mAh_cm3", "energy_grav_Wh_kg", "energy_vol_Wh_l",
    "stability_charge_eV_atom", "stability_discharge_eV_atom",
)


def build_featurizers() -> dict:
    """Featurizer name -> instance: the nine matminer composition featurizers."""
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


def balanced_cation_state(composition, working_ion: str | None = None) -> float:
    """Mean oxidation state of the cations other than the working ion, by charge balance with fixed anions.

    Anions take ANION_STATES (O -2, F -1, S -2, ...), the working ion its valence; the
    other elements share what balances the charge. Fractional results are kept (mixed valence).
    NaN when nothing is left to carry the charge. LiCoO2 -> 3.0 (Co), CoO2 -> 4.0.
    """
    anion_charge = sum(composition[el] * ANION_STATES[el.symbol] for el in composition if el.symbol in ANION_STATES)
    ion_amount = composition[working_ion] if working_ion and working_ion in [e.symbol for e in composition] else 0.0
    ion_charge = ion_amount * ION_VALENCE.get(working_ion or "", 1)
    cations = [el for el in composition if el.symbol not in ANION_STATES and el.symbol != working_ion]
    cation_amount = sum(composition[el] for el in cations)
    if cation_amount <= 0:
        return math.nan
    return float(-(anion_charge + ion_charge) / cation_amount)


def fixed_anion_decorated(composition):
    """Species with fixed anion states and the balancing mean state on every other element (never fails)."""
    from pymatgen.core import Composition, Species

    cations = [el for el in composition if el.symbol not in ANION_STATES]
    state = balanced_cation_state(composition)
    species = {}
    for el in composition:
        if el.symbol in ANION_STATES:
            oxidation = ANION_STATES[el.symbol]
        elif cations and np.isfinite(state):
            oxidation = round(state, 3)
        else:
            oxidation = 0.0
        species[Species(el.symbol, oxidation)] = composition[el]
    return Composition(species)


def oxidation_decorated(composition):
    """(composition with oxidation states, how they were found: 'guess' | 'all_states' | 'fixed_anions').

    Charge-balanced guesses with common states first, then with every state pymatgen knows,
    then the fixed-anion balance, so a row always gets oxidation states.
    """
    from pymatgen.core import Composition

    try:
        formula, _ = composition.get_integer_formula_and_factor(max_denominator=20)
        integer_composition = Composition(formula)
        small = set(integer_composition.elements) == set(composition.elements)
        if small and integer_composition.num_atoms <= MAX_OXIDATION_GUESS_SITES:
            for how, all_states in (("guess", False), ("all_states", True)):
                guesses = integer_composition.oxi_state_guesses(all_oxi_states=all_states, max_sites=-50)
                if guesses:
                    return integer_composition.add_charges_from_oxi_state_guesses(
                        oxi_states_override=None, all_oxi_states=all_states, max_sites=-50
                    ), how
    except Exception:  # pymatgen raises several kinds on exotic formulas: fall through to the fixed balance
        pass
    return fixed_anion_decorated(composition), "fixed_anions"


@functools.lru_cache(maxsize=None)
def ion_properties(working_ion: str) -> dict:
    """Working-ion properties from pymatgen's element table (plus a one-hot of the common ions)."""
    from pymatgen.core import Element

    element = Element(working_ion)
    values = {
        "valence": float(ION_VALENCE.get(working_ion, 1)),
        "electronegativity": float(element.X),
        "atomic_radius_A": float(element.atomic_radius or np.nan),
        "ionic_radius_A": float(element.average_ionic_radius or np.nan),
        "first_ionization_eV": float(element.ionization_energies[0]) if element.ionization_energies else np.nan,
        "atomic_mass_u": float(element.atomic_mass),
    }
    values.update({f"is_{ion}": float(ion == working_ion) for ion in WORKING_IONS})
    return values


def crystal_system(number: int) -> str:
    """Crystal system of a space-group number (1-230)."""
    bounds = ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"), (167, "trigonal"),
              (194, "hexagonal"), (230, "cubic"))
    for upper, name in bounds:
        if number <= upper:
            return name
    raise ValueError(f"space-group number {number} is not in 1-230")


@functools.lru_cache(maxsize=1)
def _hall_tables() -> tuple[dict, dict]:
    """(Hall symbol -> number, Hall symbol without inner minus signs -> number or 0 when ambiguous)."""
    import spglib

    exact, loose = {}, {}
    for hall_number in range(1, 531):
        entry = spglib.get_spacegroup_type(hall_number)
        exact.setdefault(entry.hall_symbol, entry.number)
        key = _without_inner_minus(entry.hall_symbol)
        loose[key] = entry.number if loose.get(key, entry.number) == entry.number else 0
    return exact, loose


def _without_inner_minus(symbol: str) -> str:
    symbol = " ".join(symbol.split())
    return symbol[:1] + symbol[1:].replace("-", "")


def spacegroup_number(text) -> int | None:
    """Space-group number of a cell as exports write it: a Hall symbol ('-P 2ybc' -> 14), a number, or H-M ('Fm-3m').

    Battery Explorer exports drop the minus signs inside Hall symbols ('P 2yc' for 'P -2yc', Pc); those are
    matched without them when that is unambiguous. None when empty or unknown.
    """
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    symbol = " ".join(str(text).replace('""', '"').split())
    if not symbol:
        return None
    if symbol.isdigit():
        number = int(symbol)
        return number if 1 <= number <= 230 else None
    exact, loose = _hall_tables()
    if symbol in exact:
        return exact[symbol]
    if loose.get(_without_inner_minus(symbol)):
        return loose[_without_inner_minus(symbol)]
    try:
        from pymatgen.symmetry.groups import SpaceGroup

        return int(SpaceGroup(symbol).int_number)
    except Exception:  # not a Hermann-Mauguin symbol pymatgen knows either
        return None


def structure_features(number: int | None) -> dict:
    values = {"spacegroup_number": float(number) if number else np.nan}
    system = crystal_system(number) if number else None
    values.update({f"is_{name}": (float(system == name) if system else np.nan) for name in CRYSTAL_SYSTEMS})
    return values


@functools.lru_cache(maxsize=1)
def _centring_by_number() -> dict[int, str]:
    """Space-group number -> lattice centring of its standard setting (first letter of the H-M symbol)."""
    import spglib

    centrings = {}
    for hall_number in range(1, 531):
        entry = spglib.get_spacegroup_type(hall_number)
        letter = entry.international_short[0]
        centrings.setdefault(entry.number, "base" if letter in "ABC" else letter)
    return centrings


def host_features(number: int | None, electrode_type: str) -> dict:
    """Lattice centring one-hot (NaN without a space group) and is_conversion (NaN unless the type is known)."""
    centring = _centring_by_number()[number] if number else None
    values = {f"centring_{name}": (float(centring == name) if centring else np.nan) for name in CENTRINGS}
    kind = str(electrode_type or "").strip().lower()
    values["is_conversion"] = float(kind == "conversion") if kind in ELECTRODE_TYPES else np.nan
    return values


def _composition_features(composition, featurizers: dict) -> tuple[dict, list[str], str]:
    """The nine featurizers on one composition: (values, failures, how oxidation states were found)."""
    decorated, how = oxidation_decorated(composition)
    values, failures = {}, []
    for name, featurizer in featurizers.items():
        labels = featurizer.feature_labels()
        try:
            row = featurizer.featurize(decorated if name in OXIDATION_FEATURIZERS else composition)
        except Exception as error:  # a failing featurizer is recorded, never fatal
            row = [np.nan] * len(labels)
            failures.append(f"{name}: {error}")
        values.update(zip(labels, row))
    return values, failures, how


def featurize_electrode(electrode: dict, featurizers: dict) -> tuple[dict, list[str]]:
    """(feature name -> value, failures as 'Featurizer: reason') of one electrode.

    `electrode` has formula_discharge, and optionally formula_charge, working_ion, spacegroup_number and type.
    """
    from assets.electrodes.formulas import parse_composition

    discharged = parse_composition(electrode["formula_discharge"])
    ion = electrode.get("working_ion") or ""
    charged_text = electrode.get("formula_charge") or ""
    charged = parse_composition(charged_text) if charged_text else discharged - {ion: discharged[ion]} if ion else discharged
    values, failures, how = _composition_features(discharged, featurizers)
    features = {f"discharged:{k}": v for k, v in values.items()}
    features["discharged:oxidation_by_fixed_anions"] = float(how == "fixed_anions")
    magpie = featurizers["ElementProperty"]
    try:
        charged_values = dict(zip(magpie.feature_labels(), magpie.featurize(charged)))
    except Exception as error:
        charged_values = {label: np.nan for label in magpie.feature_labels()}
        failures.append(f"ElementProperty (charged): {error}")
    for label, value in charged_values.items():
        features[f"charged:{label}"] = value
        features[f"delta:{label}"] = values.get(label, np.nan) - value
    if ion:
        features.update({f"ion:{k}": v for k, v in ion_properties(ion).items()})
    host_atoms = discharged.num_atoms - (discharged[ion] if ion else 0.0)
    ion_discharged = discharged[ion] if ion else 0.0
    ion_charged = charged[ion] if ion else 0.0
    redox = {
        "ion_per_host_atom_discharged": ion_discharged / host_atoms if host_atoms else np.nan,
        "ion_per_host_atom_charged": ion_charged / host_atoms if host_atoms else np.nan,
        "ion_fraction_discharged": ion_discharged / discharged.num_atoms,
        "cation_state_discharged": balanced_cation_state(discharged, ion or None),
        "cation_state_charged": balanced_cation_state(charged, ion or None),
        "anion_fraction": sum(discharged[el] for el in discharged if el.symbol in ANION_STATES) / discharged.num_atoms,
    }
    redox["ion_per_host_atom_change"] = redox["ion_per_host_atom_discharged"] - redox["ion_per_host_atom_charged"]
    redox["cation_state_change"] = redox["cation_state_charged"] - redox["cation_state_discharged"]
    if ion:
        transferred = (ion_discharged - ion_charged) * ION_VALENCE.get(ion, 1)
        redox["formula_capacity_mAh_g"] = float(transferred * 96485.33212 / (3.6 * discharged.weight))
    features.update({f"redox:{k}": v for k, v in redox.items()})
    features.update({f"structure:{k}": v for k, v in structure_features(electrode.get("spacegroup_number")).items()})
    host = host_features(electrode.get("spacegroup_number"), electrode.get("type", ""))
    features.update({f"host:{k}": v for k, v in host.items()})
    return features, failures


def featurize_chunk(electrodes: list[dict]) -> list[tuple[dict, list[str]]]:
    """Featurize a list of electrodes (the unit fanned out through Dask)."""
    featurizers = build_featurizers()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # matminer warns per call about data sources
        return [featurize_electrode(electrode, featurizers) for electrode in electrodes]


def featurize_electrodes(electrodes: list[dict], map_chunks, rows_per_chunk: int) -> tuple[pd.DataFrame, list[str]]:
    """(feature table in input order, failure text per row). map_chunks(fn, chunks) -> list of results.

    A single chunk runs in this process: no cluster start-up for a small table.
    """
    chunks = [electrodes[i : i + rows_per_chunk] for i in range(0, len(electrodes), rows_per_chunk)]
    results = map_chunks(featurize_chunk, chunks) if len(chunks) > 1 else [featurize_chunk(electrodes)]
    pairs = [pair for chunk in results for pair in chunk]
    table = pd.DataFrame([values for values, _ in pairs]).infer_objects()
    return table, ["; ".join(failures) for _, failures in pairs]


def featurize_formulas(formulas: list[str], map_chunks, rows_per_chunk: int, working_ion: str = "") -> tuple[pd.DataFrame, list[str]]:
    """Features of bare formulas (the discharged compositions), for notebooks and tests."""
    electrodes = [{"formula_discharge": formula, "working_ion": working_ion} for formula in formulas]
    return featurize_electrodes(electrodes, map_chunks, rows_per_chunk)


def electrode_inputs(records: pd.DataFrame) -> list[dict]:
    """The featurizer's input per record: formulas, working ion, space-group number and type only (never outcomes)."""
    numbers = [spacegroup_number(text) for text in records.get("spacegroup", pd.Series([""] * len(records)))]
    empty = [""] * len(records)
    return [
        {"formula_discharge": discharged, "formula_charge": charged, "working_ion": ion, "spacegroup_number": number,
         "type": kind}
        for discharged, charged, ion, number, kind in zip(
            records["formula_discharge"], records.get("formula_charge", empty), records["working_ion"], numbers,
            records.get("type", empty),
        )
    ]


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


def build_feature_table(
    records: pd.DataFrame, target: str, map_chunks, rows_per_chunk: int
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """(meta columns + informative features per record, dropped feature columns by reason).

    Features come from electrode_inputs() only; `target` is one of the records' numeric columns.
    """
    inputs = electrode_inputs(records)
    table, failures = featurize_electrodes(inputs, map_chunks, rows_per_chunk)
    keep, dropped = informative_columns(table)
    meta = pd.DataFrame(
        {
            "battery_id": records["battery_id"].to_numpy(),
            "working_ion": records["working_ion"].to_numpy(),
            "formula_charge": [item["formula_charge"] for item in inputs],
            "formula_discharge": records["formula_discharge"].to_numpy(),
            "spacegroup_number": [item["spacegroup_number"] or 0 for item in inputs],
            "target_name": target,
            "target": records[target].to_numpy(float),
            "featurizer_failures": failures,
        }
    )
    return pd.concat([meta, table[keep].astype("float64").reset_index(drop=True)], axis=1), dropped


def feature_columns(table: pd.DataFrame, groups=FEATURE_GROUPS) -> list[str]:
    """Feature columns of a table, of the given groups only (default: all)."""
    return [c for c in table.columns if c not in META_COLUMNS and c.split(":", 1)[0] in groups]


def failure_counts(failures: pd.Series) -> dict[str, int]:
    """Featurizer name -> number of rows it failed on."""
    counts: dict[str, int] = {}
    for text in failures:
        for failure in filter(None, str(text).split("; ")):
            name = failure.split(":", 1)[0]
            counts[name] = counts.get(name, 0) + 1
    return counts
