"""Batched equivalent-circuit fitting with complex automatic differentiation (torch).

All spectra of one circuit class are fitted at once: the circuit's impedance comes from
`assets.eis.circuits` (the same formulas the numpy simulator uses, evaluated with
`xp=torch`), so there is one definition of every element. Parameters are optimised in
unbounded coordinates u and mapped into per-kind bounds by a sigmoid (in log10 for
log-scaled kinds such as R, C, Q, L and time constants; linearly for exponents), so no
step can leave the physical range.

The objective per spectrum is the mean squared weighted complex residual
|w (Z_model - Z_data)|^2 over its points, with w = 1/|Z_data| ("modulus", the
usual choice without measured variances) or w = 1 ("unit"). Three optimisers:

- "lm": batched Levenberg-Marquardt. Each spectrum has its own damping; the Jacobian
  comes from one reverse-mode pass over all spectra and points (residual_jacobian) and
  the P x P normal equations of all spectra are solved in one batched call, on the device.
- "adam": torch.optim.Adam on the summed objective (Adam is elementwise, so the
  spectra do not interact).
- "lbfgs": torch.optim.LBFGS with strong-Wolfe line search on the summed objective.

A fit reproduces its spectrum when its relative residual ||Z_model - Z_data|| / ||Z_data|| is at
most `FitSettings.converged_residual`; it is determined when it reproduces it and every parameter
is determined (assets/eis/uncertainty.py: standard errors from the Jacobian at the solution).
Starts: naive ones read off each spectrum, then, for spectra not yet reproduced, random ones (block
time constants drawn over the measured span); the lowest cost wins.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import torch

from assets.eis import uncertainty
from assets.eis.circuits import CIRCUITS, LOG_UNIFORM_KINDS, Circuit
from assets.eis.simulate import DEFAULT_RANGES, pad_edge

# Fit bounds per parameter kind (physical units, as in simulate.DEFAULT_RANGES): log-scaled
# kinds get three decades beyond the simulated ranges on each side; exponents their
# physical range.
FIT_BOUNDS: dict[str, tuple[float, float]] = {
    **{kind: (low * 1e-3, high * 1e3) for kind, (low, high) in DEFAULT_RANGES.items() if kind in LOG_UNIFORM_KINDS},
    "cpe_exponent": (0.1, 1.0),
    "warburg_exponent": (0.1, 1.0),
}
# Exponent bounds: CPE exponents slightly above 1 occur in the challenge data (up to 1.01).
EXPONENT_BOUNDS = {"cpe_exponent": (0.2, 1.2), "warburg_exponent": (0.05, 1.0)}
# Per-spectrum bounds (bounds="data"): resistances 1e-6..1e5 x max|Z| (an arc below the measured span
# can have R far above max|Z|: the challenge labels reach 1e4 x); time constants 1e-3/omega_max ..
# 1e3/omega_min; C and Q follow from them; L up to 10 max|Z| / omega_max.
R_SPAN = (1e-6, 1e5)
TAU_SPAN = (1e-3, 1e3)
Optimizer = Literal["lm", "adam", "lbfgs"]
Weighting = Literal["modulus", "unit"]
INTERIOR = 1e-9  # keeps initial values strictly inside the bounds (finite logit)


@dataclass(frozen=True)
class FitSettings:
    optimizer: Optimizer = "lm"
    weighting: Weighting = "modulus"
    max_iterations: int = 100
    learning_rate: float = 0.05  # Adam step size in the unbounded coordinates
    cost_tolerance: float = 1e-7  # LM: a spectrum stops when an accepted step lowers its cost by less (relative)
    converged_residual: float = 0.03  # relative residual at most this counts as converged
    dtype: Literal["float64", "float32"] = "float64"
    bounds: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(FIT_BOUNDS))
    # "data": per-spectrum bounds from |Z| and the frequency span (real cells: R up to 1e5 Ohm, Q down
    # to 1e-12) and a data-driven naive start; "kinds": the fixed per-kind `bounds` (simulator ranges x 1e+-3).
    bounds_mode: Literal["data", "kinds"] = "data"
    n_starts: int = 2  # naive starts tried per spectrum without a given start (bounds_mode "data")
    random_starts: int = 10  # then up to this many random starts for spectra not yet reproduced
    seed: int = 0  # of the random starts


@dataclass
class FitResult:
    """Fits of N spectra of one circuit; parameters (N, P) in the circuit's order."""

    circuit: Circuit
    parameters: np.ndarray
    relative_residual: np.ndarray
    weighted_cost: np.ndarray  # sum of squared weighted residuals (real and imaginary parts)
    n_points: np.ndarray
    iterations: np.ndarray
    reproduces: np.ndarray  # relative residual <= FitSettings.converged_residual
    standard_errors: np.ndarray  # (N, P) in the parameters' units
    correlation: np.ndarray  # (N, P, P)
    undetermined: list[dict[str, str]]  # per fit: {parameter: why the data does not determine it}

    @property
    def determined(self) -> np.ndarray:
        """(N,) reproduces the spectrum and determines every parameter."""
        return self.reproduces & np.array([not reasons for reasons in self.undetermined], dtype=bool)

    def rows(self, index: np.ndarray) -> "FitResult":
        return FitResult(self.circuit, self.parameters[index], self.relative_residual[index], self.weighted_cost[index],
                         self.n_points[index], self.iterations[index], self.reproduces[index], self.standard_errors[index],
                         self.correlation[index], [self.undetermined[i] for i in index])

    def replace_rows(self, index: np.ndarray, other: "FitResult") -> None:
        """Rows `index` take `other`'s fits (same circuit, one row of other per index)."""
        for name in ("parameters", "relative_residual", "weighted_cost", "iterations", "reproduces", "standard_errors", "correlation"):
            getattr(self, name)[index] = getattr(other, name)
        for i, reasons in zip(index, other.undetermined):
            self.undetermined[i] = reasons

    def information_criteria(self) -> tuple[np.ndarray, np.ndarray]:
        """(AIC, BIC) of the least-squares fits, counting Re and Im as 2 n observations."""
        n_obs = 2 * self.n_points
        log_likelihood_term = n_obs * np.log(np.maximum(self.weighted_cost, 1e-300) / n_obs)
        n_params = len(self.circuit.parameters)
        return log_likelihood_term + 2 * n_params, log_likelihood_term + n_params * np.log(n_obs)


class BoundedParameters:
    """Maps unbounded coordinates u (N, P) to a circuit's parameters inside bounds, per kind
    (`bounds`: kind -> (low, high)) or per spectrum (`limits`: (N, P, 2) physical values)."""

    def __init__(self, circuit: Circuit, bounds: dict[str, tuple[float, float]], dtype, device, limits: np.ndarray | None = None):
        self.circuit = circuit
        self.log_scaled = torch.tensor(circuit.log_scaled, device=device)
        if limits is None:
            limits = np.array([bounds[kind] for kind in circuit.kinds], dtype=float)[None, :, :]
        log_scaled = np.array(circuit.log_scaled)[None, :, None]
        scaled = np.where(log_scaled, np.log10(limits), limits)
        self.low = torch.tensor(scaled[..., 0], dtype=dtype, device=device)  # (1 or N, P)
        self.width = torch.tensor(scaled[..., 1] - scaled[..., 0], dtype=dtype, device=device)

    def subset(self, index: torch.Tensor) -> "BoundedParameters":
        if self.low.shape[0] == 1:
            return self
        other = object.__new__(BoundedParameters)
        other.circuit, other.log_scaled = self.circuit, self.log_scaled
        other.low, other.width = self.low[index], self.width[index]
        return other

    def values(self, u: torch.Tensor) -> torch.Tensor:
        """Physical parameter values (N, P)."""
        scaled = self.low + self.width * torch.sigmoid(u)
        return torch.where(self.log_scaled, 10.0**scaled, scaled)

    def fraction(self, u: torch.Tensor) -> torch.Tensor:
        """Position of each parameter inside its bounds, 0..1 (N, P)."""
        return torch.sigmoid(u)

    def unbounded(self, values: np.ndarray) -> torch.Tensor:
        """u for physical values (N, P); values outside the bounds are clipped inside."""
        values = torch.as_tensor(values, dtype=self.low.dtype, device=self.low.device)
        scaled = torch.where(self.log_scaled, torch.log10(values), values)
        fraction = ((scaled - self.low) / self.width).clamp(INTERIOR, 1 - INTERIOR)
        return torch.logit(fraction)

    def impedance(self, u: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
        """Z (N, M) at omega (N, M) from u (N, P)."""
        return self.impedance_of(self.values(u), omega)

    def impedance_of(self, values: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
        """Z (N, M) at omega (N, M) from physical values (N, P), or from values per point (N, M, P)."""
        # Complex parameters: the formulas are holomorphic in them, which residual_jacobian uses.
        values = values.to(omega.dtype.to_complex())
        columns = values.unbind(-1) if values.dim() == 3 else values[:, :, None].unbind(1)
        return self.circuit.impedance(dict(zip(self.circuit.parameters, columns)), omega, torch)


def spectra_limits(circuit: Circuit, omega: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(N, P, 2) bounds of each spectrum's parameters from its |Z| and frequency span (rad/s).

    omega, z: (N, M), one spectrum a row; shorter rows padded by repeating one of their points
    (pad_edge), which moves no extreme."""
    z_max = np.max(np.abs(z), axis=1)
    w_min, w_max = np.min(omega, axis=1), np.max(omega, axis=1)
    r_low, r_high = R_SPAN[0] * z_max, R_SPAN[1] * z_max
    tau_low, tau_high = TAU_SPAN[0] / w_max, TAU_SPAN[1] / w_min
    t_low, t_high = EXPONENT_BOUNDS["cpe_exponent"]
    q_candidates = np.stack([tau**t / r for tau in (tau_low, tau_high) for t in (t_low, t_high) for r in (r_low, r_high)])
    limits = {
        "resistance": (r_low, r_high),
        "capacitance": (tau_low / r_high, tau_high / r_low),
        "cpe_q": (q_candidates.min(axis=0), q_candidates.max(axis=0)),
        "inductance": (1e-9 * z_max / w_max, 10 * z_max / w_max),
        "gerischer_time": (tau_low, tau_high),
        "warburg_time": (tau_low, tau_high),
        **EXPONENT_BOUNDS,
    }
    out = np.empty((len(z_max), len(circuit.kinds), 2))
    for k, kind in enumerate(circuit.kinds):
        out[:, k, 0], out[:, k, 1] = limits[kind]
    return out


def data_starts(
    circuit: Circuit, omega: np.ndarray, z: np.ndarray, exponent: float = 0.8, reverse: bool = False, rng: np.random.Generator | None = None
) -> np.ndarray:
    """(N, P) naive starts read off each spectrum (no regressor, no truth): the series resistance from
    Re Z at the highest frequency, the rest of Re Z at the lowest frequency shared equally by the blocks,
    block time constants spread evenly in log over the measured span (fastest first; `reverse`: slowest
    first; with `rng`: placed at fractions of the span (widened by a tenth each side) drawn once for all
    spectra, sorted, so a spectrum gets the same starts whatever batch it is in),
    exponents `exponent` (CPE) / 0.5 (Warburg), L such that omega_max L = 1e-3 max|Z|.

    omega, z: (N, M) as in spectra_limits, frequencies in any order (of tied extreme frequencies, the first listed)."""
    omega, z = np.asarray(omega, float), np.asarray(z, complex)
    rows = np.arange(len(omega))
    lowest, highest = np.argmin(omega, axis=1), np.argmax(omega, axis=1)
    w_low, w_high = omega[rows, lowest], omega[rows, highest]
    z_max = np.max(np.abs(z), axis=1)

    def at_least(value, floor):  # Python's max(value, floor), NaN included
        return np.where(floor > value, floor, value)

    series = {parameters[0] for token, parameters in circuit.elements if token == "R"}
    r_series = at_least(z[rows, highest].real, 1e-4 * z_max)
    r_total = at_least(z[rows, lowest].real - (r_series if series else 0.0), 1e-3 * z_max)
    kinds = dict(zip(circuit.parameters, circuit.kinds))
    block_resistors = [p for p in circuit.parameters if kinds[p] == "resistance" and p not in series]
    n_blocks = max(len(block_resistors), 1)
    first, last = np.log10(1 / w_high), np.log10(1 / w_low)
    if rng is None:
        # The interior points of np.linspace(first, last, n_blocks + 2), its arithmetic per row.
        log_taus = first[:, None] + np.arange(1, n_blocks + 1) * ((last - first) / (n_blocks + 1))[:, None]
    else:
        log_taus = first[:, None] + (last - first)[:, None] * np.sort(rng.uniform(-0.1, 1.1, n_blocks))[None, :]
    if reverse:
        log_taus = log_taus[:, ::-1]
    tau_of = {name: 10 ** log_taus[:, k] for k, name in enumerate(block_resistors)}
    values = {}
    for name in circuit.parameters:
        kind = kinds[name]
        if kind == "resistance":
            values[name] = r_series if name not in tau_of else r_total / n_blocks
        elif kind == "inductance":
            values[name] = 1e-3 * z_max / w_high
        elif kind == "cpe_exponent":
            values[name] = exponent
        elif kind == "warburg_exponent":
            values[name] = 0.5
    # Time-constant kinds: pair each with its block's resistor (the circuit's block groups, or by number).
    for block in _blocks(circuit):
        resistor = block[0]
        tau = tau_of[resistor]  # every block of the nine circuits and their reductions starts with a block resistor
        for name in block[1:]:
            kind = kinds[name]
            if kind == "capacitance":
                values[name] = tau / values[resistor]
            elif kind == "cpe_q":
                t = values[[n for n in block if kinds[n] == "cpe_exponent"][0]]
                values[name] = tau**t / values[resistor]
            elif kind in ("gerischer_time", "warburg_time"):
                values[name] = tau
    return np.stack([np.broadcast_to(values[name], rows.shape) for name in circuit.parameters], axis=1).astype(float)


def data_start(circuit: Circuit, omega: np.ndarray, z: np.ndarray, exponent: float = 0.8, reverse: bool = False) -> np.ndarray:
    """data_starts of one spectrum, (P,)."""
    return data_starts(circuit, np.asarray(omega, float)[None], np.asarray(z, complex)[None], exponent, reverse)[0]


def _blocks(circuit: Circuit) -> list[tuple[str, ...]]:
    """Every block (resistor first, then its element parameters) of a circuit."""
    return [parameters for _, parameters in circuit.elements if len(parameters) > 1]


@dataclass
class PaddedSpectra:
    """Spectra padded to a common length; padded points have zero weight."""

    omega: torch.Tensor  # (N, M) rad/s
    impedance: torch.Tensor  # (N, M) complex, Ohm
    weight: torch.Tensor  # (N, M) residual weight, 0 on padding
    n_points: np.ndarray  # (N,)

    def subset(self, index: torch.Tensor) -> PaddedSpectra:
        return PaddedSpectra(self.omega[index], self.impedance[index], self.weight[index], self.n_points[index.cpu().numpy()])


def pad_spectra(omegas, impedances, weighting: Weighting, dtype, device) -> PaddedSpectra:
    """Pad by repeating each spectrum's last point (a valid frequency) with weight 0."""
    omega, n_points = pad_edge([np.asarray(o, float) for o in omegas])
    z, _ = pad_edge([np.asarray(zz, complex) for zz in impedances])
    valid = np.arange(omega.shape[1])[None, :] < n_points[:, None]
    weight = valid / np.abs(z) if weighting == "modulus" else valid.astype(float)
    weight = weight / np.sqrt(n_points)[:, None]  # cost = mean over a spectrum's points
    complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    return PaddedSpectra(
        torch.tensor(omega, dtype=dtype, device=device),
        torch.tensor(z, dtype=complex_dtype, device=device),
        torch.tensor(weight, dtype=dtype, device=device),
        n_points,
    )


def weighted_residual(model: BoundedParameters, u: torch.Tensor, spectra: PaddedSpectra) -> torch.Tensor:
    """Real residual vector per spectrum (N, 2M): weighted Re and Im differences."""
    difference = (model.impedance(u, spectra.omega) - spectra.impedance) * spectra.weight
    return torch.cat([difference.real, difference.imag], dim=-1)


def residual_jacobian(model: BoundedParameters, u: torch.Tensor, spectra: PaddedSpectra):
    """(residual (N, 2M), Jacobian (N, 2M, P) with respect to u), by value_jacobian and the chain rule
    through the elementwise bounds map v(u)."""
    with torch.enable_grad():
        coordinates = u.detach().requires_grad_(True)
        values = model.values(coordinates)
        dv_du = torch.autograd.grad(values.sum(), coordinates)[0]  # the map is elementwise: its diagonal
    residual, jacobian = value_jacobian(model, values.detach(), spectra)
    return residual, jacobian * dv_du[:, None, :]


def value_jacobian(model: BoundedParameters, values: torch.Tensor, spectra: PaddedSpectra):
    """(residual (N, 2M), Jacobian (N, 2M, P) with respect to the physical values), by one reverse-mode
    pass over per-point parameter copies.

    Point m of spectrum n depends only on spectrum n's parameters and omega[n, m], so with a
    copy of the (complex) parameters at every point, one backward pass of sum Z gives every
    point's derivatives. Z is holomorphic in complex parameters c, so torch's gradient
    conj(dZ/dc) holds both dRe Z/dv and dIm Z/dv at real c = v; the chain rule through the
    elementwise bounds map v(u) gives the Jacobian in u. (Forward mode needs a tangent per
    parameter and runs products with constants through torch's Python decompositions: several
    times slower on the CPU, host-bound on a GPU.)
    """
    with torch.enable_grad():
        per_point = values.detach().to(spectra.impedance.dtype)[:, None, :].expand(-1, spectra.omega.shape[1], -1)
        per_point = per_point.clone().requires_grad_(True)
        z = model.impedance_of(per_point, spectra.omega)
        dz_dv = torch.autograd.grad(z, per_point, torch.ones_like(z))[0].conj() * spectra.weight[..., None]
    difference = (z.detach() - spectra.impedance) * spectra.weight
    return torch.cat([difference.real, difference.imag], dim=-1), torch.cat([dz_dv.real, dz_dv.imag], dim=1)


CUDA_CHECK_EVERY = 8  # LM iterations between convergence checks on a GPU (each check waits for the device)


def _levenberg_marquardt(model, u, spectra, settings, max_step_tries: int = 6, check_every: int | None = None):
    """Batched LM; returns (u, iterations per spectrum).

    A stationary spectrum is masked out (its values stop changing). Every `check_every`
    iterations masked spectra leave the batch and the loop ends when none is left: each check
    copies a mask to the host, free on the CPU (every iteration) but a stall on a GPU
    (CUDA_CHECK_EVERY). Masked or compacted, every spectrum takes the same steps.
    """
    if check_every is None:
        check_every = 1 if u.device.type == "cpu" else CUDA_CHECK_EVERY
    iterations = torch.zeros(u.shape[0], dtype=torch.long, device=u.device)
    rows = torch.arange(u.shape[0], device=u.device)  # batch row -> spectrum
    u_batch, lam = u.clone(), torch.full((u.shape[0],), 1e-3, dtype=u.dtype, device=u.device)
    iterations_batch, active = iterations.clone(), torch.ones_like(iterations, dtype=torch.bool)
    batch, sub = spectra, model
    for iteration in range(settings.max_iterations):
        if iteration % check_every == 0:
            keep = active.nonzero()[:, 0]
            if keep.numel() < rows.numel():
                u[rows], iterations[rows] = u_batch, iterations_batch
                rows, u_batch, lam, iterations_batch = rows[keep], u_batch[keep], lam[keep], iterations_batch[keep]
                active = active[keep]
                batch, sub = spectra.subset(rows), model.subset(rows)
            if rows.numel() == 0:
                break
        iterations_batch += active  # the iteration that finds a spectrum stationary counts
        u_batch, lam, active = _lm_iteration(sub, u_batch, lam, active, batch, settings, max_step_tries, check_every == 1)
    u[rows], iterations[rows] = u_batch, iterations_batch
    return u, iterations


def _lm_iteration(model, u, lam, active, spectra, settings, max_step_tries: int, stop_early: bool):
    """One damped Gauss-Newton step for every active spectrum: (u, damping, still active)."""
    residual, jacobian = residual_jacobian(model, u, spectra)
    cost = (residual**2).sum(-1)
    gradient = (jacobian.transpose(1, 2) @ residual[..., None])[..., 0]
    curvature = jacobian.transpose(1, 2) @ jacobian
    scale = torch.diagonal(curvature, dim1=1, dim2=2).clamp_min(1e-12)
    accepted = ~active  # masked spectra try no step
    new_cost, u_next = cost, u
    for _ in range(max_step_tries):
        trying = ~accepted
        system = curvature + torch.diag_embed(lam[:, None] * scale)
        step = -torch.linalg.solve_ex(system, gradient)[0]  # a singular system gives a non-finite, rejected step
        trial = u + step
        trial_cost = (weighted_residual(model, trial, spectra) ** 2).sum(-1)
        better = trying & torch.isfinite(trial_cost) & (trial_cost < cost)
        u_next = torch.where(better[:, None], trial, u_next)
        new_cost = torch.where(better, trial_cost, new_cost)
        accepted = accepted | better
        lam = torch.where(better, lam / 3, torch.where(trying, lam * 4, lam))
        if stop_early and bool(accepted.all()):
            break
    # Stationary: the accepted step hardly helped, or no step helped even with heavy damping.
    small_gain = accepted & (cost - new_cost <= settings.cost_tolerance * cost)
    stuck = ~accepted & (lam >= 1e10)
    return u_next, lam.clamp(1e-12, 1e12), active & ~(small_gain | stuck)


def _summed_cost(model, u, spectra) -> torch.Tensor:
    return (weighted_residual(model, u, spectra) ** 2).sum()


def _adam(model, u, spectra, settings):
    u = u.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([u], lr=settings.learning_rate)
    for _ in range(settings.max_iterations):
        optimizer.zero_grad()
        _summed_cost(model, u, spectra).backward()
        optimizer.step()
    return u.detach(), torch.full((u.shape[0],), settings.max_iterations)


def _lbfgs(model, u, spectra, settings):
    u = u.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [u], lr=1.0, max_iter=settings.max_iterations, line_search_fn="strong_wolfe",  # the line search sizes steps
        tolerance_change=settings.cost_tolerance, tolerance_grad=1e-12,
    )

    def closure():
        optimizer.zero_grad()
        cost = _summed_cost(model, u, spectra)
        cost.backward()
        return cost

    optimizer.step(closure)
    iterations = optimizer.state[optimizer.param_groups[0]["params"][0]]["n_iter"]
    return u.detach(), torch.full((u.shape[0],), iterations)


OPTIMIZERS = {"lm": _levenberg_marquardt, "adam": _adam, "lbfgs": _lbfgs}


def torch_dtype(settings: FitSettings):
    return torch.float64 if settings.dtype == "float64" else torch.float32


def naive_start(circuit: Circuit, n_spectra: int) -> np.ndarray:
    """The centre of each kind's simulated range (geometric for log-scaled kinds), (N, P)."""
    centre = [
        math.sqrt(low * high) if kind in LOG_UNIFORM_KINDS else (low + high) / 2
        for low, high, kind in ((*DEFAULT_RANGES[kind], kind) for kind in circuit.kinds)
    ]
    return np.tile(centre, (n_spectra, 1))


def with_naive_gaps(circuit: Circuit, initial: np.ndarray) -> np.ndarray:
    """Initial values with non-finite or non-positive entries replaced by the naive start."""
    initial = np.asarray(initial, dtype=float)
    usable = np.isfinite(initial) & (initial > 0)
    return np.where(usable, initial, naive_start(circuit, len(initial)))


def relative_residual(circuit: Circuit, parameters: np.ndarray, omegas, impedances) -> np.ndarray:
    """||Z_model - Z_data|| / ||Z_data|| per spectrum, with the numpy formulas (all spectra in one call)."""
    omega, n_points = pad_edge([np.asarray(o, float) for o in omegas])
    z, _ = pad_edge([np.asarray(zz, complex) for zz in impedances])
    columns = np.asarray(parameters, float).T[:, :, None]
    model = circuit.impedance(dict(zip(circuit.parameters, columns)), omega)
    valid = np.arange(omega.shape[1])[None, :] < n_points[:, None]
    return np.sqrt(np.sum(np.abs(model - z) ** 2, axis=1, where=valid) / np.sum(np.abs(z) ** 2, axis=1, where=valid))


def circuit_impedance(circuit: Circuit, values: np.ndarray, omega: np.ndarray) -> np.ndarray:
    """Z (Ohm) of one parameter vector (circuit order) at omega (rad/s), numpy."""
    return circuit.impedance(dict(zip(circuit.parameters, values)), np.asarray(omega))


NAIVE_VARIANTS = ((0.8, False), (0.6, True), (1.0, False), (0.5, False))  # (CPE exponent, time constants reversed)


def fit_circuit(circuit: Circuit, omegas, impedances, initial: np.ndarray, settings: FitSettings, device="cpu") -> FitResult:
    """Fit one circuit to N spectra (lists of omega in rad/s and complex Z) from initial (N, P).

    Rows of `initial` with missing values take the naive start; with bounds_mode "data" that is read
    off each spectrum (data_starts) and, with n_starts > 1, the fit of such rows is repeated from
    other naive variants (exponents, time-constant order); then every spectrum not yet reproduced is
    refitted from `random_starts` random starts, all in one batch. Per spectrum the lowest cost is kept."""
    initial = np.asarray(initial, dtype=float).reshape(len(omegas), len(circuit.parameters))
    if settings.bounds_mode != "data":
        return _fit_once(circuit, omegas, impedances, with_naive_gaps(circuit, initial), settings, device, None)
    omega, _ = pad_edge([np.asarray(o, float) for o in omegas])
    z, _ = pad_edge([np.asarray(zz, complex) for zz in impedances])
    limits = spectra_limits(circuit, omega, z)
    usable = np.isfinite(initial) & (initial > 0)
    variants = NAIVE_VARIANTS[: max(settings.n_starts, 1)]
    best = _fit_once(circuit, omegas, impedances, np.where(usable, initial, data_starts(circuit, omega, z, *variants[0])), settings, device, limits)
    naive_rows = np.flatnonzero(~usable.all(axis=1))
    for exponent, reverse in variants[1:]:
        if naive_rows.size:
            _keep_better(best, naive_rows, _fit_once(circuit, [omegas[i] for i in naive_rows], [impedances[i] for i in naive_rows],
                                                     data_starts(circuit, omega, z, exponent, reverse)[naive_rows], settings, device, limits[naive_rows]))
    rows = np.flatnonzero(~best.reproduces)
    if settings.random_starts and rows.size:
        rng = np.random.default_rng(settings.seed)
        starts = np.concatenate([data_starts(circuit, omega[rows], z[rows], float(rng.uniform(0.55, 1.0)), False, rng) for _ in range(settings.random_starts)])
        repeated = np.tile(rows, settings.random_starts)  # start k of row j at position k * len(rows) + j
        result = _fit_once(circuit, [omegas[i] for i in repeated], [impedances[i] for i in repeated], starts, settings, device, limits[repeated])
        lowest = np.argmin(result.weighted_cost.reshape(settings.random_starts, len(rows)), axis=0) * len(rows) + np.arange(len(rows))
        _keep_better(best, rows, result.rows(lowest))
    return best


def _keep_better(best: FitResult, rows: np.ndarray, result: FitResult) -> None:
    """Rows `rows` of best take result's fit (one row each) where its cost is lower."""
    better = result.weighted_cost < best.weighted_cost[rows]
    best.replace_rows(rows[better], result.rows(np.flatnonzero(better)))


def _fit_once(circuit: Circuit, omegas, impedances, initial: np.ndarray, settings: FitSettings, device, limits) -> FitResult:
    dtype = torch_dtype(settings)
    model = BoundedParameters(circuit, settings.bounds, dtype, device, limits)
    spectra = pad_spectra(omegas, impedances, settings.weighting, dtype, device)
    u = model.unbounded(initial)
    with torch.no_grad() if settings.optimizer == "lm" else torch.enable_grad():
        u, iterations = OPTIMIZERS[settings.optimizer](model, u, spectra, settings)
    with torch.no_grad():
        values = model.values(u)
        residual_vector, jacobian = value_jacobian(model, values, spectra)
        # the weights hold 1/sqrt(n): the cost is the sum over points of |w (Z_model - Z_data)|^2
        n_points = torch.as_tensor(spectra.n_points, device=device)
        cost = (residual_vector**2).sum(-1) * n_points
        covariance = uncertainty.covariance(jacobian * torch.sqrt(n_points)[:, None, None], cost, spectra.n_points)
        standard_errors, correlation = uncertainty.standard_errors_and_correlation(covariance)
        parameters = values.double().cpu().numpy()
        fraction = model.fraction(u).double().cpu().numpy()
    residual = relative_residual(circuit, parameters, omegas, impedances)
    return FitResult(
        circuit=circuit,
        parameters=parameters,
        relative_residual=residual,
        weighted_cost=cost.double().cpu().numpy(),
        n_points=spectra.n_points,
        iterations=iterations.cpu().numpy(),
        reproduces=np.isfinite(residual) & (residual <= settings.converged_residual),
        standard_errors=standard_errors,
        correlation=correlation,
        undetermined=uncertainty.undetermined_reasons(circuit, parameters, standard_errors, fraction),
    )


def fit_spectra(
    omegas: list, impedances: list, circuits: list[str], initial: list[dict | None], settings: FitSettings, device="cpu"
) -> pd.DataFrame:
    """Fit every spectrum with its circuit, one batch per circuit class, rows in input order.

    initial[i] maps parameter names to start values (missing or None: naive start). `circuits` holds
    names of CIRCUITS or Circuit objects (e.g. reduced circuits).
    Columns: FIT_SPECTRA_COLUMNS; parameters, standard_errors (same units) and undetermined (parameter:
    reason) are dicts; fit_seconds is the wall time of the spectrum's class batch.
    """
    rows: list[dict | None] = [None] * len(circuits)
    circuits = [CIRCUITS[c] if isinstance(c, str) else c for c in circuits]
    keys = [(c.name, c.parameters) for c in circuits]  # reduced circuits of one name can differ in parameters
    for key in sorted(set(keys)):
        name = key[0]
        members = [i for i, k in enumerate(keys) if k == key]
        circuit = circuits[members[0]]
        start = np.array([[(initial[i] or {}).get(p, np.nan) for p in circuit.parameters] for i in members], float)
        began = time.perf_counter()
        result = fit_circuit(circuit, [omegas[i] for i in members], [impedances[i] for i in members], start, settings, device)
        seconds = time.perf_counter() - began
        aic, bic = result.information_criteria()
        correlation, pair = uncertainty.strongest_correlation(circuit, result.correlation)
        for k, i in enumerate(members):
            rows[i] = {
                "circuit": name,
                "parameters": dict(zip(circuit.parameters, result.parameters[k].tolist())),
                "standard_errors": dict(zip(circuit.parameters, result.standard_errors[k].tolist())),
                "undetermined": result.undetermined[k],
                "relative_residual": float(result.relative_residual[k]),
                "reproduces": bool(result.reproduces[k]),
                "determined": bool(result.determined[k]),
                "max_abs_correlation": float(correlation[k]),
                "correlated_pair": pair[k],
                "iterations": int(result.iterations[k]),
                "aic": float(aic[k]),
                "bic": float(bic[k]),
                "fit_seconds": seconds,
            }
    return pd.DataFrame(rows, columns=FIT_SPECTRA_COLUMNS)


FIT_SPECTRA_COLUMNS = [
    "circuit", "parameters", "standard_errors", "undetermined", "relative_residual", "reproduces", "determined",
    "max_abs_correlation", "correlated_pair", "iterations", "aic", "bic", "fit_seconds",
]


# ---- fitting tables of spectra (used by the eis_circuit_fits asset) ---------------------

FIT_COLUMNS = [
    "spectrum_id", "source", "row", "origin", "classifier_circuit", "circuit", "selected_by", "start", "initial_parameters",
    "parameters", "standard_errors", "relative_residual", "reproduces", "determined", "undetermined", "max_abs_correlation",
    "correlated_pair", "iterations", "aic", "bic", "supported_circuit", "supported_parameters", "supported_standard_errors",
    "supported_undetermined", "supported_relative_residual", "supported_bic",
    "initial_relative_residual", "initial_reproduces", "initial_iterations", "naive_parameters", "naive_relative_residual", "naive_reproduces", "naive_iterations",
]


def parameters_or_none(text, circuit: str) -> dict | None:
    """Challenge-format parameter text ('R1: 1.3, ...') as a dict, None when empty or not this circuit's."""
    from assets.eis.formats import RowError, parse_parameters

    if not isinstance(text, str) or not text.strip():
        return None
    try:
        return parse_parameters(text, circuit)
    except RowError:
        return None


def top_candidates(probabilities: pd.DataFrame, first: list[str], k: int) -> list[list[str]]:
    """Per row: `first` then the next most probable classes (columns p_<class>), k in all."""
    classes = [column[2:] for column in probabilities.columns]
    ranked = np.argsort(-probabilities.to_numpy(dtype=float), axis=1)
    return [[head] + [classes[j] for j in order if classes[j] != head][: k - 1] for head, order in zip(first, ranked)]


def named_values(text) -> dict[str, float]:
    """'R1: 1.3, C1: inf' -> {R1: 1.3, C1: inf}; any names, empty text -> {}."""
    if not isinstance(text, str):
        return {}
    return {name.strip(): float(value) for name, _, value in (item.partition(":") for item in text.split(",") if item.strip())}


def export_view(fits: pd.DataFrame) -> pd.DataFrame:
    """The fits as exported: per fitted parameter its value (named with its unit, 4 significant
    digits), its standard error (`<column>_se`, same unit) and whether the data determine it
    (`<parameter>_determined`); the same for the supported circuit (`supported_` prefix); residuals
    rounded, no packed parameter strings."""
    from assets.eis.exports import determined_columns, parameter_columns

    circuits = fits["circuit"].tolist()
    view = fits.drop(columns=["initial_parameters", "parameters", "naive_parameters", "standard_errors", "supported_parameters",
                              "supported_standard_errors"]).reset_index(drop=True)
    for column in ("relative_residual", "initial_relative_residual", "naive_relative_residual", "supported_relative_residual", "max_abs_correlation"):
        view[column] = view[column].astype(float).map(lambda v: float(f"{v:.4g}") if np.isfinite(v) else v)
    for column in ("aic", "bic", "supported_bic"):
        view[column] = view[column].astype(float).round(2)
    tables = [view]
    for prefix in ("", "supported_"):
        values = [named_values(text) for text in fits[f"{prefix}parameters"]]
        errors = [named_values(text) for text in fits[f"{prefix}standard_errors"]]
        reasons = [undetermined_names(text) for text in fits[f"{prefix}undetermined"]]
        tables += [
            parameter_columns(circuits, values, prefix=prefix), parameter_columns(circuits, errors, prefix=prefix, suffix="_se"),
            determined_columns(circuits, values, reasons, prefix=prefix),
        ]
    return pd.concat(tables, axis=1)


def undetermined_names(text) -> set[str]:
    """The parameter names of an 'undetermined' text ('L1: at a bound; R3: se 240% of value')."""
    return {item.partition(":")[0].strip() for item in str(text).split(";") if item.strip()} if isinstance(text, str) else set()


def log10_parameter_error(fitted_text: pd.Series, true_json: pd.Series, circuits: pd.Series) -> np.ndarray:
    """Median over each spectrum's parameters of |log10(fitted / true)| (NaN without parameters)."""
    import json

    errors = []
    for fitted, truth, circuit in zip(fitted_text, true_json, circuits):
        values, reference = parameters_or_none(fitted, circuit), json.loads(truth)
        errors.append(np.median([abs(math.log10(values[name] / reference[name])) for name in values]) if values else np.nan)
    return np.array(errors)


def fit_nyquist_markdown(fits: pd.DataFrame, spectra: pd.DataFrame, count: int) -> str:
    """Nyquist plot of the first `count` fits: measured points and the fitted circuit's curve."""
    from resources.plots import figure_markdown, new_figure

    fig, axes = new_figure(ncols=min(count, len(fits)), size=(3.5, 3.2))
    for ax, fit, spectrum in zip(axes[0], fits.head(count).itertuples(), spectra.head(count).itertuples()):
        omega = np.asarray(spectrum.omega_rad_s)
        dense = np.logspace(np.log10(omega[0]), np.log10(omega[-1]), 200)
        values = parameters_or_none(fit.parameters, fit.circuit)
        model = CIRCUITS[fit.circuit].impedance(values, dense)
        ax.plot(spectrum.z_real, -np.asarray(spectrum.z_imag), "o", ms=3, label="data")
        ax.plot(model.real, -model.imag, "-", lw=1, label=f"fit ({fit.relative_residual:.3%})")
        ax.set_title(f"{fit.spectrum_id}\n{fit.circuit}", fontsize=8)
        ax.set_xlabel("Re Z / Ohm")
        ax.set_ylabel("-Im Z / Ohm")
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(fontsize=8)
    return figure_markdown(fig, "circuit fits")
