"""Scaling of the request simulation from 1 to 2 Dask workers (DaskResource.map on a LocalCluster).

Each cluster is started and warmed up (worker imports) before timing, then the same
chunks of the same request are simulated through `DaskResource(scheduler_address=...)`,
the path a real cluster uses. Workers are single-threaded processes. Both sides simulate
the same chunks (their pattern counts are printed from the results) and must return
identical profiles; a difference exits 1.

    python -m benchmarks.diffraction_scaling [--orientations-per-phase 6000] [--chunk-size 1000] [--max-workers 2]
"""

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from assets.diffraction.requests import SimulationRequest  # noqa: E402
from assets.diffraction.simulation import plan_chunks, simulate_chunk  # noqa: E402
from resources.cluster import DaskResource  # noqa: E402


def timed_run(workers: int, chunks: list) -> tuple[float, list]:
    """(seconds, results) simulating every chunk on a warmed-up LocalCluster of `workers` processes."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster):
        dask = DaskResource(scheduler_address=cluster.scheduler_address)
        dask.map(simulate_chunk, chunks[:workers])  # imports and first-call costs, not counted
        started = time.perf_counter()
        results = dask.map(simulate_chunk, chunks)
        return time.perf_counter() - started, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orientations-per-phase", type=int, default=6000)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--max-workers", type=int, default=2)
    args = parser.parse_args()
    request = dataclasses.replace(SimulationRequest(), orientations_per_phase=args.orientations_per_phase)
    chunks = plan_chunks(request, args.chunk_size)
    patterns = sum(len(chunk.quaternions) for chunk in chunks)
    print(f"patterns: {patterns}")
    print(f"chunks: {len(chunks)}")
    print(f"cpu_count: {os.cpu_count()}")
    seconds, first = {}, None
    for workers in range(1, args.max_workers + 1):
        seconds[workers], results = timed_run(workers, chunks)
        print(f"workers_{workers}_patterns: {sum(len(result['y']) for result in results)}")
        print(f"workers_{workers}_s: {seconds[workers]:.2f}")
        print(f"workers_{workers}_patterns_per_s: {patterns / seconds[workers]:.1f}")
        if first is None:
            first = results
        elif not all(np.array_equal(a["x"], b["x"]) and np.array_equal(a["y"], b["y"]) for a, b in zip(first, results)):
            print(f"profiles from {workers} workers differ from 1 worker", file=sys.stderr)
            return 1
    print("profiles_identical_across_worker_counts: yes")
    print(f"speedup_{args.max_workers}_workers_over_1: {seconds[1] / seconds[args.max_workers]:.2f}")
    return 0


if __name__ == "__main__":
    from benchmarks import results

    raise SystemExit(results.run(main, "diffraction_scaling"))
