"""Dask fan-out for simulation chunks.

`scheduler_address=None` starts a LocalCluster sized to the machine (one
single-threaded worker process per core); an address such as
"tcp://10.0.0.5:8786" connects to a real cluster. `synchronous=True` runs every
chunk in the calling process (tests, debugging) through Dask's synchronous
scheduler, so the same code path is exercised.
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

    def map(self, fn: Callable[[Any], Any], chunks: Sequence[Any]) -> list[Any]:
        """fn over chunks, results in chunk order."""
        if self.synchronous:
            import dask

            tasks = [dask.delayed(fn)(chunk) for chunk in chunks]
            return list(dask.compute(*tasks, scheduler="synchronous"))
        from distributed import Client, LocalCluster

        if self.scheduler_address:
            with Client(self.scheduler_address) as client:
                return client.gather(client.map(fn, list(chunks), pure=False))
        n_workers = self.n_workers or os.cpu_count() or 1
        with LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster, Client(cluster) as client:
            return client.gather(client.map(fn, list(chunks), pure=False))

    def describe(self) -> str:
        if self.synchronous:
            return "synchronous"
        return self.scheduler_address or f"LocalCluster({self.n_workers or os.cpu_count()} workers)"
