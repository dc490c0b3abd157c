"""One simulation request -> labelled 1D profiles in the diffsims-XL layout (no Dagster).

Reflections are computed once per phase in the caller; orientations are sampled
per (seed, phase) and cut into chunks that any `map_fn(fn, chunks)` (the builtin
`map`, or DaskResource.map) can fan out. Each chunk carries its own random stream,
so a result does not depend on where a chunk ran.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from functools import partial

import numpy as np

from assets.diffraction.augment import augment_profiles, normalise_max
from assets.diffraction.phases import load_phase, sample_orientations
from assets.diffraction.requests import SimulationRequest
from assets.diffraction.simulator import Geometry, Reflections, phase_reflections, radial_profiles


@dataclass(frozen=True)
class SimulationChunk:
    request: SimulationRequest
    phase_index: int
    seed: int
    chunk_index: int
    reflections: Reflections
    quaternions: np.ndarray  # (n, 4)
    device: str | None = None  # None: the numpy simulator; "cuda" (or "cpu"): its torch path there


def geometry_of(request: SimulationRequest) -> Geometry:
    return Geometry(request.beam_energy_keV, request.max_excitation_error_inv_A, request.relrod_length_inv_A)


def plan_chunks(request: SimulationRequest, chunk_size: int, device: str | None = None) -> list[SimulationChunk]:
    """Orientations per (seed, phase), cut into chunks; reflections computed once per phase."""
    phases = [load_phase(name) for name in request.phases]
    reflections = [phase_reflections(phase, request.reciprocal_radius_inv_A) for phase in phases]
    chunks = []
    for seed in request.seeds:
        for index, phase in enumerate(phases):
            rng = np.random.default_rng([seed, index])
            quaternions = sample_orientations(phase, request.orientations_per_phase, rng)
            for number, start in enumerate(range(0, len(quaternions), chunk_size)):
                part = quaternions[start : start + chunk_size]
                chunks.append(SimulationChunk(request, index, seed, number, reflections[index], part, device))
    return chunks


def simulate_chunk(chunk: SimulationChunk) -> dict:
    """Augmented, cropped profiles of one chunk and the per-pattern settings that made them."""
    request, augmentation = chunk.request, chunk.request.augmentation
    rng = np.random.default_rng([chunk.seed, chunk.phase_index, chunk.chunk_index, 1])
    count = len(chunk.quaternions)
    pixel_size = request.calibration_inv_A_per_px * (1 + rng.uniform(-1, 1, count) * request.calibration_jitter)
    lattice_scale = rng.uniform(*request.scaling_range(request.phases[chunk.phase_index]), count)
    drops = rng.integers(1, augmentation.remove_brightest_max + 1, count)
    drops = np.where(rng.random(count) < augmentation.remove_brightest_probability, drops, 0)
    simulate = radial_profiles
    if chunk.device is not None:
        from assets.diffraction.simulator_torch import radial_profiles_torch

        simulate = partial(radial_profiles_torch, device=chunk.device)
    profiles = simulate(
        chunk.reflections, chunk.quaternions, geometry_of(request), pixel_size,
        request.radial_bins, request.spot_sigma_px, lattice_scale, drops,
    )
    crop = slice(request.crop_start_px, request.crop_start_px + request.crop_points)
    return {
        "x": augment_profiles(profiles[:, crop], request.q_axis_inv_A(), augmentation, rng),
        "y": np.full(count, chunk.phase_index, dtype=np.int64),
        "quaternions": chunk.quaternions,
        "seed": np.full(count, chunk.seed, dtype=np.int64),
        "pixel_size": pixel_size,
        "lattice_scale": lattice_scale,
    }


def clean_profiles(request: SimulationRequest, phase_index: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random orientations of one phase at the nominal calibration, cropped, max-normalised, no noise."""
    phase = load_phase(request.phases[phase_index])
    reflections = phase_reflections(phase, request.reciprocal_radius_inv_A)
    quaternions = sample_orientations(phase, count, rng)
    profiles = radial_profiles(reflections, quaternions, geometry_of(request), request.calibration_inv_A_per_px,
                               request.radial_bins, request.spot_sigma_px)
    return normalise_max(profiles[:, request.crop_start_px : request.crop_start_px + request.crop_points])


def simulation_id(request_json: str) -> str:
    """A version-4-format UUID derived from the request, so re-running a request gives identical bytes."""
    digest = bytearray(hashlib.sha256(request_json.encode()).digest()[:16])
    return str(uuid.UUID(bytes=bytes(digest), version=4))


def simulate_request(request: SimulationRequest, map_fn=map, chunk_size: int = 1000,
                     device: str | None = None) -> tuple[dict, dict]:
    """(tree, stats): the diffsims-XL layout as a flat dict of HDF5 paths, and timing figures.

    device None simulates with numpy; "cuda" with the torch path on the GPU.
    """
    started = time.perf_counter()
    chunks = plan_chunks(request, chunk_size, device)
    planned = time.perf_counter()
    results = list(map_fn(simulate_chunk, chunks))
    finished = time.perf_counter()
    stacked = {key: np.concatenate([r[key] for r in results]) for key in results[0]}
    request_json = json.dumps(request.to_dict(), sort_keys=True)
    tree = {
        "1d/x_px": stacked["x"],
        "1d/y_px": stacked["y"],
        "1d/x_all_q_axis": request.q_axis_inv_A(),
        "1d/quaternions": stacked["quaternions"],
        "1d/seed": stacked["seed"],
        "1d/calibration_inv_A_per_px": stacked["pixel_size"],
        "1d/lattice_scale": stacked["lattice_scale"],
        "metadata/phases": list(request.phases),
        "metadata/id": simulation_id(request_json),
        "metadata/request": request_json,
    }
    count = len(stacked["y"])
    stats = {
        "patterns": count,
        "chunks": len(chunks),
        "planning_s": planned - started,
        "simulation_s": finished - planned,
        "patterns_per_s": count / max(finished - planned, 1e-9),
    }
    return tree, stats
