"""Synthetic LFP/graphite cells in the Severson pickle format (the embedded default).

The batch is a dict keyed by cell ("s1c0", ...), each with
    cycle_life      cycles to 80 % of the initial discharge capacity
    charge_policy   "C1(Q1%)-C2" as in Severson et al. (e.g. "5.4C(40%)-3.6C")
    summary         per cycle 1..cycle_life: cycle, QD, QC (Ah), IR (ohm),
                    Tavg, Tmin, Tmax (degC), chargetime (min)
    cycles          {"<n>": {t (min), V (V), I (A), Qc, Qd (Ah), T (degC),
                    Qdlin, Tdlin, dQdV (on the 1000-point grid 3.6 -> 2.0 V)}}
so `pickle.dump(batch, f)` writes a file the pickle reader takes like a real one.

Physics kept on purpose (Severson et al., Nature Energy 4, 383 (2019)): a flat
two-phase LFP plateau holding most of the capacity, capacity fade with a knee,
internal resistance growth that pulls the 4C discharge plateau down, and
therefore an early change of the discharge curve Q_100(V) - Q_10(V) whose
variance scales with 1/cycle_life squared, blurred by per-cell noise.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

NOMINAL_CAPACITY_AH = 1.1
VOLTAGE_HIGH_V, VOLTAGE_LOW_V = 3.6, 2.0
QDLIN_POINTS = 1000
DISCHARGE_C_RATE = 4.0  # Severson cells were all discharged at 4C
LIFE_RANGE_CYCLES = (150.0, 2300.0)
FEATURE_CYCLES = (2, 10, 100)  # cycles the Severson features read; always simulated in detail


def voltage_grid() -> np.ndarray:
    """The Qdlin voltage grid (V): 1000 points from 3.6 V down to 2.0 V."""
    return np.linspace(VOLTAGE_HIGH_V, VOLTAGE_LOW_V, QDLIN_POINTS)


def detail_cycles(last_cycle: int, stride: int) -> np.ndarray:
    """Cycles simulated with full traces: every `stride`-th up to `last_cycle`, plus the feature cycles."""
    cycles = set(range(stride, last_cycle + 1, stride)) | {c for c in FEATURE_CYCLES if c <= last_cycle}
    return np.array(sorted(cycles))


def discharged_fraction(voltage_v: np.ndarray, plateau_v: np.ndarray) -> np.ndarray:
    """Share of the capacity delivered once discharge reaches voltage_v (0 at 3.6 V, 1 at 2.0 V).

    92 % sits on the two-phase plateau (width 25 mV), the rest on the sloped end
    of discharge; plateau_v broadcasts against voltage_v.
    """

    def raw(v):
        return 0.92 * expit((plateau_v - v) / 0.025) + 0.08 * expit((2.75 - v) / 0.15)

    low, high = raw(VOLTAGE_HIGH_V), raw(VOLTAGE_LOW_V)
    return (raw(voltage_v) - low) / (high - low)


def _cell_parameters(n_cells: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-cell draws (arrays of length n_cells)."""
    low, high = np.log10(LIFE_RANGE_CYCLES)
    return {
        "life": np.round(10 ** rng.uniform(low, high, n_cells)),
        "q0": rng.normal(1.075, 0.008, n_cells),  # Ah, initial discharge capacity
        "linear_fade": np.clip(0.05 * np.exp(rng.normal(0, 0.15, n_cells)), 0.01, 0.15),
        "break_in": rng.uniform(0.0, 0.006, n_cells),  # Ah gained over the first ~100 cycles
        "knee_power": rng.uniform(5.0, 10.0, n_cells),
        "r0": rng.normal(0.0165, 0.0008, n_cells),  # ohm
        "r_growth": 0.004 * np.exp(rng.normal(0, 0.2, n_cells)),  # ohm over the whole life
        "t0": rng.normal(31.5, 1.0, n_cells),  # degC
        "c1": np.round(rng.uniform(3.6, 8.0, n_cells), 1),
        "q1": rng.choice([20, 30, 40, 50, 60, 70], n_cells),
        "c2": np.round(rng.uniform(3.0, 6.0, n_cells), 1),
    }


def _fade(cycle: np.ndarray, p: dict, cell: slice | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(discharge capacity in Ah, internal resistance in ohm) at cycle (broadcast over cells)."""
    life = p["life"][cell, None]
    x = cycle / life
    power = p["knee_power"][cell, None]
    linear = p["linear_fade"][cell, None]
    fade = linear * x + (0.2 - linear) * x**power  # 20 % of q0 at cycle_life (break-in aside)
    resistance = p["r0"][cell, None] + p["r_growth"][cell, None] * (0.4 * x + 0.6 * x**power)
    break_in = p["break_in"][cell, None] * (1 - np.exp(-cycle / 30.0))  # early capacity rise of fresh cells
    return p["q0"][cell, None] * (1 - fade) + break_in, resistance


def charge_policy(c1: float, q1: int, c2: float) -> str:
    return f"{c1:.1f}C({q1:d}%)-{c2:.1f}C"


def charge_time_min(c1: np.ndarray, q1: np.ndarray, c2: np.ndarray) -> np.ndarray:
    """Minutes from 0 to 80 % state of charge under the two-step policy."""
    return 60.0 * (q1 / 100 / c1 + (0.8 - q1 / 100) / c2)


def _summary(p: dict, i: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    cycles = np.arange(1, int(p["life"][i]) + 1, dtype=float)
    qd, ir = (a[0] for a in _fade(cycles[None, :], p, np.array([i])))
    qd = qd + rng.normal(0, 5e-4, cycles.size)
    tavg = p["t0"][i] + 2.0 * cycles / p["life"][i] + rng.normal(0, 0.15, cycles.size)
    return {
        "cycle": cycles,
        "QD": qd,
        "QC": qd + np.abs(rng.normal(2e-3, 5e-4, cycles.size)),
        "IR": ir + rng.normal(0, 1e-4, cycles.size),
        "Tavg": tavg,
        "Tmin": tavg - 2.0,
        "Tmax": tavg + 4.0 + 0.5 * p["c1"][i],
        "chargetime": np.full(cycles.size, charge_time_min(p["c1"][i], p["q1"][i], p["c2"][i])),
    }


def _discharge_curves(p: dict, cycles: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Qdlin (Ah) on the voltage grid, shape (cells, cycles, 1000), plus the capacity and resistance."""
    qd, resistance = _fade(cycles[None, :], p, slice(None))
    current_a = DISCHARGE_C_RATE * NOMINAL_CAPACITY_AH
    # Cycle-to-cycle jitter of the plateau (temperature, rest time) keeps the
    # variance-life relation noisy, as in the measured cells.
    plateau_v = 3.30 - current_a * resistance + rng.normal(0, 4e-4, qd.shape)
    grid = voltage_grid()
    fraction = discharged_fraction(grid[None, None, :], plateau_v[..., None])
    qdlin = qd[..., None] * fraction + rng.normal(0, 5e-5, fraction.shape)
    return {"Qdlin": np.maximum.accumulate(qdlin, axis=-1), "QD": qd, "IR": resistance}


def _cycle_traces(qdlin: np.ndarray, qd: float, resistance: float, policy: tuple, t_avg: float,
                  points: int) -> dict[str, np.ndarray]:
    """Time traces of one cycle: CC-CC-1C charge to full, 5 min rest, 4C discharge to 2.0 V."""
    c1, q1, c2 = policy
    steps_soc = np.array([0.0, q1 / 100, 0.8, 1.0])
    rates_c = np.array([c1, c2, 1.0])
    step_hours = np.diff(steps_soc) / rates_c
    charge_min = 60 * step_hours.sum()
    discharge_min = 60 * qd / (DISCHARGE_C_RATE * NOMINAL_CAPACITY_AH)
    n_charge = points // 2
    t_charge = np.linspace(0, charge_min, n_charge)
    t_discharge = np.linspace(0, discharge_min, points - n_charge)
    soc = np.interp(t_charge, 60 * np.concatenate([[0], np.cumsum(step_hours)]), steps_soc)
    rate = rates_c[np.minimum(np.searchsorted(steps_soc[1:], soc, side="right"), 2)]
    grid = voltage_grid()
    ocv = np.interp(1 - soc, qdlin / qd, grid)  # the discharge curve read backwards
    v_charge = np.minimum(ocv + 2 * rate * NOMINAL_CAPACITY_AH * resistance + 0.05, VOLTAGE_HIGH_V)
    q_discharge = t_discharge / 60 * DISCHARGE_C_RATE * NOMINAL_CAPACITY_AH
    v_discharge = np.interp(q_discharge, qdlin, grid)
    heat = np.concatenate([np.sin(np.pi * t_charge / charge_min), np.sin(np.pi * t_discharge / discharge_min)])
    temperature = t_avg - 1.5 + 5.0 * heat
    discharge_temperature = temperature[n_charge:]
    return {
        "t": np.concatenate([t_charge, charge_min + 5.0 + t_discharge]),
        "V": np.concatenate([v_charge, v_discharge]),
        "I": np.concatenate([rate, -np.full(t_discharge.size, DISCHARGE_C_RATE)]) * NOMINAL_CAPACITY_AH,
        "Qc": np.concatenate([soc * qd, np.full(t_discharge.size, qd)]),
        "Qd": np.concatenate([np.zeros(n_charge), q_discharge]),
        "T": temperature,
        "Qdlin": qdlin,
        "Tdlin": np.interp(grid, v_discharge[::-1], discharge_temperature[::-1]),
        "dQdV": -np.gradient(qdlin, grid),
    }


def synthetic_batch(n_cells: int, last_detail_cycle: int = 100, detail_stride: int = 10,
                    points_per_cycle: int = 80, seed: int = 0) -> dict[str, dict]:
    """A Severson-format batch of n_cells synthetic cells (module docstring)."""
    rng = np.random.default_rng(seed)
    p = _cell_parameters(n_cells, rng)
    cycles = detail_cycles(last_detail_cycle, detail_stride)
    curves = _discharge_curves(p, cycles.astype(float), rng)
    batch = {}
    for i in range(n_cells):
        summary = _summary(p, i, rng)
        policy = (p["c1"][i], p["q1"][i], p["c2"][i])
        traces = {
            str(c): _cycle_traces(curves["Qdlin"][i, j], curves["QD"][i, j], curves["IR"][i, j], policy,
                                  p["t0"][i] + 2.0 * c / p["life"][i], points_per_cycle)
            for j, c in enumerate(cycles)
            if c <= p["life"][i]
        }
        batch[f"s1c{i}"] = {
            "cycle_life": float(p["life"][i]),
            "charge_policy": charge_policy(*policy),
            "summary": summary,
            "cycles": traces,
        }
    return batch


def batch_to_tree(batch: dict[str, dict]) -> dict[str, object]:
    """Flatten a batch to '/'-paths (cell/summary/QD, cell/cycles/10/Qdlin) for HDF5 storage."""
    tree: dict[str, object] = {}
    for cell, record in batch.items():
        tree[f"{cell}/cycle_life"] = np.float64(record["cycle_life"])
        tree[f"{cell}/charge_policy"] = record["charge_policy"]
        for name, values in record["summary"].items():
            tree[f"{cell}/summary/{name}"] = values
        for cycle, arrays in record["cycles"].items():
            for name, values in arrays.items():
                tree[f"{cell}/cycles/{cycle}/{name}"] = values
    return tree


def tree_to_batch(tree: dict[str, object]) -> dict[str, dict]:
    """Inverse of batch_to_tree: the nested Severson dict."""
    batch: dict[str, dict] = {}
    for path, value in tree.items():
        if path.startswith("@"):
            continue
        node = batch
        *parents, leaf = path.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value
    return batch


def fade_curves_markdown(batch: dict[str, dict], max_cells: int = 12) -> str:
    """Discharge capacity against cycle for the first max_cells cells (PNG Markdown)."""
    from resources.plots import figure_markdown, new_figure

    fig, axes = new_figure()
    ax = axes[0][0]
    for record in list(batch.values())[:max_cells]:
        ax.plot(record["summary"]["cycle"], record["summary"]["QD"], lw=1)
    ax.axhline(0.8 * NOMINAL_CAPACITY_AH, color="k", ls=":", lw=1)
    ax.set_xlabel("cycle")
    ax.set_ylabel("discharge capacity (Ah)")
    return figure_markdown(fig, "capacity fade")
