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
  comes from forward-mode autodiff (one tangent per parameter, all spectra at once) and
  the P x P normal equations of all spectra are solved in one batched call.
- "adam": torch.optim.Adam on the summed objective (Adam is elementwise, so the
  spectra do not interact).
- "lbfgs": torch.optim.LBFGS with strong-Wolfe line search on the summed objective.

A fit counts as converged when it reproduces its spectrum: relative residual
||Z_model - Z_data|| / ||Z_data|| at most `FitSettings.converged_residual`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import torch

from assets.eis.circuits import CIRCUITS, LOG_UNIFORM_KINDS, Circuit
from assets.eis.simulate import DEFAULT_RANGES

# Fit bounds per parameter kind (physical units, as in simulate.DEFAULT_RANGES): log-scaled
# kinds get three decades beyond the simulated ranges on each side; exponents their
# physical range.
FIT_BOUNDS: dict[str, tuple[float, float]] = {
    **{kind: (low * 1e-3, high * 1e3) for kind, (low, high) in DEFAULT_RANGES.items() if kind in LOG_UNIFORM_KINDS},
    "cpe_exponent": (0.1, 1.0),
    "warburg_exponent": (0.1, 1.0),
}
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


@dataclass
class FitResult:
    """Fits of N spectra of one circuit; parameters (N, P) in the circuit's order."""

    circuit: Circuit
    parameters: np.ndarray
    relative_residual: np.ndarray
    weighted_cost: np.ndarray  # sum of squared weighted residuals (real and imaginary parts)
    n_points: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray

    def information_criteria(self) -> tuple[np.ndarray, np.ndarray]:
        """(AIC, BIC) of the least-squares fits, counting Re and Im as 2 n observations."""
        n_obs = 2 * self.n_points
        log_likelihood_term = n_obs * np.log(np.maximum(self.weighted_cost, 1e-300) / n_obs)
        n_params = len(self.circuit.parameters)
        return log_likelihood_term + 2 * n_params, log_likelihood_term + n_params * np.log(n_obs)


class BoundedParameters:
    """Maps unbounded coordinates u (N, P) to a circuit's parameters inside `bounds`."""

    def __init__(self, circuit: Circuit, bounds: dict[str, tuple[float, float]], dtype, device):
        self.circuit = circuit
        self.log_scaled = torch.tensor(circuit.log_scaled, device=device)
        limits = np.array([bounds[kind] for kind in circuit.kinds], dtype=float)
        scaled = np.where(np.array(circuit.log_scaled)[:, None], np.log10(limits), limits)
        self.low = torch.tensor(scaled[:, 0], dtype=dtype, device=device)
        self.width = torch.tensor(scaled[:, 1] - scaled[:, 0], dtype=dtype, device=device)

    def values(self, u: torch.Tensor) -> torch.Tensor:
        """Physical parameter values (N, P)."""
        scaled = self.low + self.width * torch.sigmoid(u)
        return torch.where(self.log_scaled, 10.0**scaled, scaled)

    def unbounded(self, values: np.ndarray) -> torch.Tensor:
        """u for physical values (N, P); values outside the bounds are clipped inside."""
        values = torch.as_tensor(values, dtype=self.low.dtype, device=self.low.device)
        scaled = torch.where(self.log_scaled, torch.log10(values), values)
        fraction = ((scaled - self.low) / self.width).clamp(INTERIOR, 1 - INTERIOR)
        return torch.logit(fraction)

    def impedance(self, u: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
        # Complex parameters: torch's forward-mode derivative of complex ** real-tensor drops
        # the imaginary part (torch 2.x), which would corrupt the CPE and Warburg exponent columns.
        values = self.values(u).to(omega.dtype.to_complex())
        named = {name: values[:, k : k + 1] for k, name in enumerate(self.circuit.parameters)}
        return self.circuit.impedance(named, omega, torch)


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
    n_points = np.array([len(omega) for omega in omegas])
    width = int(n_points.max())
    omega = np.stack([np.pad(np.asarray(o, float), (0, width - len(o)), mode="edge") for o in omegas])
    z = np.stack([np.pad(np.asarray(zz, complex), (0, width - len(zz)), mode="edge") for zz in impedances])
    valid = np.arange(width)[None, :] < n_points[:, None]
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
    """(residual (N, 2M), Jacobian (N, 2M, P)) by forward-mode autodiff, one tangent per parameter.

    Spectra are independent, so tangent k (1 in column k for every spectrum) yields column
    k of every spectrum's Jacobian in one pass.
    """
    basis = torch.eye(u.shape[1], dtype=u.dtype, device=u.device)[:, None, :].expand(-1, u.shape[0], -1)

    def residual(coordinates):
        return weighted_residual(model, coordinates, spectra)

    def column(tangent):
        return torch.func.jvp(residual, (u,), (tangent,))

    values, columns = torch.func.vmap(column, out_dims=(None, 0))(basis)
    return values, columns.permute(1, 2, 0)


def _levenberg_marquardt(model, u, spectra, settings, max_step_tries: int = 6):
    """Batched LM; returns (u, iterations per spectrum). Converged spectra leave the batch."""
    n_spectra = u.shape[0]
    damping = torch.full((n_spectra,), 1e-3, dtype=u.dtype, device=u.device)
    iterations = torch.zeros(n_spectra, dtype=torch.long, device=u.device)
    active = torch.arange(n_spectra, device=u.device)
    for _ in range(settings.max_iterations):
        if active.numel() == 0:
            break
        batch = spectra.subset(active)
        u_active, lam = u[active], damping[active]
        residual, jacobian = residual_jacobian(model, u_active, batch)
        cost = (residual**2).sum(-1)
        gradient = (jacobian.transpose(1, 2) @ residual[..., None])[..., 0]
        curvature = jacobian.transpose(1, 2) @ jacobian
        scale = torch.diagonal(curvature, dim1=1, dim2=2).clamp_min(1e-12)
        accepted = torch.zeros_like(cost, dtype=torch.bool)
        new_cost = cost.clone()
        u_next = u_active.clone()
        for _ in range(max_step_tries):
            trying = ~accepted
            system = curvature + torch.diag_embed(lam[:, None] * scale)
            step = -torch.linalg.solve_ex(system, gradient)[0]  # a singular system gives a non-finite, rejected step
            trial = u_active + step
            trial_cost = (weighted_residual(model, trial, batch) ** 2).sum(-1)
            better = trying & torch.isfinite(trial_cost) & (trial_cost < cost)
            u_next = torch.where(better[:, None], trial, u_next)
            new_cost = torch.where(better, trial_cost, new_cost)
            accepted |= better
            lam = torch.where(better, lam / 3, torch.where(trying, lam * 4, lam))
            if bool(accepted.all()):
                break
        u[active], damping[active] = u_next, lam.clamp(1e-12, 1e12)
        iterations[active] += 1
        # Stationary: the accepted step hardly helped, or no step helped even with heavy damping.
        small_gain = accepted & (cost - new_cost <= settings.cost_tolerance * cost)
        stuck = ~accepted & (lam >= 1e10)
        active = active[~(small_gain | stuck)]
    return u, iterations


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
    """||Z_model - Z_data|| / ||Z_data|| per spectrum, with the numpy formulas."""
    return np.array(
        [
            np.linalg.norm(circuit_impedance(circuit, values, omega) - z) / np.linalg.norm(z)
            for values, omega, z in zip(parameters, omegas, impedances)
        ]
    )


def circuit_impedance(circuit: Circuit, values: np.ndarray, omega: np.ndarray) -> np.ndarray:
    """Z (Ohm) of one parameter vector (circuit order) at omega (rad/s), numpy."""
    return circuit.impedance(dict(zip(circuit.parameters, values)), np.asarray(omega))


def fit_circuit(circuit: Circuit, omegas, impedances, initial: np.ndarray, settings: FitSettings, device="cpu") -> FitResult:
    """Fit one circuit to N spectra (lists of omega in rad/s and complex Z) from initial (N, P)."""
    dtype = torch_dtype(settings)
    model = BoundedParameters(circuit, settings.bounds, dtype, device)
    spectra = pad_spectra(omegas, impedances, settings.weighting, dtype, device)
    u = model.unbounded(with_naive_gaps(circuit, initial))
    with torch.no_grad() if settings.optimizer == "lm" else torch.enable_grad():
        u, iterations = OPTIMIZERS[settings.optimizer](model, u, spectra, settings)
    with torch.no_grad():
        cost = (weighted_residual(model, u, spectra) ** 2).sum(-1) * torch.as_tensor(spectra.n_points, device=device)
        parameters = model.values(u).double().cpu().numpy()
    residual = relative_residual(circuit, parameters, omegas, impedances)
    return FitResult(
        circuit=circuit,
        parameters=parameters,
        relative_residual=residual,
        weighted_cost=cost.double().cpu().numpy(),
        n_points=spectra.n_points,
        iterations=iterations.cpu().numpy(),
        converged=np.isfinite(residual) & (residual <= settings.converged_residual),
    )


def fit_spectra(
    omegas: list, impedances: list, circuits: list[str], initial: list[dict | None], settings: FitSettings, device="cpu"
) -> pd.DataFrame:
    """Fit every spectrum with its circuit, one batch per circuit class, rows in input order.

    initial[i] maps parameter names to start values (missing or None: naive start).
    Columns: circuit, parameters (dict), relative_residual, converged, iterations, aic, bic,
    fit_seconds (wall time of the spectrum's class batch).
    """
    rows: list[dict | None] = [None] * len(circuits)
    for name in sorted(set(circuits)):
        circuit = CIRCUITS[name]
        members = [i for i, c in enumerate(circuits) if c == name]
        start = np.array([[(initial[i] or {}).get(p, np.nan) for p in circuit.parameters] for i in members], float)
        began = time.perf_counter()
        result = fit_circuit(circuit, [omegas[i] for i in members], [impedances[i] for i in members], start, settings, device)
        seconds = time.perf_counter() - began
        aic, bic = result.information_criteria()
        for k, i in enumerate(members):
            rows[i] = {
                "circuit": name,
                "parameters": dict(zip(circuit.parameters, result.parameters[k].tolist())),
                "relative_residual": float(result.relative_residual[k]),
                "converged": bool(result.converged[k]),
                "iterations": int(result.iterations[k]),
                "aic": float(aic[k]),
                "bic": float(bic[k]),
                "fit_seconds": seconds,
            }
    return pd.DataFrame(rows, columns=["circuit", "parameters", "relative_residual", "converged", "iterations", "aic", "bic", "fit_seconds"])


# ---- fitting tables of spectra (used by the eis_circuit_fits asset) ---------------------

FIT_COLUMNS = [
    "spectrum_id", "source", "row", "origin", "classifier_circuit", "circuit", "selected_by", "start", "initial_parameters",
    "parameters", "relative_residual", "converged", "iterations", "aic", "bic",
    "initial_relative_residual", "initial_converged", "initial_iterations", "naive_parameters", "naive_relative_residual", "naive_converged", "naive_iterations",
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


def fit_with_selection(
    spectra: pd.DataFrame, candidates: list[list[str]], initial: list[dict | None], settings: FitSettings, criterion: str, device="cpu"
) -> pd.DataFrame:
    """Fit each spectrum's first candidate from `initial` and from the naive start and keep the
    better fit (the naive columns report the naive start alone); fit the other candidates from
    the naive start and keep, per spectrum, the lowest `criterion` ("aic"/"bic").

    spectra: rows with omega_rad_s, z_real, z_imag lists (formats.spectra_table) plus
    spectrum_id, source, row, origin. Returns FIT_COLUMNS, parameters as challenge-format text.
    """
    from assets.eis.formats import format_parameters

    omegas = [np.asarray(o) for o in spectra["omega_rad_s"]]
    impedances = [np.asarray(re) + 1j * np.asarray(im) for re, im in zip(spectra["z_real"], spectra["z_imag"])]
    first = [c[0] for c in candidates]
    primary = fit_spectra(omegas, impedances, first, initial, settings, device)
    naive = fit_spectra(omegas, impedances, first, [None] * len(first), settings, device)
    naive_better = naive["aic"] < primary["aic"]  # same circuit and points: lower AIC = lower cost
    chosen = primary.mask(naive_better, naive).assign(selected_by="classifier", start=np.where(naive_better, "naive", "initial"))
    for rank in range(1, max(map(len, candidates), default=1)):
        rows = [i for i, c in enumerate(candidates) if len(c) > rank]
        alternative = fit_spectra([omegas[i] for i in rows], [impedances[i] for i in rows], [candidates[i][rank] for i in rows], [None] * len(rows), settings, device)
        alternative.index = rows
        better = alternative[criterion] < chosen.loc[rows, criterion]
        chosen.loc[better[better].index, alternative.columns] = alternative[better]
        chosen.loc[better[better].index, ["selected_by", "start"]] = [criterion, "naive"]
    table = spectra[["spectrum_id", "source", "row", "origin"]].reset_index(drop=True).assign(
        classifier_circuit=first,
        circuit=chosen["circuit"].to_numpy(),
        selected_by=chosen["selected_by"].to_numpy(),
        start=chosen["start"].to_numpy(),
        initial_parameters=[format_parameters(start) if start else "" for start in initial],
        parameters=[format_parameters(values) for values in chosen["parameters"]],
        relative_residual=chosen["relative_residual"].to_numpy(float),
        converged=chosen["converged"].to_numpy(bool),
        iterations=chosen["iterations"].to_numpy(int),
        aic=chosen["aic"].to_numpy(float),
        bic=chosen["bic"].to_numpy(float),
        initial_relative_residual=primary["relative_residual"].to_numpy(float),
        initial_converged=primary["converged"].to_numpy(bool),
        initial_iterations=primary["iterations"].to_numpy(int),
        naive_parameters=[format_parameters(values) for values in naive["parameters"]],
        naive_relative_residual=naive["relative_residual"].to_numpy(float),
        naive_converged=naive["converged"].to_numpy(bool),
        naive_iterations=naive["iterations"].to_numpy(int),
    )
    return table[FIT_COLUMNS]


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
        ax.set_title(f"{fit.circuit}", fontsize=7)
        ax.set_xlabel("Re Z / Ohm")
        ax.set_ylabel("-Im Z / Ohm")
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(fontsize=6)
    return figure_markdown(fig, "circuit fits")
