"""Simulation requests: one YAML file describes one simulation (validated here, no Dagster).

A request names its phases (CIF stems), the orientation count per phase and seed,
the beam, the detector calibration (1/A per pixel) with its relative jitter, a
lattice-scaling range per phase, the rel-rod settings, the radial binning and
crop, and the augmentation. Every field has a default, so `{}` is a valid request;
unknown fields are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEFAULT_PHASES = ("CsPbI3_cubic", "PbI2", "Pb", "CsI")
REQUEST_SUFFIXES = (".yaml", ".yml")


class RequestError(ValueError):
    """An invalid request; the message names the file and the field."""


@dataclass(frozen=True)
class Augmentation:
    snr_range: tuple[float, float] = (5.0, 50.0)  # Poisson SNR at the strongest point
    spike_probability: float = 0.005  # share of points replaced by a salt spike
    background_amplitude_range: tuple[float, float] = (0.0, 0.5)  # A of A*exp(-tau*q), profile max = 1
    background_tau_range_A: tuple[float, float] = (1.0, 4.0)  # tau in Angstrom (q in 1/A)
    remove_brightest_probability: float = 0.3  # chance a pattern loses some of its brightest spots
    remove_brightest_max: int = 2


@dataclass(frozen=True)
class SimulationRequest:
    name: str = "embedded_default"
    phases: tuple[str, ...] = DEFAULT_PHASES
    orientations_per_phase: int = 120
    seeds: tuple[int, ...] = (0,)
    beam_energy_keV: float = 200.0
    calibration_inv_A_per_px: float = 0.0105
    calibration_jitter: float = 0.01  # relative: true pixel size = nominal * (1 + U(-j, j))
    lattice_scaling: dict = field(default_factory=lambda: {"default": (0.99, 1.01)})
    max_excitation_error_inv_A: float = 0.02
    relrod_length_inv_A: float = 0.02
    radial_bins: int = 200
    crop_start_px: int = 10
    crop_points: int = 147
    spot_sigma_px: float = 1.5
    augmentation: Augmentation = Augmentation()

    def scaling_range(self, phase: str) -> tuple[float, float]:
        return tuple(self.lattice_scaling.get(phase, self.lattice_scaling.get("default", (1.0, 1.0))))

    @property
    def reciprocal_radius_inv_A(self) -> float:
        """Largest |g| whose blurred spot can reach the crop, allowing for jitter and lattice scaling."""
        smallest_scale = min(low for low, _ in (self.scaling_range(p) for p in self.phases))
        reach_px = min(self.radial_bins, self.crop_start_px + self.crop_points + 4 * self.spot_sigma_px)
        return reach_px * self.calibration_inv_A_per_px * (1 + self.calibration_jitter) / smallest_scale

    def q_axis_inv_A(self):
        import numpy as np

        pixels = self.crop_start_px + np.arange(self.crop_points)
        return pixels * self.calibration_inv_A_per_px

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _check(condition: bool, source: str, field_name: str, expected: str, value) -> None:
    if not condition:
        raise RequestError(f"{source}: field '{field_name}' = {value!r}; expected {expected}")


def _range(value, source: str, field_name: str, low: float, high: float) -> tuple[float, float]:
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
    _check(ok and low <= value[0] <= value[1] <= high, source, field_name, f"[min, max] with {low} <= min <= max <= {high}", value)
    return (float(value[0]), float(value[1]))


def _number(value, source: str, field_name: str, low: float, high: float, integer: bool = False):
    kinds = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and low <= value <= high
    _check(ok, source, field_name, f"{'an integer' if integer else 'a number'} in [{low}, {high}]", value)
    return int(value) if integer else float(value)


def _augmentation(raw, source: str) -> Augmentation:
    _check(isinstance(raw, dict), source, "augmentation", "a mapping", raw)
    known = {f.name for f in dataclasses.fields(Augmentation)}
    unknown = sorted(set(raw) - known)
    _check(not unknown, source, "augmentation", f"only {sorted(known)}", unknown)
    values = {}
    for name, value in raw.items():
        label = f"augmentation.{name}"
        if name.endswith("_range") or name.endswith("_range_A"):
            values[name] = _range(value, source, label, 1e-9 if name == "snr_range" else 0.0, 1e6)
        elif name == "remove_brightest_max":
            values[name] = _number(value, source, label, 0, 100, integer=True)
        else:
            values[name] = _number(value, source, label, 0.0, 1.0)
    return Augmentation(**values)


def _lattice_scaling(raw, source: str, phases) -> dict:
    _check(isinstance(raw, dict), source, "lattice_scaling", "a mapping phase -> [min, max]", raw)
    unknown = sorted(set(raw) - set(phases) - {"default"})
    _check(not unknown, source, "lattice_scaling", "keys among the request's phases or 'default'", unknown)
    return {name: _range(value, source, f"lattice_scaling.{name}", 0.5, 2.0) for name, value in raw.items()}


def parse_request(raw: dict, source: str, known_phases: list[str]) -> SimulationRequest:
    """A validated SimulationRequest from a parsed YAML mapping; RequestError naming file and field."""
    _check(isinstance(raw, dict), source, "<document>", "a YAML mapping of request fields", type(raw).__name__)
    known = {f.name for f in dataclasses.fields(SimulationRequest)}
    unknown = sorted(set(raw) - known)
    _check(not unknown, source, "<document>", f"only the fields {sorted(known)}", unknown)
    values = dict(raw)
    if "name" in values:
        _check(isinstance(values["name"], str) and re.fullmatch(r"[\w.-]+", values["name"]) is not None,
               source, "name", "letters, digits, '_', '-', '.'", values["name"])
    phases = values.get("phases", DEFAULT_PHASES)
    ok = isinstance(phases, (list, tuple)) and len(phases) >= 2 and all(isinstance(p, str) for p in phases)
    _check(ok and len(set(phases)) == len(phases), source, "phases", "a list of at least two distinct phase names", phases)
    missing = sorted(set(phases) - set(known_phases))
    _check(not missing, source, "phases", f"names with a CIF (available: {known_phases})", missing)
    values["phases"] = tuple(phases)
    seeds = values.get("seeds", (0,))
    ok = isinstance(seeds, (list, tuple)) and seeds and all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds
    )
    _check(ok, source, "seeds", "a non-empty list of non-negative integers", seeds)
    values["seeds"] = tuple(seeds)
    limits = {
        "orientations_per_phase": (1, 10_000_000, True),
        "beam_energy_keV": (10.0, 3000.0, False),
        "calibration_inv_A_per_px": (1e-5, 1.0, False),
        "calibration_jitter": (0.0, 0.5, False),
        "max_excitation_error_inv_A": (1e-5, 1.0, False),
        "relrod_length_inv_A": (1e-5, 1.0, False),
        "radial_bins": (8, 100_000, True),
        "crop_start_px": (0, 100_000, True),
        "crop_points": (4, 100_000, True),
        "spot_sigma_px": (0.0, 100.0, False),
    }
    for name, (low, high, integer) in limits.items():
        if name in values:
            values[name] = _number(values[name], source, name, low, high, integer)
    request = SimulationRequest(**{k: v for k, v in values.items() if k not in ("lattice_scaling", "augmentation")})
    end = request.crop_start_px + request.crop_points
    _check(end <= request.radial_bins, source, "crop_points", f"crop_start_px + crop_points <= radial_bins ({request.radial_bins})", end)
    if "lattice_scaling" in values:
        request = dataclasses.replace(request, lattice_scaling=_lattice_scaling(values["lattice_scaling"], source, phases))
    if "augmentation" in values:
        request = dataclasses.replace(request, augmentation=_augmentation(values["augmentation"], source))
    return request


def read_request(path: Path, known_phases: list[str]) -> SimulationRequest:
    """Parse and validate one request file; RequestError naming the file."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise RequestError(f"{path}: not readable YAML ({error})") from error
    request = parse_request(raw if raw is not None else {}, str(path), known_phases)
    return request if "name" in (raw or {}) else dataclasses.replace(request, name=Path(path).stem)


def partition_key(path: Path) -> str:
    """Dynamic-partition key of a request file: its name and the first 12 hex of its content's sha256.

    A changed file gets a new key (a new partition and run); an unchanged one never runs twice.
    """
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    stem = re.sub(r"[^\w.-]", "_", Path(path).stem)
    return f"{stem}-{digest}"


def request_files(folder: Path) -> list[Path]:
    """Request files in a folder, sorted by name (rejection notes and hidden files excluded)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in REQUEST_SUFFIXES and not p.name.startswith("."))
