"""Features against hand-computed values; oxidation states that never drop a row; no target leakage."""

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition

from assets.electrodes.features import (
    OUTCOME_COLUMNS,
    balanced_cation_state,
    build_feature_table,
    electrode_inputs,
    feature_columns,
    featurize_electrodes,
    featurize_formulas,
    informative_columns,
    oxidation_decorated,
    spacegroup_number,
)
from assets.electrodes.sources import EMBEDDED_CSV, read_export_csv
from resources.cluster import DaskResource

SYNC = DaskResource(synchronous=True).map


@pytest.fixture(scope="module")
def licoo2_and_friends():
    return featurize_formulas(["Li1 Co1 O2", "LiFePO4", "NeAr"], SYNC, rows_per_chunk=2, working_ion="Li")


def test_licoo2_features_match_hand_computed_values(licoo2_and_friends):
    table, failures = licoo2_and_friends
    licoo2 = table.iloc[0]
    assert failures[0] == ""
    assert licoo2["discharged:MagpieData mean Number"] == pytest.approx((3 + 27 + 2 * 8) / 4)
    assert licoo2["discharged:transition metal fraction"] == pytest.approx(0.25)  # one Co in four atoms
    assert licoo2["discharged:maximum oxidation state"] == 3 and licoo2["discharged:minimum oxidation state"] == -2
    assert licoo2["discharged:MagpieData range Electronegativity"] == pytest.approx(3.44 - 0.98)  # O minus Li
    # charged end CoO2 (the ion removed): mean atomic number (27 + 16) / 3, and the difference
    assert licoo2["charged:MagpieData mean Number"] == pytest.approx((27 + 16) / 3)
    assert licoo2["delta:MagpieData mean Number"] == pytest.approx(11.5 - 43 / 3)
    assert licoo2["redox:cation_state_discharged"] == pytest.approx(3.0)  # Co3+
    assert licoo2["redox:cation_state_charged"] == pytest.approx(4.0)  # Co4+
    assert licoo2["ion:valence"] == 1 and licoo2["ion:is_Li"] == 1 and licoo2["ion:is_Mg"] == 0
    assert licoo2["ion:electronegativity"] == pytest.approx(0.98)


def test_rows_whose_charge_balance_fails_keep_their_oxidation_features(licoo2_and_friends):
    table, failures = licoo2_and_friends
    assert table.loc[2, "discharged:oxidation_by_fixed_anions"] == 1  # NeAr: no charge-balanced guess
    assert np.isfinite(table.loc[2, "discharged:maximum oxidation state"])
    assert table.loc[2, "discharged:MagpieData mean Number"] == pytest.approx((10 + 18) / 2)
    assert len(table) == 3  # chunks (2 + 1 rows) come back in order
    assert table.loc[1, "discharged:transition metal fraction"] == pytest.approx(1 / 7)
    _, how = oxidation_decorated(Composition("Li3Fe2O5"))  # Fe3+ + Fe4+: only with every known state
    assert how == "all_states"


def test_fixed_anion_balance_gives_the_host_cation_state():
    assert balanced_cation_state(Composition("Li7Ti5O12"), "Li") == pytest.approx((24 - 7) / 5)
    assert balanced_cation_state(Composition("LiFeF3"), "Li") == pytest.approx(2.0)
    assert balanced_cation_state(Composition("Mg0.5V2O5"), "Mg") == pytest.approx((10 - 1) / 2)
    assert np.isnan(balanced_cation_state(Composition("LiF"), "Li"))  # nothing left to carry the charge


@pytest.mark.parametrize(
    "text, number",
    [("-P 2ybc", 14), ("P 2yc", 7), ("F 4d 2 3 1d", 227), ('-R 3 2"', 166), ("Fm-3m", 225), ("62", 62), ("", None),
     ("not a group", None), ("999", None)],
)
def test_space_groups_as_exports_write_them(text, number):
    """Battery Explorer writes Hall symbols and drops their inner minus signs ('P 2yc' is Pc, 'F 4d 2 3 1d' Fd-3m)."""
    assert spacegroup_number(text) == number


def test_constant_all_nan_and_text_columns_are_dropped_and_named():
    table = pd.DataFrame(
        {"useful": [1.0, 2.0, 3.0], "constant": [5.0, 5.0, 5.0], "empty": [np.nan] * 3, "HOMO_element": ["O", "O", "S"]}
    )
    keep, dropped = informative_columns(table)
    assert keep == ["useful"]
    assert dropped == {"non_numeric": ["HOMO_element"], "all_nan": ["empty"], "constant": ["constant"]}


def test_no_measured_outcome_enters_the_features():
    """Energy (voltage x capacity), capacity and stability never reach a feature: changing them changes nothing."""
    records, _, _ = read_export_csv(EMBEDDED_CSV)
    records = pd.DataFrame(records).head(8).reset_index(drop=True)
    records["average_voltage_V"] = np.linspace(1, 4, len(records))
    rng = np.random.default_rng(0)
    for column in OUTCOME_COLUMNS[1:]:
        records[column] = rng.uniform(0, 1000, len(records))
    table, _ = build_feature_table(records, "average_voltage_V", SYNC, 100)
    changed = records.copy()
    for column in OUTCOME_COLUMNS[1:]:
        changed[column] = rng.uniform(0, 1000, len(records))
    changed["average_voltage_V"] = changed["average_voltage_V"] * 2  # the target too: it is only the target
    other, _ = build_feature_table(changed, "average_voltage_V", SYNC, 100)
    columns = feature_columns(table)
    pd.testing.assert_frame_equal(table[columns], other[columns])
    assert not {c.split(":", 1)[-1] for c in columns} & set(OUTCOME_COLUMNS)
    assert all(set(item) == {"formula_discharge", "formula_charge", "working_ion", "spacegroup_number", "type"}
               for item in electrode_inputs(records))


def test_host_features_give_the_lattice_centring_and_the_electrode_type():
    """Centring of the space group (Fm-3m face-centred, R-3m rhombohedral, C2/c base-centred, ...) and the export's Type."""
    from assets.electrodes.features import host_features

    expected = {"Fm-3m": "F", "R-3m": "R", "C2/c": "base", "Cmcm": "base", "Immm": "I", "P2_1/c": "P", "-P 2ybc": "P"}
    for symbol, centring in expected.items():
        values = host_features(spacegroup_number(symbol), "intercalation")
        assert [name for name, value in values.items() if name.startswith("centring_") and value == 1] == [
            f"centring_{centring}"], symbol
        assert values["is_conversion"] == 0
    assert host_features(None, "Conversion")["is_conversion"] == 1
    unknown = host_features(None, "")
    assert all(np.isnan(value) for value in unknown.values())


def test_an_unknown_space_group_leaves_the_structure_features_empty_not_the_row():
    table, failures = featurize_electrodes(
        [{"formula_discharge": "LiFePO4", "working_ion": "Li", "spacegroup_number": spacegroup_number("P nonsense")}],
        SYNC, 10,
    )
    assert np.isnan(table.loc[0, "structure:spacegroup_number"]) and failures == [""]
    assert table.loc[0, "discharged:MagpieData mean Number"] > 0
