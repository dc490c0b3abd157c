"""Equivalent-circuit elements and the nine circuit classes of the EIS challenge format.

Every formula is plain arithmetic on arrays of angular frequency `omega` (rad/s), so the
same function works on numpy arrays and torch tensors; where a transcendental function
is needed it comes from the namespace argument `xp` (`numpy` or `torch`). Parameters
broadcast against `omega`: a batch of N spectra passes parameters of shape (N, 1) and
omega of shape (N, M).

Circuit names read left to right as blocks in series: `L` inductor, `R` resistor,
`RC` a resistor parallel to a capacitor, `RCPE` a resistor parallel to a constant-phase
element, `G` a Gerischer element, `Ws` a finite-length Warburg element with a
short-circuit terminus and a free exponent (as in ZView's "Ws": Z = R tanh((j w T)^p) /
(j w T)^p, which is impedance.py's `Ws` at p = 0.5).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

# Parameter kinds: how a parameter is sampled and whether a model sees it in log scale.
LOG_UNIFORM_KINDS = ("resistance", "capacitance", "cpe_q", "inductance", "gerischer_time", "warburg_time")
UNIFORM_KINDS = ("cpe_exponent", "warburg_exponent")


def inductor(inductance_H, omega):
    return inductance_H * 1j * omega


def capacitor(capacitance_F, omega):
    return 1 / (capacitance_F * 1j * omega)


def j_omega_power(omega, exponent, xp=np):
    """(j w)^t = w^t exp(j pi t / 2) for w > 0: a real power and a phase, far cheaper
    than a complex power."""
    return omega**exponent * xp.exp(1j * (math.pi / 2) * exponent)


def cpe(q, exponent, omega, xp=np):
    """Constant-phase element Z = 1 / (Q (j w)^t); q in F s^(t-1)."""
    return 1 / (q * j_omega_power(omega, exponent, xp))


def parallel(*impedances):
    return 1 / sum(1 / z for z in impedances)


def rc(resistance_ohm, capacitance_F, omega):
    """R parallel to C: Z = R / (1 + j w R C)."""
    return resistance_ohm / (1 + resistance_ohm * capacitance_F * 1j * omega)


def rcpe(resistance_ohm, q, exponent, omega, xp=np):
    """R parallel to a CPE: Z = R / (1 + R Q (j w)^t)."""
    return resistance_ohm / (1 + resistance_ohm * q * j_omega_power(omega, exponent, xp))


def gerischer(resistance_ohm, time_s, omega, xp=np):
    """Gerischer element Z = R_g / sqrt(1 + j w t_g) (impedance.py's `G`)."""
    return resistance_ohm / xp.sqrt(1 + 1j * omega * time_s)


def warburg_short(resistance_ohm, time_s, exponent, omega, xp=np):
    """Finite-length Warburg, short-circuit terminus: Z = R tanh((j w T)^p) / (j w T)^p."""
    scaled = j_omega_power(omega * time_s, exponent, xp)
    return resistance_ohm * xp.tanh(scaled) / scaled


@dataclass(frozen=True)
class Circuit:
    """One circuit class: its parameter names (in file order), their kinds and Z(omega)."""

    name: str
    parameters: tuple[str, ...]
    kinds: tuple[str, ...]
    formula: Callable[..., object]  # formula(params: Mapping[name, array], omega, xp) -> Z
    # Groups of interchangeable blocks in series (swapping two leaves Z unchanged); each
    # block lists its parameter names, resistance first (see block_time_constant).
    block_groups: tuple[tuple[tuple[str, ...], ...], ...] = ()
    # The elements in series, left to right: (token of the name, its parameters). The first parameter
    # of each is the one whose zero removes the element (L, R, or a block's resistance).
    elements: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def log_scaled(self) -> tuple[bool, ...]:
        """True for parameters sampled log-uniformly (and modelled in log10)."""
        return tuple(kind in LOG_UNIFORM_KINDS for kind in self.kinds)

    def impedance(self, params: Mapping[str, object], omega, xp=np):
        """Complex impedance in Ohm at angular frequency omega (rad/s)."""
        return self.formula(params, omega, xp)


def block_time_constant(values: list, kinds: list[str]):
    """Characteristic time (s) of one block from its values (resistance first):
    R C for RC, (R Q)^(1/t) for RCPE, t_g for a Gerischer element."""
    if kinds[1] == "gerischer_time":
        return values[1]
    if kinds[1] == "capacitance":
        return values[0] * values[1]
    return (values[0] * values[2]) ** (1 / values[1])


def _rcpe_chain(p, omega, xp, first: int, count: int, resistor_offset: int):
    """Series of `count` RCPE blocks CPE<first>.. using resistors R<first+offset>.."""
    return sum(
        rcpe(p[f"R{k + resistor_offset}"], p[f"CPE{k}_C"], p[f"CPE{k}_t"], omega, xp)
        for k in range(first, first + count)
    )


def _l_r_rcpe(n_blocks: int) -> Circuit:
    names = ["L1", "R1"]
    kinds = ["inductance", "resistance"]
    for k in range(1, n_blocks + 1):
        names += [f"R{k + 1}", f"CPE{k}_t", f"CPE{k}_C"]
        kinds += ["resistance", "cpe_exponent", "cpe_q"]

    def formula(p, omega, xp):
        return inductor(p["L1"], omega) + p["R1"] + _rcpe_chain(p, omega, xp, 1, n_blocks, resistor_offset=1)

    blocks = tuple((f"R{k + 1}", f"CPE{k}_t", f"CPE{k}_C") for k in range(1, n_blocks + 1))
    elements = (("L", ("L1",)), ("R", ("R1",))) + tuple(("RCPE", block) for block in blocks)
    return Circuit("L-R" + "-RCPE" * n_blocks, tuple(names), tuple(kinds), formula, (blocks,) if n_blocks > 1 else (), elements)


def _rcpe_only(n_blocks: int) -> Circuit:
    names = [f"R{k}" for k in range(1, n_blocks + 1)]
    kinds = ["resistance"] * n_blocks
    for k in range(1, n_blocks + 1):
        names += [f"CPE{k}_t", f"CPE{k}_C"]
        kinds += ["cpe_exponent", "cpe_q"]

    def formula(p, omega, xp):
        return _rcpe_chain(p, omega, xp, 1, n_blocks, resistor_offset=0)

    blocks = tuple((f"R{k}", f"CPE{k}_t", f"CPE{k}_C") for k in range(1, n_blocks + 1))
    return Circuit("-".join(["RCPE"] * n_blocks), tuple(names), tuple(kinds), formula, (blocks,), tuple(("RCPE", block) for block in blocks))


def _rc_g_g(p, omega, xp):
    return (
        rc(p["R1"], p["C1"], omega)
        + gerischer(p["R_g1"], p["t_g1"], omega, xp)
        + gerischer(p["R_g2"], p["t_g2"], omega, xp)
    )


def _rc_rc_rcpe_rcpe(p, omega, xp):
    return rc(p["R1"], p["C1"], omega) + rc(p["R2"], p["C2"], omega) + _rcpe_chain(p, omega, xp, 3, 2, resistor_offset=0)


def _rs_ws(p, omega, xp):
    return p["R1"] + warburg_short(p["W1_R"], p["W1_T"], p["W1_p"], omega, xp)


CIRCUITS: dict[str, Circuit] = {
    circuit.name: circuit
    for circuit in [
        _l_r_rcpe(1),
        _l_r_rcpe(2),
        _l_r_rcpe(3),
        Circuit(
            "RC-G-G",
            ("R1", "C1", "R_g1", "t_g1", "R_g2", "t_g2"),
            ("resistance", "capacitance", "resistance", "gerischer_time", "resistance", "gerischer_time"),
            _rc_g_g,
            ((("R_g1", "t_g1"), ("R_g2", "t_g2")),),
            (("RC", ("R1", "C1")), ("G", ("R_g1", "t_g1")), ("G", ("R_g2", "t_g2"))),
        ),
        Circuit(
            "RC-RC-RCPE-RCPE",
            ("R1", "R2", "R3", "R4", "C1", "C2", "CPE3_C", "CPE3_t", "CPE4_C", "CPE4_t"),
            ("resistance",) * 4 + ("capacitance",) * 2 + ("cpe_q", "cpe_exponent") * 2,
            _rc_rc_rcpe_rcpe,
            ((("R1", "C1"), ("R2", "C2")), (("R3", "CPE3_t", "CPE3_C"), ("R4", "CPE4_t", "CPE4_C"))),
            (("RC", ("R1", "C1")), ("RC", ("R2", "C2")), ("RCPE", ("R3", "CPE3_t", "CPE3_C")), ("RCPE", ("R4", "CPE4_t", "CPE4_C"))),
        ),
        _rcpe_only(2),
        _rcpe_only(3),
        _rcpe_only(4),
        Circuit(
            "Rs_Ws", ("R1", "W1_R", "W1_T", "W1_p"), ("resistance", "resistance", "warburg_time", "warburg_exponent"), _rs_ws, (),
            (("R", ("R1",)), ("Ws", ("W1_R", "W1_T", "W1_p"))),
        ),
    ]
}
CIRCUIT_NAMES: list[str] = sorted(CIRCUITS)


def reduced_circuit(parent: Circuit, removed: frozenset[int]) -> Circuit:
    """`parent` without the elements at positions `removed` (an undetermined inductance, resistance or
    block): the parent's formula with each removed element's first parameter at 0 (L = 0 or R = 0 makes
    the element vanish; its other parameters then do not matter and are held at 1). Named by the
    remaining tokens, e.g. L-R-RCPE without L is R-RCPE."""
    if not removed:
        return parent
    kept = [element for k, element in enumerate(parent.elements) if k not in removed]
    neutral = {}
    for k in removed:
        first, *rest = parent.elements[k][1]
        neutral.update({first: 0.0, **dict.fromkeys(rest, 1.0)})
    names = tuple(p for p in parent.parameters if p not in neutral)
    kinds = tuple(kind for p, kind in zip(parent.parameters, parent.kinds) if p not in neutral)
    groups = tuple(g for g in (tuple(b for b in group if b[0] not in neutral) for group in parent.block_groups) if len(g) > 1)

    def formula(p, omega, xp):
        like = next(iter(p.values())) * 0  # constants shaped and typed as the parameters (torch needs tensors)
        return parent.formula({**p, **{name: like + value for name, value in neutral.items()}}, omega, xp)

    return Circuit("-".join(token for token, _ in kept), names, kinds, formula, groups, tuple(kept))

# Each class as an impedance.py CustomCircuit string with our parameter names in its
# parameter order (its CPE takes (Q, alpha); its Ws is our Ws at W1_p = 0.5). Tests and
# benchmarks/eis_simulation.py use it as the reference implementation.
IMPEDANCE_PY_CIRCUITS: dict[str, tuple[str, tuple[str, ...]]] = {
    "L-R-RCPE": ("L0-R0-p(R1,CPE1)", ("L1", "R1", "R2", "CPE1_C", "CPE1_t")),
    "L-R-RCPE-RCPE": ("L0-R0-p(R1,CPE1)-p(R2,CPE2)", ("L1", "R1", "R2", "CPE1_C", "CPE1_t", "R3", "CPE2_C", "CPE2_t")),
    "L-R-RCPE-RCPE-RCPE": (
        "L0-R0-p(R1,CPE1)-p(R2,CPE2)-p(R3,CPE3)",
        ("L1", "R1", "R2", "CPE1_C", "CPE1_t", "R3", "CPE2_C", "CPE2_t", "R4", "CPE3_C", "CPE3_t"),
    ),
    "RC-G-G": ("p(R0,C0)-G0-G1", ("R1", "C1", "R_g1", "t_g1", "R_g2", "t_g2")),
    "RC-RC-RCPE-RCPE": (
        "p(R0,C0)-p(R1,C1)-p(R2,CPE0)-p(R3,CPE1)",
        ("R1", "C1", "R2", "C2", "R3", "CPE3_C", "CPE3_t", "R4", "CPE4_C", "CPE4_t"),
    ),
    "RCPE-RCPE": ("p(R0,CPE0)-p(R1,CPE1)", ("R1", "CPE1_C", "CPE1_t", "R2", "CPE2_C", "CPE2_t")),
    "RCPE-RCPE-RCPE": (
        "p(R0,CPE0)-p(R1,CPE1)-p(R2,CPE2)",
        ("R1", "CPE1_C", "CPE1_t", "R2", "CPE2_C", "CPE2_t", "R3", "CPE3_C", "CPE3_t"),
    ),
    "RCPE-RCPE-RCPE-RCPE": (
        "p(R0,CPE0)-p(R1,CPE1)-p(R2,CPE2)-p(R3,CPE3)",
        ("R1", "CPE1_C", "CPE1_t", "R2", "CPE2_C", "CPE2_t", "R3", "CPE3_C", "CPE3_t", "R4", "CPE4_C", "CPE4_t"),
    ),
    "Rs_Ws": ("R0-Ws0", ("R1", "W1_R", "W1_T")),
}
