"""Dask fan-out for simulation chunks.

`scheduler_address=None` starts a LocalCluster sized to the machine (one
single-threaded worker process per core); an address such as
"tcp://10.0.0.5:8786" connects to a real cluster. `synchronous=True` runs every
chunk in the calling process, one after another (tests, debugging).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from dagster import ConfigurableResource


class DaskResource(ConfigurableResource):
    scheduler_address: str | None = None
    n_workers: int = 0  # 0: one per core (LocalCluster only)
    synchronous: bool = False

    def map(self, fn: Callable[[Any], Any], chunks: Sequence[Any],
            progress: Callable[[int], None] | None = None) -> list[Any]:
        """fn over chunks, results in chunk order; progress(n_done) after each chunk completes."""
        chunks = list(chunks)
        report = progress or (lambda done: None)
        if self.synchronous:
            results = []
            for chunk in chunks:
                results.append(fn(chunk))
                report(len(results))
            return results
        from distributed import Client, LocalCluster

        if self.scheduler_address:
            with Client(self.scheduler_address) as client:
                return _gather_in_order(client, fn, chunks, report)
        n_workers = self.n_workers or os.cpu_count() or 1
        with LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster, Client(cluster) as client:
            return _gather_in_order(client, fn, chunks, report)

    def describe(self) -> str:
        if self.synchronous:
            return "synchronous"
        return self.scheduler_address or f"LocalCluster({self.n_workers or os.cpu_count()} workers)"


def _gather_in_order(client, fn: Callable[[Any], Any], chunks: list, report: Callable[[int], None]) -> list[Any]:
    from distributed import as_completed

    futures = client.map(fn, chunks, pure=False)
    index = {future.key: i for i, future in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    for done, (future, result) in enumerate(as_completed(futures, with_results=True), start=1):
        results[index[future.key]] = result
        report(done)
    return results
