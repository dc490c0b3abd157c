"""A vectorised periodic pair distribution function calculator (numpy, or torch for the GPU).

    G(r) = 4 pi r (rho(r) - rho0) = R(r) / r - 4 pi r rho0

R(r) = (1/N) sum_i sum_j (f_i f_j / <f>^2) T(r - r_ij) sums every pair from an atom of
the cell to every atom of every periodic image within the cut-off; T is a Gaussian of
variance U_i + U_j = 2 Uiso (uncorrelated isotropic displacements). The pairs are
binned (linear weights) on a fine grid and broadened in Fourier space; then the Qdamp
envelope exp(-(Qdamp r)^2 / 2) and, when Qmax > 0, the termination ripples of a
measurement stopped at Qmax (convolution with sin(Qmax r) / (pi r), odd extension of
G), as in PDFfit2 (Farrow et al., J. Phys.: Condens. Matter 19, 335219, 2007).

The formulas are written once against an array namespace `xp` (numpy or torch): the
`ArrayBackend` shim only creates arrays on the device and casts indices.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assets.pdf.structures import Crystal

MODEL_GRID_A = np.linspace(1.5, 30.0, 209)  # the published model's input grid, Angstrom
GAUSSIAN_CUTOFF_SIGMAS = 6.0  # pairs further than this many sigma beyond the range do not matter
TERMINATION_RIPPLES = 8  # extend the calculation this many 2 pi / Qmax beyond r_max (kernel tail)
PAIR_CHUNK_ENTRIES = 1_500_000  # distances held at once per structure (memory bound)


@dataclass(frozen=True)
class PdfSettings:
    """Calculation parameters; the defaults are those of the Liu et al. (2019) library."""

    r_max_A: float = 30.0
    qmax_inv_A: float = 25.0  # 0: no termination ripples
    qdamp_inv_A: float = 0.04
    uiso_A2: float = 0.005
    weighting: str = "atomic_number"  # atomic_number | xray_form_factor | neutron
    fine_step_A: float = 0.01

    def calculation_max_A(self) -> float:
        """Where G is computed up to: r_max plus room for the termination kernel's tail."""
        extension = TERMINATION_RIPPLES * 2 * np.pi / self.qmax_inv_A if self.qmax_inv_A > 0 else 0.0
        return self.r_max_A + extension


class ArrayBackend:
    """numpy or torch: where arrays live. The formulas use `self.xp` directly."""

    def __init__(self, name: str = "numpy", device: str = "cpu"):
        self.name, self.device = name, device
        if name == "torch":
            import torch

            self.xp = torch
        elif name == "numpy":
            self.xp = np
        else:
            raise ValueError(f"backend must be numpy or torch, not {name!r}")

    def asarray(self, values):
        if self.name == "torch":
            return self.xp.tensor(np.asarray(values, dtype=np.float64), device=self.device)
        return np.asarray(values, dtype=np.float64)

    def as_index(self, values):
        return values.long() if self.name == "torch" else values.astype(np.int64)

    def to_numpy(self, values) -> np.ndarray:
        return values.detach().cpu().numpy() if self.name == "torch" else np.asarray(values)


def scattering_factors(atomic_numbers: np.ndarray, weighting: str, qmax_inv_A: float) -> np.ndarray:
    """Per-site scattering weight f: Z, the X-ray form factor averaged over 0..Qmax, or b (neutron)."""
    z = np.asarray(atomic_numbers, dtype=int)
    if weighting == "atomic_number":
        return z.astype(float)
    from pymatgen.core import Element

    if weighting == "neutron":
        lengths = _pymatgen_table("neutron_scattering_length.json")
        return np.array([complex(lengths[Element.from_Z(n).symbol]).real for n in z])
    if weighting == "xray_form_factor":
        return np.array([_mean_form_factor(int(n), Element.from_Z(int(n)).symbol, qmax_inv_A or 25.0) for n in z])
    raise ValueError(f"weighting must be atomic_number, xray_form_factor or neutron, not {weighting!r}")


def _pymatgen_table(name: str) -> dict:
    import pymatgen.analysis.diffraction as diffraction

    return json.loads((Path(diffraction.__file__).parent / name).read_text())


def _mean_form_factor(z: int, symbol: str, qmax_inv_A: float) -> float:
    """Cromer-Mann-type f(s) = Z - 41.78214 s^2 sum a_i exp(-b_i s^2), s = Q / 4 pi, averaged over Q."""
    coefficients = np.array(_pymatgen_table("atomic_scattering_params.json")[symbol])
    s = np.linspace(0.0, qmax_inv_A, 200) / (4 * np.pi)
    f = z - 41.78214 * s**2 * (coefficients[:, 0] * np.exp(-coefficients[:, 1] * s[:, None] ** 2)).sum(1)
    return float(f.mean())


def lattice_translations(lattice_A: np.ndarray, r_cut_A: float, max_separation_A: float) -> np.ndarray:
    """Cartesian lattice vectors t (T, 3) with |s + t| < r_cut possible for a separation |s| <= max_separation."""
    plane_spacing = 1.0 / np.linalg.norm(np.linalg.inv(lattice_A), axis=0)
    n_max = np.ceil((r_cut_A + max_separation_A) / plane_spacing).astype(int)
    a, b, c = (np.arange(-n, n + 1)[:, None] * vector for n, vector in zip(n_max, lattice_A))
    translations = (a[:, None, None] + b[None, :, None] + c[None, None, :]).reshape(-1, 3)
    return translations[(translations**2).sum(1) <= (r_cut_A + max_separation_A) ** 2]


def fast_fft_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (pocketfft and cuFFT are slow on large prime factors)."""
    best = 1 << int(np.ceil(np.log2(n)))
    for threes in range(int(np.log(best) / np.log(3)) + 1):
        for fives in range(int(np.log(best) / np.log(5)) + 1):
            odd = 3**threes * 5**fives
            if odd <= best:
                best = min(best, odd * (1 << max(0, int(np.ceil(np.log2(n / odd))))))
    return best


def pair_histogram(crystal: Crystal, settings: PdfSettings, backend: ArrayBackend, r_cut_A: float,
                   n_bins: int, lattice_scale: float = 1.0):
    """sum_ij w_ij delta(r - r_ij) / N binned on r_k = (k + 1/2) dr; returns (histogram, rho0 in 1/A^3).

    Only pairs i <= j are enumerated: d(j, i, t) = d(i, j, -t) and the translations come
    in +-t pairs, so a pair i < j counts twice. Squared distances come from one matrix
    product: |s + t|^2 = |s|^2 + 2 s.t + |t|^2.
    """
    xp = backend.xp
    lattice = crystal.lattice_A * lattice_scale
    occupancy = crystal.occupancies
    factors = scattering_factors(crystal.atomic_numbers, settings.weighting, settings.qmax_inv_A)
    n_atoms = occupancy.sum()
    site_weight = occupancy * factors / ((occupancy * factors).sum() / n_atoms)
    first, second = np.triu_indices(len(occupancy))
    multiplicity = np.where(first == second, 1.0, 2.0)
    fractional = crystal.frac_coords[second] - crystal.frac_coords[first]
    separation = (fractional - np.round(fractional)) @ lattice  # components in [-1/2, 1/2]: short vectors
    pair_weight = backend.asarray((multiplicity * site_weight[first] * site_weight[second] / n_atoms)[:, None])
    translations = lattice_translations(lattice, r_cut_A, float(np.sqrt((separation**2).sum(1).max())))
    separation_sq = backend.asarray((separation**2).sum(1)[:, None])
    separation = backend.asarray(separation)
    histogram = backend.asarray(np.zeros(n_bins))
    chunk = max(1, PAIR_CHUNK_ENTRIES // len(first))
    for start in range(0, len(translations), chunk):
        shift = translations[start:start + chunk]
        squared = separation_sq + 2 * (separation @ backend.asarray(shift.T)) + backend.asarray((shift**2).sum(1))
        inside = (squared < r_cut_A**2) & (squared > 1e-8)  # a site with itself is no pair
        position = xp.sqrt(squared[inside]) / settings.fine_step_A - 0.5
        weight = xp.broadcast_to(pair_weight, squared.shape)[inside]
        lower = xp.floor(xp.clip(position, 0.0, None))
        upper_share = xp.clip(position - lower, 0.0, 1.0)
        index = backend.as_index(lower)
        histogram = histogram + xp.bincount(index, weights=weight * (1 - upper_share), minlength=n_bins)[:n_bins]
        histogram = histogram + xp.bincount(index + 1, weights=weight * upper_share, minlength=n_bins)[:n_bins]
    return histogram, n_atoms / abs(np.linalg.det(lattice))


def broadened_pdf(histograms, rho0, uiso_A2, qdamp_inv_A, r_fine_A, backend: ArrayBackend):
    """G on the fine grid for a batch: Gaussian peaks (variance 2 Uiso), baseline, Qdamp envelope."""
    xp = backend.xp
    n_bins = histograms.shape[-1]
    step = float(r_fine_A[1] - r_fine_A[0])
    padding = int(np.ceil(GAUSSIAN_CUTOFF_SIGMAS * np.sqrt(2 * np.max(uiso_A2)) / step)) + 1
    n_fft = fast_fft_length(n_bins + padding)  # zero padding: tails do not wrap around
    angular = backend.asarray(2 * np.pi * np.fft.rfftfreq(n_fft, step))
    sigma = backend.asarray(np.sqrt(2 * np.asarray(uiso_A2, dtype=float)).reshape(-1, 1))
    spectrum = xp.fft.rfft(histograms, n=n_fft) * xp.exp(-0.5 * (sigma * angular) ** 2)
    rdf = xp.fft.irfft(spectrum, n=n_fft)[:, :n_bins] / step  # R(r), per Angstrom
    r = backend.asarray(r_fine_A)
    density = backend.asarray(np.asarray(rho0, dtype=float).reshape(-1, 1))
    damping = backend.asarray(np.asarray(qdamp_inv_A, dtype=float).reshape(-1, 1))
    return (rdf / r - 4 * np.pi * density * r) * xp.exp(-0.5 * (damping * r) ** 2)


def terminated(pdf, qmax_inv_A: float, step_A: float, backend: ArrayBackend):
    """G as measured up to Qmax: the odd extension of G with its sine components above Qmax removed.

    Samples at r_k = (k + 1/2) dr; [G, -G reversed] is the odd extension over one period.
    """
    xp = backend.xp
    n_bins = pdf.shape[-1]
    odd = xp.concatenate([pdf, -xp.flip(pdf, (-1,))], -1)
    angular = 2 * np.pi * np.fft.rfftfreq(2 * n_bins, step_A)
    window = backend.asarray((angular <= qmax_inv_A).astype(float))
    return xp.fft.irfft(xp.fft.rfft(odd) * window, n=2 * n_bins)[:, :n_bins]


def linear_sample(values, r_fine_A: np.ndarray, r_out_A: np.ndarray, backend: ArrayBackend):
    """Rows of values (on the uniform r_fine) linearly interpolated at r_out."""
    step = r_fine_A[1] - r_fine_A[0]
    position = np.clip((np.asarray(r_out_A, dtype=float) - r_fine_A[0]) / step, 0, len(r_fine_A) - 1)
    lower = np.minimum(np.floor(position).astype(int), len(r_fine_A) - 2)
    upper_share = backend.asarray(position - lower)
    lower = backend.as_index(backend.asarray(lower))
    return values[:, lower] * (1 - upper_share) + values[:, lower + 1] * upper_share


def compute_pdfs(crystals: list[Crystal], settings: PdfSettings = PdfSettings(), r_out_A: np.ndarray = MODEL_GRID_A,
                 uiso_A2=None, qdamp_inv_A=None, lattice_scale=None, backend: ArrayBackend | None = None,
                 batch_size: int = 128) -> np.ndarray:
    """G(r) in 1/A^2 of every crystal on r_out_A, shape (n_crystals, len(r_out_A)).

    uiso_A2, qdamp_inv_A and lattice_scale may be per-crystal arrays (augmentation);
    None means the settings' values (and scale 1).
    """
    backend = backend or ArrayBackend()
    n = len(crystals)
    uiso = np.broadcast_to(settings.uiso_A2 if uiso_A2 is None else np.asarray(uiso_A2, dtype=float), (n,))
    qdamp = np.broadcast_to(settings.qdamp_inv_A if qdamp_inv_A is None else np.asarray(qdamp_inv_A, float), (n,))
    scale = np.broadcast_to(1.0 if lattice_scale is None else np.asarray(lattice_scale, dtype=float), (n,))
    # G is used on n_used fine points (the odd extension has 2 n_used: a fast FFT length);
    # pairs up to 6 sigma further count, for their Gaussian tails.
    n_used = fast_fft_length(2 * (int(np.ceil(settings.calculation_max_A() / settings.fine_step_A)) + 1)) // 2
    r_cut = n_used * settings.fine_step_A + GAUSSIAN_CUTOFF_SIGMAS * np.sqrt(2 * uiso.max(initial=0.0))
    n_bins = int(np.ceil(r_cut / settings.fine_step_A)) + 2
    r_fine = (np.arange(n_bins) + 0.5) * settings.fine_step_A
    profiles = []
    for start in range(0, n, batch_size):
        batch = slice(start, min(start + batch_size, n))
        pairs = [pair_histogram(c, settings, backend, r_cut, n_bins, s) for c, s in zip(crystals[batch], scale[batch])]
        histograms = backend.xp.stack([histogram for histogram, _ in pairs])
        rho0 = np.array([density for _, density in pairs])
        fine = broadened_pdf(histograms, rho0, uiso[batch], qdamp[batch], r_fine, backend)[:, :n_used]
        if settings.qmax_inv_A > 0:
            fine = terminated(fine, settings.qmax_inv_A, settings.fine_step_A, backend)
        profiles.append(backend.to_numpy(linear_sample(fine, r_fine[:n_used], r_out_A, backend)))
    return np.concatenate(profiles) if profiles else np.zeros((0, len(r_out_A)))


def number_density(crystal: Crystal) -> float:
    """rho0 = N / V in atoms per A^3 (occupancy-weighted)."""
    return float(crystal.occupancies.sum() / crystal.volume_A3)


def radial_distribution(r_A: np.ndarray, pdf: np.ndarray, rho0: float) -> np.ndarray:
    """R(r) = r G(r) + 4 pi r^2 rho0: its integral over a peak is the coordination number."""
    return r_A * pdf + 4 * np.pi * r_A**2 * rho0


def normalise_profiles(profiles: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] per row, as the published model's input (a flat row becomes 0)."""
    low = profiles.min(axis=1, keepdims=True)
    span = profiles.max(axis=1, keepdims=True) - low
    return np.where(span > 0, (profiles - low) / np.where(span > 0, span, 1.0), 0.0)


def model_input(r_A: np.ndarray, pdf: np.ndarray, grid_A: np.ndarray = MODEL_GRID_A) -> np.ndarray:
    """One measured or truncated G(r) on the model grid: zero outside its r range, normalised."""
    inside = (grid_A >= r_A.min()) & (grid_A <= r_A.max())
    on_grid = np.where(inside, np.interp(grid_A, r_A, pdf), 0.0)
    return normalise_profiles(on_grid[None, :])[0]
