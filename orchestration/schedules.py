"""Schedules."""

from dagster import RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from assets.diffraction.defs import diffraction_patterns, simulation_requests
from orchestration.jobs import diffraction_request_job
from resources.datapaths import requests_dir


@schedule(
    name="nightly_pending_requests_schedule",
    cron_schedule="0 2 * * *",
    job=diffraction_request_job,
    description="Nightly: launch every request partition whose file is still there but was never materialized. "
    "Off by default: turn it on in the UI (Automation) or with `dagster schedule start`.",
)
def nightly_pending_requests_schedule(context: ScheduleEvaluationContext):
    from assets.diffraction.requests import partition_key, request_files

    registered = set(context.instance.get_dynamic_partitions(simulation_requests.name))
    materialized = context.instance.get_materialized_partitions(diffraction_patterns.key)
    on_disk = {partition_key(path) for path in request_files(requests_dir())}
    pending = sorted((registered & on_disk) - set(materialized))
    if not pending:
        return SkipReason("no pending simulation requests")
    night = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return [RunRequest(run_key=f"{key}-nightly-{night}", partition_key=key) for key in pending]


SCHEDULES: list = [nightly_pending_requests_schedule]
