"""Battery formulas as Materials Project Battery Explorer writes them.

Exports give the intercalation range of the working ion in front of the host:
`Zn0 –0.5VO2` is Zn_x VO2 for x from 0 (charged) to 0.5 (discharged), with an
en dash and stray spaces; `Li1 –2NbVO4` runs from LiNbVO4 to Li2NbVO4. A formula
without a range (`AlMn4(CuO4)3`) is read as the discharged compound, the charged
one being the same without the working ion. Battery ids carry the working ion
after the underscore (`mp-1045535_Zn`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FARADAY_C_PER_MOL = 96485.33212
# Any dash a spreadsheet or web page may have produced: hyphen, en, em, minus sign.
RANGE_PATTERN = re.compile(
    r"^(?P<ion>[A-Z][a-z]?)\s*(?P<low>\d+(?:\.\d+)?)\s*[-\u2010-\u2015\u2212]\s*(?P<high>\d+(?:\.\d+)?)\s*(?P<host>[A-Z(\[].*)$"
)
BATTERY_ID_PATTERN = re.compile(r"^\s*(?P<material>[A-Za-z]+-\d+)_(?P<ion>[A-Z][a-z]?)\s*$")


class FormulaError(ValueError):
    """A formula that cannot be read; the message says what was expected."""


@dataclass(frozen=True)
class BatteryFormula:
    """Charged and discharged compositions (reduced formula strings) of one electrode."""

    working_ion: str
    charged: str
    discharged: str
    ion_per_host_charged: float
    ion_per_host_discharged: float


def parse_composition(formula: str):
    """A pymatgen Composition of real elements, or FormulaError naming the formula."""
    from pymatgen.core import Composition, Element

    text = str(formula).strip()
    if not text:
        raise FormulaError("empty formula")
    try:
        composition = Composition(text)
    except Exception as error:  # pymatgen raises ValueError, KeyError or its own CompositionError
        raise FormulaError(f"cannot read formula {text!r}: {error}") from None
    if composition.num_atoms <= 0:
        raise FormulaError(f"formula {text!r} has no atoms")
    unknown = [str(species) for species in composition if not isinstance(species, Element)]
    if unknown:  # pymatgen reads unknown symbols as dummy species
        raise FormulaError(f"formula {text!r} has unknown element(s) {', '.join(unknown)}")
    return composition


def working_ion_from_battery_id(battery_id: str) -> str:
    """'mp-1045535_Zn' -> 'Zn'; FormulaError for any other shape."""
    match = BATTERY_ID_PATTERN.match(str(battery_id))
    if not match:
        raise FormulaError(f"battery id {battery_id!r} is not of the form 'mp-<number>_<ion>'")
    return match["ion"]


def clean_formula_text(text: str) -> str:
    """Non-breaking spaces to spaces, trimmed (exports copied from web pages carry them)."""
    return str(text).replace("\u00a0", " ").strip()


def parse_battery_formula(formula: str, working_ion: str | None = None) -> BatteryFormula:
    """Charged/discharged compositions from an export formula (module docstring).

    `working_ion` (from the battery id) must agree with the ion of a range; a
    formula without a range needs it and must contain it.
    """
    text = clean_formula_text(formula)
    match = RANGE_PATTERN.match(text)
    if match:
        return _from_range(text, match, working_ion)
    if not working_ion:
        raise FormulaError(f"formula {text!r} has no intercalation range and no working ion is known")
    discharged = parse_composition(text)
    ion_count = discharged[working_ion]
    if ion_count <= 0:
        raise FormulaError(
            f"formula {text!r} has no intercalation range (expected e.g. '{working_ion}0–1CoO2') "
            f"and contains no {working_ion}"
        )
    charged = discharged - {working_ion: ion_count}
    if charged.num_atoms <= 0:
        raise FormulaError(f"formula {text!r} is the bare working ion")
    return BatteryFormula(working_ion, charged.formula, discharged.formula, 0.0, float(ion_count))


def _from_range(text: str, match: re.Match, working_ion: str | None) -> BatteryFormula:
    ion, low, high = match["ion"], float(match["low"]), float(match["high"])
    if working_ion and ion != working_ion:
        raise FormulaError(f"formula {text!r} intercalates {ion} but the battery id says {working_ion}")
    if not high > low:
        raise FormulaError(f"formula {text!r} has an empty intercalation range {low:g} to {high:g}")
    host = parse_composition(match["host"])
    parse_composition(ion)  # an unknown ion symbol fails here, naming it
    charged = host + {ion: low} if low > 0 else host
    discharged = host + {ion: high}
    return BatteryFormula(ion, charged.formula, discharged.formula, low, high)


def theoretical_capacity_mAh_per_g(battery: BatteryFormula) -> float:
    """Gravimetric capacity of the full range, per gram of discharged electrode.

    Q = dx * z * F / (3.6 * M_discharged), with z the ion's charge (Li/Na/K 1,
    Mg/Zn/Ca 2, Al 3): LiFePO4 gives 170 mAh/g, LiCoO2 274 mAh/g.
    """
    valence = {"Li": 1, "Na": 1, "K": 1, "Mg": 2, "Ca": 2, "Zn": 2, "Al": 3}.get(battery.working_ion, 1)
    ion_transferred = battery.ion_per_host_discharged - battery.ion_per_host_charged
    molar_mass_g = parse_composition(battery.discharged).weight
    return float(ion_transferred * valence * FARADAY_C_PER_MOL / (3.6 * molar_mass_g))


def battery_from_end_members(charged_formula: str, discharged_formula: str, working_ion: str) -> BatteryFormula:
    """Charged and discharged formulas (as the Materials Project API gives them) on one host basis.

    The discharged composition is rescaled so that its host (everything but the
    working ion) matches the charged one: CoO2 / LiCoO2 -> x from 0 to 1.
    """
    charged = parse_composition(charged_formula)
    discharged = parse_composition(discharged_formula)
    host_charged = charged.num_atoms - charged[working_ion]
    host_discharged = discharged.num_atoms - discharged[working_ion]
    if host_charged <= 0 or host_discharged <= 0:
        raise FormulaError(f"{charged_formula!r} / {discharged_formula!r} have no host besides {working_ion}")
    discharged = discharged * (host_charged / host_discharged)
    if not discharged[working_ion] > charged[working_ion]:
        raise FormulaError(
            f"discharged {discharged_formula!r} holds no more {working_ion} than charged {charged_formula!r}"
        )
    return BatteryFormula(
        working_ion, charged.formula, discharged.formula, float(charged[working_ion]), float(discharged[working_ion])
    )


def discharged_formula(formula: str) -> str:
    """The composition to featurize for a user's formula: the discharged end of a range, else the formula."""
    text = clean_formula_text(formula)
    match = RANGE_PATTERN.match(text)
    if match:
        return _from_range(text, match, None).discharged
    return parse_composition(text).formula
