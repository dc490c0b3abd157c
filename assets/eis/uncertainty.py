"""Parameter standard errors and identifiability of least-squares circuit fits.

Standard errors are the usual linearised ones (as scipy's curve_fit, and so impedance.py's `conf_`,
report them): cov = s^2 (J^T J)^-1 with J the Jacobian of the weighted residuals with respect to the
parameters at the solution and s^2 = cost / (2 n - P), the residual variance per real observation
(Re and Im of n points). J^T J is inverted with J's columns scaled to unit norm (parameters from 1e-9 H
to 1e5 Ohm otherwise ruin its condition) by an eigendecomposition whose eigenvalues are floored: a
direction the data cannot see gets a huge variance instead of the zero a pseudo-inverse would give.

A parameter is undetermined when its fit cannot pin it down:
- at a bound: a log-scaled parameter within PINNED_FRACTION of its bound width (the optimiser pushed
  it there because the data cannot see it, e.g. a negligible inductance);
- in equal blocks: two interchangeable blocks with the same resistance and exponent (one block does
  the work of two);
- too uncertain: standard error above RELATIVE_SE_MAX of its value, i.e. its 95 % interval
  (value +- 1.96 se) reaches zero: the data cannot tell the element from its absence.
"""

from __future__ import annotations

import numpy as np
import torch

from assets.eis.circuits import Circuit

PINNED_FRACTION = 1e-4
RELATIVE_SE_MAX = 1 / 1.96  # the 95 % interval excludes zero
EQUAL_BLOCK_TOLERANCE = 1e-3  # relative difference below which two blocks' R and exponent are the same
EIGENVALUE_FLOOR = 1e-14  # of the largest, in the column-normalised J^T J (double precision)


def covariance(jacobian: torch.Tensor, cost: torch.Tensor, n_points) -> torch.Tensor:
    """(N, P, P) covariance of the physical parameter values.

    jacobian: (N, 2M, P) of the weighted residual with respect to the values (zero rows on padding);
    cost: (N,) sum of squared weighted residuals; n_points: (N,) measured points per spectrum."""
    jacobian = jacobian.double()
    norms = torch.linalg.vector_norm(jacobian, dim=1).clamp_min(1e-300)  # (N, P)
    normalised = jacobian / norms[:, None, :]
    eigenvalues, vectors = torch.linalg.eigh(normalised.transpose(1, 2) @ normalised)
    floor = eigenvalues[:, -1:].clamp_min(1e-300) * EIGENVALUE_FLOOR
    inverse = (vectors / eigenvalues.clamp_min(floor)[:, None, :]) @ vectors.transpose(1, 2)
    n_obs = 2 * torch.as_tensor(np.asarray(n_points), dtype=torch.float64, device=jacobian.device)
    dof = (n_obs - jacobian.shape[2]).clamp_min(1.0)
    variance = cost.double() / dof
    return variance[:, None, None] * inverse / (norms[:, :, None] * norms[:, None, :])


def standard_errors_and_correlation(cov: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(N, P) standard errors and (N, P, P) correlation matrices from covariances."""
    se = torch.sqrt(torch.diagonal(cov, dim1=1, dim2=2).clamp_min(0))
    correlation = cov / (se[:, :, None] * se[:, None, :]).clamp_min(1e-300)
    return se.cpu().numpy(), correlation.clamp(-1, 1).cpu().numpy()


def strongest_correlation(circuit: Circuit, correlation: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Per fit: the largest |correlation| between two parameters and that pair ("R2~CPE1_C")."""
    n, p = correlation.shape[:2]
    if p < 2:
        return np.full(n, np.nan), [""] * n
    upper = np.triu_indices(p, k=1)
    pairs = np.abs(correlation[:, upper[0], upper[1]])
    best = np.argmax(pairs, axis=1)
    names = [f"{circuit.parameters[upper[0][b]]}~{circuit.parameters[upper[1][b]]}" for b in best]
    return pairs[np.arange(n), best], names


def pinned_parameters(circuit: Circuit, fraction: np.ndarray) -> np.ndarray:
    """(N, P) True where a log-scaled parameter sits at a bound (fraction: position 0..1 in its bounds)."""
    log_scaled = np.array(circuit.log_scaled)[None, :]
    return ((fraction < PINNED_FRACTION) | (fraction > 1 - PINNED_FRACTION)) & log_scaled


def equal_block_parameters(circuit: Circuit, parameters: np.ndarray) -> np.ndarray:
    """(N, P) True for the parameters of interchangeable blocks whose resistance and exponent are equal."""
    flagged = np.zeros(parameters.shape, dtype=bool)
    position = {name: k for k, name in enumerate(circuit.parameters)}
    for group in circuit.block_groups:
        for a in range(len(group)):
            for b in range(a + 1, len(group)):
                same = np.ones(len(parameters), dtype=bool)
                for name_a, name_b in zip(group[a], group[b]):
                    if circuit.kinds[position[name_a]] in ("resistance", "cpe_exponent"):
                        va, vb = parameters[:, position[name_a]], parameters[:, position[name_b]]
                        same &= np.abs(va - vb) <= EQUAL_BLOCK_TOLERANCE * np.maximum(np.abs(va), np.abs(vb))
                for name in group[a] + group[b]:
                    flagged[:, position[name]] |= same
    return flagged


def undetermined_reasons(circuit: Circuit, parameters: np.ndarray, standard_errors: np.ndarray, fraction: np.ndarray) -> list[dict[str, str]]:
    """Per fit: {parameter: why it is undetermined}; parameters not listed are determined."""
    pinned = pinned_parameters(circuit, fraction)
    equal = equal_block_parameters(circuit, parameters)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = standard_errors / np.abs(parameters)
    reasons = []
    for i in range(len(parameters)):
        row = {}
        for j, name in enumerate(circuit.parameters):
            if pinned[i, j]:
                row[name] = "at a bound"
            elif equal[i, j]:
                row[name] = "equal blocks"
            elif not relative[i, j] <= RELATIVE_SE_MAX:  # NaN and inf included
                row[name] = f"se {relative[i, j]:.0%} of value"
        reasons.append(row)
    return reasons


def reasons_text(reasons: dict[str, str]) -> str:
    """'L1: at a bound; R3: se 240% of value' (empty when every parameter is determined)."""
    return "; ".join(f"{name}: {why}" for name, why in reasons.items())
