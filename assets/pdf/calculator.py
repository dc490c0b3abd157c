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

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assets.pdf.structures import Crystal

MODEL_GRID_A = np.linspace(1.5, 30.0, 209)  # the published model's input grid, Angstrom
GAUSSIAN_CUTOFF_SIGMAS = 6.0  # pairs further than this many sigma beyond the range do not matter
TERMINATION_RIPPLES = 8  # extend the calculation this many 2 pi / Qmax beyond r_max (kernel tail)
PAIR_CHUNK_ENTRIES = 32_768  # distances held at once: their temporaries stay in the CPU cache


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

    def ascomplex(self, values):
        if self.name == "torch":
            return self.xp.tensor(np.asarray(values, dtype=np.complex128), device=self.device)
        return np.asarray(values, dtype=np.complex128)

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


@functools.lru_cache(maxsize=4)
def _pymatgen_table(name: str) -> dict:
    import pymatgen.analysis.diffraction as diffraction

    return json.loads((Path(diffraction.__file__).parent / name).read_text())


def _mean_form_factor(z: int, symbol: str, qmax_inv_A: float) -> float:
    """Cromer-Mann-type f(s) = Z - 41.78214 s^2 sum a_i exp(-b_i s^2), s = Q / 4 pi, averaged over Q."""
    coefficients = np.array(_pymatgen_table("atomic_scattering_params.json")[symbol])
    s = np.linspace(0.0, qmax_inv_A, 200) / (4 * np.pi)
    f = z - 41.78214 * s**2 * (coefficients[:, 0] * np.exp(-coefficients[:, 1] * s[:, None] ** 2)).sum(1)
    return float(f.mean())


def lattice_translations(lattice_A: np.ndarray, r_cut_A: float, max_separation_A: float) -> tuple[np.ndarray, np.ndarray]:
    """Cartesian lattice vectors as columns (3, T) with |s + t| < r_cut possible for |s| <= max_separation, and |t|^2.

    Columns, not rows: the squared norms then sum three contiguous rows (several times faster).
    """
    reach = r_cut_A + max_separation_A
    plane_spacing = 1.0 / np.linalg.norm(np.linalg.inv(lattice_A), axis=0)
    n_max = np.ceil(reach / plane_spacing).astype(int)
    a, b, c = (vector[:, None] * np.arange(-n, n + 1) for n, vector in zip(n_max, lattice_A))
    columns = (a[:, :, None, None] + b[:, None, :, None] + c[:, None, None, :]).reshape(3, -1)
    squared = (columns * columns).sum(0)
    inside = squared <= reach**2
    return columns[:, inside], squared[inside]


def site_pairs(crystal: Crystal) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, count): site pairs whose distances, each counted `count` times, cover every ordered pair of the cell.

    Sites of one symmetry orbit have the same surroundings, so for orbits x and y
        sum_{i in x, j in y} f(d_ij) = |x| sum_{j in y} f(d(rep_x, j)) = |y| sum_{i in x} f(d(i, rep_y)):
    an orbit pairs with itself through its representative (count |x|), and two orbits once,
    through the larger one's representative (count 2 |x|, covering (x, y) and (y, x)).
    For a generated crystal in Fm-3m that is a twelfth of the pairs. Without orbits every
    site is its own orbit and this is the pairs i <= j (i < j counted twice).
    """
    n_sites = len(crystal.occupancies)
    labels = np.arange(n_sites) if crystal.orbits is None else np.asarray(crystal.orbits, dtype=np.int64)
    if labels.size and labels.min() >= 0 and labels.max() < n_sites:  # spglib / read_cif labels: cheap relabel
        present = np.bincount(labels, minlength=n_sites) > 0
        site_orbit = (np.cumsum(present) - 1)[labels]
        sizes = np.bincount(site_orbit)
        representatives = np.empty(len(sizes), dtype=np.int64)
        representatives[site_orbit] = np.arange(n_sites)  # any site of an orbit represents it
    else:
        _, representatives, site_orbit, sizes = np.unique(labels, return_index=True, return_inverse=True,
                                                          return_counts=True)
    orbit = np.arange(len(sizes))[:, None]  # rows: the representative's orbit x; columns: site j in orbit y
    same = orbit == site_orbit[None, :]
    larger = (sizes[orbit] > sizes[site_orbit][None, :]) | ((sizes[orbit] == sizes[site_orbit][None, :])
                                                            & (orbit < site_orbit[None, :]))
    x, j = np.nonzero(same | larger)
    return representatives[x], j, np.where(same[x, j], 1.0, 2.0) * sizes[x]


@functools.lru_cache(maxsize=64)
def fast_fft_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (pocketfft and cuFFT are slow on large prime factors)."""
    best = 1 << int(np.ceil(np.log2(n)))
    for threes in range(int(np.log(best) / np.log(3)) + 1):
        for fives in range(int(np.log(best) / np.log(5)) + 1):
            odd = 3**threes * 5**fives
            if odd <= best:
                best = min(best, odd * (1 << max(0, int(np.ceil(np.log2(n / odd))))))
    return best


@dataclass(frozen=True)
class PairGeometry:
    """What every kernel needs of one crystal: short pair separations (P, 3) in A, pair weights (P,),
    the (scaled) lattice rows and the number density rho0 in 1/A^3."""

    separation_A: np.ndarray
    weight: np.ndarray
    lattice_A: np.ndarray
    rho0: float

    @property
    def max_separation_A(self) -> float:
        return float(np.sqrt((self.separation_A**2).sum(1).max()))


def pair_geometry(crystal: Crystal, settings: PdfSettings, lattice_scale: float = 1.0) -> PairGeometry:
    """Site pairs (see site_pairs) as minimum-image separations with weights count f_i f_j / (<f>^2 N)."""
    lattice = crystal.lattice_A * lattice_scale
    occupancy = crystal.occupancies
    factors = scattering_factors(crystal.atomic_numbers, settings.weighting, settings.qmax_inv_A)
    n_atoms = occupancy.sum()
    site_weight = occupancy * factors / ((occupancy * factors).sum() / n_atoms)
    first, second, count = site_pairs(crystal)
    fractional = crystal.frac_coords[second] - crystal.frac_coords[first]
    separation = (fractional - np.round(fractional)) @ lattice  # components in [-1/2, 1/2]: short vectors
    weight = count * site_weight[first] * site_weight[second] / n_atoms
    return PairGeometry(separation, weight, lattice, float(n_atoms / abs(np.linalg.det(lattice))))


def translation_box(lattice_A: np.ndarray, reach_A: float) -> np.ndarray:
    """Largest |n_a|, |n_b|, |n_c| of lattice translations that can lie within reach_A (from plane spacings)."""
    plane_spacing = 1.0 / np.linalg.norm(np.linalg.inv(lattice_A), axis=0)
    return np.ceil(reach_A / plane_spacing).astype(np.int64)


def pair_histogram(crystal: Crystal, settings: PdfSettings, backend: ArrayBackend, r_cut_A: float,
                   n_bins: int, lattice_scale: float = 1.0):
    """sum_ij w_ij delta(r - r_ij) / N binned on r_k = (k + 1/2) dr; returns (histogram, rho0 in 1/A^3).

    Squared distances come from one matrix product, |s + t|^2 = |s|^2 + 2 s.t + |t|^2, and
    each distance is shared linearly between its two nearest bins (keeps its mean exactly).
    Distances beyond the last bin are clamped into two overflow bins that are dropped,
    which costs less than selecting the pairs inside the cut-off.
    """
    xp = backend.xp
    geometry = pair_geometry(crystal, settings, lattice_scale)
    separation = geometry.separation_A
    separation_sq = np.einsum("ij,ij->i", separation, separation)
    translations, translation_sq = lattice_translations(geometry.lattice_A, r_cut_A, geometry.max_separation_A)
    # In bins: (|s + t| / dr)^2 = [2 s, |s|^2, 1] . [t, 1, |t|^2] / dr^2, one matrix product.
    pair_terms = backend.asarray(np.column_stack([2 * separation, separation_sq, np.ones(len(separation))])
                                 / settings.fine_step_A**2)
    translation_terms = np.vstack([translations, np.ones(len(translation_sq)), translation_sq])
    pair_weight = backend.asarray(geometry.weight[:, None])
    histogram = backend.asarray(np.zeros(n_bins + 2))
    chunk = max(1, PAIR_CHUNK_ENTRIES // len(separation))
    for start in range(0, translation_terms.shape[1], chunk):
        squared = pair_terms @ backend.asarray(translation_terms[:, start:start + chunk])
        position = xp.clip(xp.sqrt(xp.clip(squared, 0.0, None)) - 0.5, 0.0, float(n_bins))  # bin k at (k + 1/2) dr
        lower = backend.as_index(position)  # truncation: the floor of a non-negative position
        upper_weight = pair_weight * (position - lower)
        lower, lower_weight = lower.reshape(-1), (pair_weight - upper_weight).reshape(-1)
        histogram = histogram + xp.bincount(lower, weights=lower_weight, minlength=n_bins + 2)
        histogram = histogram + xp.bincount(lower + 1, weights=upper_weight.reshape(-1), minlength=n_bins + 2)
    histogram[0] = 0.0  # bin 0 (r < 1.5 dr) holds only each site's zero distance to itself
    return histogram[:n_bins], geometry.rho0


@functools.lru_cache(maxsize=1)
def _numba_histogram_kernel():
    """The compiled pair-histogram loop (numba imported here, on first use, not with the module)."""
    import numba

    @numba.njit(cache=True, nogil=True, fastmath=False)
    def kernel(separation, weight, lattice, box, reach, step, n_bins, histogram):
        inverse_step = 1.0 / step
        limit = float(n_bins)
        limit_sq = ((n_bins + 0.5) * step) ** 2
        cx, cy, cz = lattice[2, 0], lattice[2, 1], lattice[2, 2]
        c_sq = cx * cx + cy * cy + cz * cz
        for i in range(-box[0], box[0] + 1):
            for j in range(-box[1], box[1] + 1):
                ux = i * lattice[0, 0] + j * lattice[1, 0]
                uy = i * lattice[0, 1] + j * lattice[1, 1]
                uz = i * lattice[0, 2] + j * lattice[1, 2]
                # |u + k c| <= reach only for k between the roots of a quadratic: walk that range, not the box
                uc = ux * cx + uy * cy + uz * cz
                discriminant = uc * uc - c_sq * (ux * ux + uy * uy + uz * uz - reach * reach)
                if discriminant < 0.0:
                    continue
                root = np.sqrt(discriminant)
                k_low = max(-box[2], int(np.floor((-uc - root) / c_sq)))
                k_high = min(box[2], int(np.ceil((-uc + root) / c_sq)))
                for k in range(k_low, k_high + 1):
                    tx = ux + k * cx
                    ty = uy + k * cy
                    tz = uz + k * cz
                    for p in range(separation.shape[0]):
                        dx = separation[p, 0] + tx
                        dy = separation[p, 1] + ty
                        dz = separation[p, 2] + tz
                        squared = dx * dx + dy * dy + dz * dz
                        if squared >= limit_sq:  # beyond the last bin: no square root needed
                            continue
                        position = np.sqrt(squared) * inverse_step - 0.5
                        if position >= limit:
                            continue
                        if position < 0.0:
                            position = 0.0
                        lower = int(position)
                        upper_share = position - lower
                        histogram[lower] += weight[p] * (1.0 - upper_share)
                        if lower + 1 < n_bins:
                            histogram[lower + 1] += weight[p] * upper_share

    return kernel


def pair_histogram_numba(crystal: Crystal, settings: PdfSettings, r_cut_A: float, n_bins: int,
                         lattice_scale: float = 1.0) -> tuple[np.ndarray, float]:
    """The same histogram as pair_histogram (numpy), from a compiled loop over translations and pairs.

    No temporaries: each distance is computed, tested against the last bin and binned in place,
    and translations are walked as integer triples (no translation array).
    """
    geometry = pair_geometry(crystal, settings, lattice_scale)
    # translations that can bring a pair within the last bin: |t| <= (n_bins + 1/2) dr + max |s| (+ margin)
    reach = (n_bins + 0.5) * settings.fine_step_A + geometry.max_separation_A + 1e-6
    box = translation_box(geometry.lattice_A, reach)
    histogram = np.zeros(n_bins)
    _numba_histogram_kernel()(np.ascontiguousarray(geometry.separation_A), np.ascontiguousarray(geometry.weight),
                              np.ascontiguousarray(geometry.lattice_A), box, reach, float(settings.fine_step_A),
                              n_bins, histogram)
    histogram[0] = 0.0  # bin 0 (r < 1.5 dr) holds only each site's zero distance to itself
    return histogram, geometry.rho0


BATCH_ENTRIES = 1 << 22  # distances (crystals x pairs x translations) the batched kernel holds at once (CPU)
DEVICE_BATCH_ENTRIES = 1 << 26  # the same on a GPU (~0.5 GB per float64 temporary): fewer, larger kernels


def batched_histograms(crystals: list[Crystal], settings: PdfSettings, backend: ArrayBackend, r_cut_A: float,
                       n_bins: int, lattice_scale) -> tuple[object, np.ndarray]:
    """Pair histograms of many crystals, (n_crystals, n_bins) on the backend's device, and rho0 (numpy).

    Crystals are grouped by translation-box size; each group is one set of kernels: pair
    separations padded to the group's largest pair count (weight 0), the group's largest integer
    box of translations turned into each crystal's own lattice vectors on the device (n @ L),
    all squared distances from one batched matrix product, and a single bincount (one histogram
    scatter) over group x bins. Distances past the last bin land in a dropped overflow bin.
    """
    xp = backend.xp
    geometries = [pair_geometry(c, settings, s) for c, s in zip(crystals, lattice_scale)]
    boxes = np.array([translation_box(g.lattice_A, r_cut_A + g.max_separation_A) for g in geometries])
    box_sizes = np.prod(2 * boxes + 1, axis=1)
    pair_counts = np.array([len(g.weight) for g in geometries])
    order = np.lexsort((pair_counts, box_sizes))
    budget = BATCH_ENTRIES if str(backend.device).startswith("cpu") else DEVICE_BATCH_ENTRIES
    groups, current = [], []
    for index in order:
        trial = current + [index]
        entries = len(trial) * pair_counts[trial].max() * box_sizes[trial].max()
        if current and entries > budget:
            groups.append(current)
            trial = [index]
        current = trial
    if current:
        groups.append(current)
    width = n_bins + 1  # column n_bins: overflow
    result = [None] * len(crystals)
    for group in groups:
        n_group, n_pairs = len(group), int(pair_counts[group].max())
        box = boxes[group].max(axis=0)
        integers = np.stack(np.meshgrid(*(np.arange(-n, n + 1) for n in box), indexing="ij"), -1).reshape(-1, 3)
        separation = np.zeros((n_group, n_pairs, 3))
        weight = np.zeros((n_group, n_pairs))
        for row, index in enumerate(group):
            separation[row, :pair_counts[index]] = geometries[index].separation_A
            weight[row, :pair_counts[index]] = geometries[index].weight
        lattices = backend.asarray(np.stack([geometries[index].lattice_A for index in group]))
        translations = xp.einsum("kj,bjd->bkd", backend.asarray(integers.astype(float)), lattices)  # (G, K, 3)
        separation_t = backend.asarray(separation)
        squared = ((separation_t * separation_t).sum(-1)[:, :, None] + (translations * translations).sum(-1)[:, None, :]
                   + 2 * separation_t @ translations.transpose(1, 2))  # (G, P, K)
        step = settings.fine_step_A
        position = xp.clip(xp.sqrt(xp.clip(squared, 0.0, None)) / step - 0.5, 0.0, float(n_bins))
        lower = backend.as_index(position)  # floor of a non-negative position; n_bins is the overflow
        weight_t = backend.asarray(weight)[:, :, None]
        upper_weight = weight_t * (position - lower)
        offset = backend.as_index(backend.asarray(np.arange(n_group) * width))[:, None, None]
        upper = xp.clip(lower + 1, None, n_bins)
        index = xp.cat([(lower + offset).reshape(-1), (upper + offset).reshape(-1)])
        values = xp.cat([(weight_t - upper_weight).reshape(-1), upper_weight.reshape(-1)])
        histograms = xp.bincount(index, weights=values, minlength=n_group * width).reshape(n_group, width)
        for row, crystal_index in enumerate(group):
            result[crystal_index] = histograms[row, :n_bins]
    histograms = xp.stack(result)
    histograms[:, 0] = 0.0  # bin 0 (r < 1.5 dr) holds only each site's zero distance to itself
    return histograms, np.array([g.rho0 for g in geometries])


def numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


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


def terminated_at(pdf, qmax_inv_A: float, step_A: float, r_out_A: np.ndarray, backend: ArrayBackend):
    """G as measured up to Qmax, at r_out: the sine series of G with its components above Qmax removed.

    [G, -G reversed] (samples at r_k = (k + 1/2) dr) is the odd extension over one period
    2 n dr; with Y_m its rfft at angular frequency w_m = pi m / (n dr), the band-limited G is
        G(r) = Re sum_{w_m <= Qmax} c_m Y_m exp(i w_m (r - dr / 2)) / (2 n),  c_0 = 1, c_m = 2.
    Evaluating the few hundred kept terms at r_out is exact interpolation of the result and
    cheaper than an inverse transform of the whole fine grid.
    """
    xp = backend.xp
    n_bins = pdf.shape[-1]
    kept = min(int(np.floor(qmax_inv_A * n_bins * step_A / np.pi)) + 1, n_bins)  # w_m <= Qmax, below Nyquist
    basis = backend.ascomplex(sine_series_basis(kept, n_bins, step_A, np.asarray(r_out_A, dtype=float).tobytes()))
    coefficients = xp.fft.rfft(xp.concatenate([pdf, -xp.flip(pdf, (-1,))], -1))[:, :kept]
    return (coefficients @ basis).real


@functools.lru_cache(maxsize=8)
def sine_series_basis(kept: int, n_bins: int, step_A: float, r_out_bytes: bytes) -> np.ndarray:
    """c_m exp(i w_m (r - dr / 2)) / (2 n), (kept, len(r_out)): the same for every batch of a run."""
    r_out = np.frombuffer(r_out_bytes, dtype=float)
    angular = np.pi * np.arange(kept) / (n_bins * step_A)
    weight = np.where(np.arange(kept) == 0, 1.0, 2.0) / (2 * n_bins)
    return weight[:, None] * np.exp(1j * angular[:, None] * (r_out[None, :] - step_A / 2))


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
                 batch_size: int = 128, kernel: str = "auto") -> np.ndarray:
    """G(r) in 1/A^2 of every crystal on r_out_A, shape (n_crystals, len(r_out_A)).

    uiso_A2, qdamp_inv_A and lattice_scale may be per-crystal arrays (augmentation);
    None means the settings' values (and scale 1). kernel picks the pair histogram:
    "numpy" (the reference, any backend), "numba" (compiled loop, numpy backend), "batched"
    (torch backend: many crystals per kernel, see batched_histograms) or "auto" (batched on
    torch, numba when installed, else numpy).
    """
    backend = backend or ArrayBackend()
    if kernel == "auto":
        kernel = "batched" if backend.name == "torch" else ("numba" if numba_available() else "numpy")
    if kernel not in ("numpy", "numba", "batched"):
        raise ValueError(f"kernel must be auto, numpy, numba or batched, not {kernel!r}")
    if kernel == "numba" and backend.name != "numpy":
        raise ValueError("the numba kernel runs on the numpy backend only")
    if kernel == "batched" and backend.name != "torch":
        raise ValueError("the batched kernel runs on the torch backend only")
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
        if kernel == "batched":
            histograms, rho0 = batched_histograms(crystals[batch], settings, backend, r_cut, n_bins, scale[batch])
        else:
            if kernel == "numba":
                pairs = [pair_histogram_numba(c, settings, r_cut, n_bins, s)
                         for c, s in zip(crystals[batch], scale[batch])]
            else:
                pairs = [pair_histogram(c, settings, backend, r_cut, n_bins, s)
                         for c, s in zip(crystals[batch], scale[batch])]
            histograms = backend.xp.stack([histogram for histogram, _ in pairs])
            rho0 = np.array([density for _, density in pairs])
        fine = broadened_pdf(histograms, rho0, uiso[batch], qdamp[batch], r_fine, backend)[:, :n_used]
        if settings.qmax_inv_A > 0:
            profile = terminated_at(fine, settings.qmax_inv_A, settings.fine_step_A, r_out_A, backend)
        else:
            profile = linear_sample(fine, r_fine[:n_used], r_out_A, backend)
        profiles.append(backend.to_numpy(profile))
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
