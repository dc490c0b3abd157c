"""Vectorised simulation of labelled impedance spectra for the nine circuit classes.

One call evaluates a whole class at once: parameters are (N, 1) arrays and the
frequency grids an (N, M) array, so there is no per-spectrum Python loop. Spectra have
different point counts; shorter grids are padded by repeating their last frequency and
the padding is cut off when the spectra are listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from assets.eis.circuits import CIRCUITS, LOG_UNIFORM_KINDS, Circuit, block_time_constant
from assets.eis.formats import WARBURG_EXPONENT_SCALE, challenge_frame

# Sampling ranges per parameter kind (log-uniform for LOG_UNIFORM_KINDS, else uniform),
# chosen so most time constants (R C ~ 5e-7..5e-2 s) show inside the 10..1e5 rad/s grid.
DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    "resistance": (5e-2, 5.0),  # Ohm
    "capacitance": (1e-5, 1e-2),  # F
    "cpe_q": (1e-5, 1e-2),  # F s^(t-1)
    "cpe_exponent": (0.4, 1.0),
    "inductance": (1e-7, 1e-5),  # H
    "gerischer_time": (1e-4, 1e-1),  # s
    "warburg_time": (1e-3, 1.0),  # s
    "warburg_exponent": (0.3, 0.7),
}


@dataclass(frozen=True)
class SimulationSettings:
    """Frequencies in rad/s: the challenge files' `freq` convention (Z computed at j*freq)."""

    spectra_per_class: int = 50
    points_min: int = 24
    points_max: int = 83
    freq_min_range: tuple[float, float] = (0.01, 10.0)  # lowest frequency, log-uniform
    freq_max_range: tuple[float, float] = (1e5, 2e6)  # highest frequency, log-uniform
    noise_relative_std: float = 0.005  # Gaussian noise on Re and Im, as a fraction of |Z|
    noise_absolute_ohm: float = 0.0  # plus this Gaussian noise floor (Ohm)
    ranges: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_RANGES))


@dataclass
class SimulatedClass:
    """One class's batch: omega and Z (N, M) padded, true point counts and parameters."""

    circuit: Circuit
    omega: np.ndarray
    impedance: np.ndarray
    n_points: np.ndarray
    parameters: dict[str, np.ndarray]  # name -> (N,)


def sample_parameters(circuit: Circuit, n: int, ranges, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw n parameter sets (each (N,)) from the kind's distribution."""
    params = {}
    for name, kind in zip(circuit.parameters, circuit.kinds):
        low, high = ranges[kind]
        if kind in LOG_UNIFORM_KINDS:
            params[name] = 10 ** rng.uniform(np.log10(low), np.log10(high), n)
        else:
            params[name] = rng.uniform(low, high, n)
    return params


def canonical_block_order(circuit: Circuit, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Renumber interchangeable blocks by ascending time constant (block 1 = fastest arc).

    Without this, a spectrum of two RCPE blocks has two equally valid labels, and a
    regressor can only learn their average.
    """
    ordered = dict(params)
    kind_of = dict(zip(circuit.parameters, circuit.kinds))
    for group in circuit.block_groups:
        kinds = [kind_of[name] for name in group[0]]
        taus = np.stack([block_time_constant([params[n] for n in block], kinds) for block in group])  # (blocks, N)
        order = np.argsort(taus, axis=0)
        for position in range(len(group[0])):
            stacked = np.stack([params[block[position]] for block in group])
            for rank, block in enumerate(group):
                ordered[block[position]] = np.take_along_axis(stacked, order[rank : rank + 1], axis=0)[0]
    return ordered


def frequency_grids(n: int, settings: SimulationSettings, rng: np.random.Generator):
    """Per-spectrum log-spaced grids, ascending: (omega (N, M) padded, n_points (N,))."""
    n_points = rng.integers(settings.points_min, settings.points_max + 1, n)
    log_low = rng.uniform(*np.log10(settings.freq_min_range), n)[:, None]
    log_high = rng.uniform(*np.log10(settings.freq_max_range), n)[:, None]
    position = np.arange(settings.points_max)[None, :] / (n_points[:, None] - 1)
    return 10 ** (log_low + (log_high - log_low) * np.minimum(position, 1.0)), n_points


def add_noise(z: np.ndarray, settings: SimulationSettings, rng: np.random.Generator) -> np.ndarray:
    scale = settings.noise_relative_std * np.abs(z) + settings.noise_absolute_ohm
    return z + scale * (rng.standard_normal(z.shape) + 1j * rng.standard_normal(z.shape))


def simulate_class(circuit: Circuit, n: int, settings: SimulationSettings, rng: np.random.Generator) -> SimulatedClass:
    params = canonical_block_order(circuit, sample_parameters(circuit, n, settings.ranges, rng))
    omega, n_points = frequency_grids(n, settings, rng)
    clean = circuit.impedance({k: v[:, None] for k, v in params.items()}, omega)
    return SimulatedClass(circuit, omega, add_noise(clean, settings, rng), n_points, params)


def simulate_all(settings: SimulationSettings, rng: np.random.Generator) -> list[SimulatedClass]:
    return [simulate_class(CIRCUITS[name], settings.spectra_per_class, settings, rng) for name in sorted(CIRCUITS)]


def as_challenge_frame(batches: list[SimulatedClass], labelled: bool = True, warburg_exponent_scale: float = WARBURG_EXPONENT_SCALE):
    """The batches as one challenge-format table (padding cut off; freq = omega in rad/s; W1_p stored
    as exponent x 6.5, the challenge files' convention, so the table reads back with the defaults)."""
    freq_rows, z_rows, circuits, params = [], [], [], []
    for batch in batches:
        for i, n in enumerate(batch.n_points):
            freq_rows.append(batch.omega[i, :n])
            z_rows.append(batch.impedance[i, :n])
            circuits.append(batch.circuit.name)
            params.append({name: values[i] * (warburg_exponent_scale if name == "W1_p" else 1.0) for name, values in batch.parameters.items()})
    return challenge_frame(freq_rows, z_rows, circuits if labelled else None, params if labelled else None)


@dataclass(frozen=True)
class LabelFittedSettings:
    """A simulator fitted to a user's labelled spectra (their training split only).

    Each parameter is drawn from its class's training values independently of the others (so new
    combinations appear), then jittered: log-scaled parameters by a normal jitter of `jitter_decades`
    in log10, clipped to the training range widened by the jitter; exponents by `exponent_jitter`,
    clipped to the training range. Frequency grids are the training spectra's own. No noise by
    default: the challenge spectra are noise-free (their stored parameters reproduce Z to 0.1 %).
    """

    spectra_per_class: int = 1000
    jitter_decades: float = 0.3
    exponent_jitter: float = 0.03
    noise_relative_std: float = 0.0


def sample_like(circuit: Circuit, observed: np.ndarray, n: int, settings: LabelFittedSettings, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """n parameter sets (name -> (n,)) drawn from the observed (K, P) values of one class."""
    params = {}
    for j, (name, log_scaled) in enumerate(zip(circuit.parameters, circuit.log_scaled)):
        values = observed[:, j]
        drawn = values[rng.integers(0, len(values), n)]
        if log_scaled:
            low, high = np.log10(values.min()) - settings.jitter_decades, np.log10(values.max()) + settings.jitter_decades
            params[name] = 10 ** np.clip(np.log10(drawn) + rng.normal(0.0, settings.jitter_decades, n), low, high)
        else:
            params[name] = np.clip(drawn + rng.normal(0.0, settings.exponent_jitter, n), values.min(), values.max())
    return params


def pad_edge(arrays) -> tuple[np.ndarray, np.ndarray]:
    """1-D arrays stacked to (N, longest), each continued by repeating its last value; and their lengths (N,).
    One gather, not a np.pad per row: on a GPU the host-side loops bound the whole fit."""
    n_points = np.array([len(a) for a in arrays])
    starts = np.cumsum(n_points) - n_points
    index = starts[:, None] + np.minimum(np.arange(n_points.max()), n_points[:, None] - 1)
    return np.concatenate(arrays)[index], n_points


def simulate_like_labels(
    circuit: Circuit, observed: np.ndarray, grids: list[np.ndarray], settings: LabelFittedSettings, rng: np.random.Generator
) -> SimulatedClass:
    """One class's spectra from parameters like `observed` (K, P) on grids drawn from `grids` (rad/s, ascending)."""
    n = settings.spectra_per_class
    params = canonical_block_order(circuit, sample_like(circuit, observed, n, settings, rng))
    omega, n_points = pad_edge([np.asarray(grids[i], float) for i in rng.integers(0, len(grids), n)])
    clean = circuit.impedance({k: v[:, None] for k, v in params.items()}, omega)
    noise = SimulationSettings(noise_relative_std=settings.noise_relative_std)
    return SimulatedClass(circuit, omega, add_noise(clean, noise, rng) if settings.noise_relative_std > 0 else clean, n_points, params)
