"""The Battery Explorer formula shapes real exports carry, and the capacity closed form."""

import pytest
from pymatgen.core import Composition

from assets.electrodes.formulas import (
    FARADAY_C_PER_MOL,
    FormulaError,
    battery_from_end_members,
    discharged_formula,
    parse_battery_formula,
    theoretical_capacity_mAh_per_g,
    working_ion_from_battery_id,
)


def same(formula_a: str, formula_b: str) -> bool:
    return Composition(formula_a).almost_equals(Composition(formula_b))


def test_en_dash_range_with_a_space_before_it():
    battery = parse_battery_formula("Zn0 –0.5VO2", "Zn")
    assert same(battery.charged, "VO2")
    assert same(battery.discharged, "Zn0.5VO2")
    assert (battery.ion_per_host_charged, battery.ion_per_host_discharged) == (0.0, 0.5)


def test_range_starting_above_zero():
    battery = parse_battery_formula("Li1 –2NbVO4", "Li")
    assert same(battery.charged, "LiNbVO4")
    assert same(battery.discharged, "Li2NbVO4")


@pytest.mark.parametrize("dash", ["-", "\u2013", "\u2014", "\u2212"])
@pytest.mark.parametrize("space", ["", " ", "\u00a0"])
def test_every_dash_and_space_a_spreadsheet_produces(dash, space):
    battery = parse_battery_formula(f"Li0{space}{dash}{space}1FePO4", "Li")
    assert same(battery.discharged, "LiFePO4")
    assert same(battery.charged, "FePO4")


def test_formula_without_range_is_the_discharged_compound():
    battery = parse_battery_formula("AlMn4(CuO4)3", "Al")
    assert same(battery.discharged, "AlMn4Cu3O12")
    assert same(battery.charged, "Mn4Cu3O12")


def test_battery_id_carries_the_working_ion():
    assert working_ion_from_battery_id("mp-1045535_Zn") == "Zn"
    assert working_ion_from_battery_id("mp-22526_Li") == "Li"
    with pytest.raises(FormulaError, match="mp-<number>_<ion>"):
        working_ion_from_battery_id("mp-1045535")


@pytest.mark.parametrize(
    ("formula", "ion", "message"),
    [
        ("Li0–1Xx2O3", "Li", "unknown element"),
        ("Li1–1CoO2", "Li", "empty intercalation range"),
        ("Li2–1CoO2", "Li", "empty intercalation range"),
        ("Zn0 –0.5VO2", "Li", "battery id says Li"),
        ("AlMn4(CuO4)3", "Li", "contains no Li"),
        ("", "Li", "empty formula"),
        ("Li0–1Co((O2", "Li", "cannot read formula"),
    ],
)
def test_unreadable_formulas_say_what_is_wrong(formula, ion, message):
    with pytest.raises(FormulaError, match=message):
        parse_battery_formula(formula, ion)


def test_theoretical_capacity_of_textbook_cathodes():
    """Q = F / (3.6 M): LiFePO4 170 mAh/g and LiCoO2 274 mAh/g (full delithiation)."""
    lifepo4 = theoretical_capacity_mAh_per_g(parse_battery_formula("Li0–1FePO4", "Li"))
    licoo2 = theoretical_capacity_mAh_per_g(parse_battery_formula("Li0–1CoO2", "Li"))
    assert lifepo4 == pytest.approx(170, abs=0.5)
    assert licoo2 == pytest.approx(274, abs=0.5)
    assert lifepo4 == pytest.approx(FARADAY_C_PER_MOL / (3.6 * Composition("LiFePO4").weight))


def test_divalent_ion_carries_twice_the_charge():
    zinc = theoretical_capacity_mAh_per_g(parse_battery_formula("Zn0–0.5VO2", "Zn"))
    expected = 0.5 * 2 * FARADAY_C_PER_MOL / (3.6 * Composition("Zn0.5VO2").weight)
    assert zinc == pytest.approx(expected)


def test_end_members_are_put_on_one_host_basis():
    """The API gives CoO2 and Li2Co2O4 as often as CoO2 and LiCoO2."""
    battery = battery_from_end_members("CoO2", "Li2Co2O4", "Li")
    assert (battery.ion_per_host_charged, battery.ion_per_host_discharged) == (0.0, 1.0)
    assert same(battery.discharged, "LiCoO2")
    with pytest.raises(FormulaError, match="no more Li"):
        battery_from_end_members("LiCoO2", "Li0.5CoO2", "Li")


def test_candidate_formulas_featurize_their_discharged_end():
    assert same(discharged_formula("Li0–1VPO4F"), "LiVPO4F")
    assert same(discharged_formula("LiMn0.5Fe0.5PO4"), "LiMn0.5Fe0.5PO4")
    with pytest.raises(FormulaError):
        discharged_formula("not a formula")
