"""Jobs: one per pipeline, plus `materials_demo` running every pipeline on its embedded default.

Pipeline jobs use the multiprocess executor with a forkserver that preloads our
modules (a plain spawn costs ~3 s of imports per step); the demo runs in-process.
"""

from __future__ import annotations

import functools
import operator

from dagster import AssetSelection, define_asset_job, in_process_executor, multiprocess_executor

PIPELINES = ["eis", "pdf", "cycling", "diffraction", "electrodes"]
# The electrodes assets are partitioned by working ion; a run of them needs a partition: the demo trains Li.
DEMO_TAGS = {"dagster/partition": "Li"}

forkserver_executor = multiprocess_executor.configured(
    {
        "max_concurrent": 2,
        "start_method": {"forkserver": {"preload_modules": ["orchestration.definitions"]}},
    },
    name="forkserver_executor",
)


def pipeline_job(pipeline: str, selection: AssetSelection | None = None):
    return define_asset_job(
        f"{pipeline}_job",
        selection=selection or AssetSelection.groups(pipeline),
        executor_def=forkserver_executor,
        description=f"The whole `{pipeline}` pipeline on its configured inputs.",
    )


def named_job(name: str, selection: AssetSelection, description: str):
    """A pipeline's further job (its module's `extra_jobs`), on the same executor as the pipeline jobs."""
    return define_asset_job(name, selection=selection, executor_def=forkserver_executor, description=description)


def demo_job(selections: list[AssetSelection]):
    selection = functools.reduce(operator.or_, selections, AssetSelection.keys())
    return define_asset_job(
        "materials_demo",
        selection=selection,
        executor_def=in_process_executor,
        tags=DEMO_TAGS,
        description="Every pipeline end to end on its small embedded default data.",
    )


# Named jobs for the diffraction sensors, so their runs read as what they do (not __ASSET_JOB).
diffraction_request_job = define_asset_job(
    "diffraction_request_job",
    selection=AssetSelection.assets("diffraction_patterns"),
    description="Simulate one request partition of diffraction_patterns (launched by simulation_request_sensor).",
)
diffraction_map_job = define_asset_job(
    "diffraction_map_job",
    selection=AssetSelection.assets("experimental_maps", "phase_predictions", "prediction_evaluation"),
    description="Predict phase maps for new or changed experimental files (launched by experimental_map_sensor).",
)
SENSOR_JOBS = [diffraction_request_job, diffraction_map_job]
