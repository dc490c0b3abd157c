"""The one Definitions object of the code location.

Each pipeline's `assets/<pipeline>/defs.py` exposes `defs` (its assets and checks)
and may expose `demo_selection` / `job_selection` when the group as a whole is
not what the demo or its job should run. Heavy science libraries are imported
inside asset bodies, so loading this module stays fast.
"""

from __future__ import annotations

import importlib
import os

from dagster import AssetSelection, Definitions

from orchestration.jobs import PIPELINES, SENSOR_JOBS, demo_job, named_job, pipeline_job
from orchestration.schedules import SCHEDULES
from orchestration.sensors import SENSORS
from resources.cluster import DaskResource
from resources.compute import ComputeResource, quiet_tensorflow_without_cuda
from resources.datapaths import ensure_input_folders
from resources.storage import MaterialsStorage


def default_resources() -> dict:
    """Resources for a run; MATERIALS_DEVICE and DASK_SCHEDULER_ADDRESS override defaults."""
    return {
        "compute": ComputeResource(device=os.environ.get("MATERIALS_DEVICE", "auto")),
        "dask": DaskResource(scheduler_address=os.environ.get("DASK_SCHEDULER_ADDRESS") or None),
        "io_manager": MaterialsStorage(),
    }


def _pipeline_modules() -> dict:
    return {pipeline: importlib.import_module(f"assets.{pipeline}.defs") for pipeline in PIPELINES}


def build_definitions() -> Definitions:
    modules = _pipeline_modules()
    jobs = [
        pipeline_job(name, getattr(module, "job_selection", None)) for name, module in modules.items()
    ]
    jobs += [named_job(name, selection, description) for module in modules.values()
             for name, (selection, description) in getattr(module, "extra_jobs", {}).items()]
    jobs += SENSOR_JOBS
    jobs.append(
        demo_job(
            [getattr(module, "demo_selection", AssetSelection.groups(name)) for name, module in modules.items()]
        )
    )
    platform = Definitions(jobs=jobs, sensors=SENSORS, schedules=SCHEDULES, resources=default_resources())
    return Definitions.merge(*(module.defs for module in modules.values()), platform)


quiet_tensorflow_without_cuda()
ensure_input_folders()
defs = build_definitions()
