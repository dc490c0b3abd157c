"""File-drop sensors (simulation requests, new experimental files, ...).

Each sensor keeps a JSON cursor {file name: content key} so a file is looked at
again only when its content changes, and gives every run a run key derived from
the file's name and content hash, so Dagster never launches the same file twice.
A request whose content equals an earlier request's (under another name) is not
simulated again: it gets a note naming the partition that already holds it.
Both sensors target named jobs, so their runs read `diffraction_request_job` and
`diffraction_map_job` in the UI.
"""

import json

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from assets.diffraction.defs import experimental_dir, phase_cnn, simulation_requests
from orchestration.jobs import diffraction_map_job, diffraction_request_job
from resources.datapaths import atomic_write_bytes, requests_dir, sha256_file

REJECTION_SUFFIX = ".rejected.txt"


def _seen(context: SensorEvaluationContext) -> dict:
    return json.loads(context.cursor) if context.cursor else {}


def rejection_note_path(request_path):
    return request_path.with_name(request_path.name + REJECTION_SUFFIX)


@sensor(
    name="simulation_request_sensor",
    job=diffraction_request_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Each new or changed YAML in data/requests/ becomes a diffraction_patterns partition and a run.",
)
def simulation_request_sensor(context: SensorEvaluationContext):
    from assets.diffraction.phases import available_phases
    from assets.diffraction.requests import RequestError, partition_key, read_request, request_files

    seen, known_phases = _seen(context), available_phases()
    new_keys, rejected, duplicates = [], [], []
    for path in request_files(requests_dir()):
        key = partition_key(path)
        if seen.get(path.name) == key:
            continue
        # Content already requested under another name (the digest is the key's last 12 hex).
        twin = next((other for name, other in seen.items() if name != path.name and other[-12:] == key[-12:]), None)
        seen[path.name] = key
        note = rejection_note_path(path)
        if twin is not None:
            atomic_write_bytes(note, f"{path.name}: same content as the request of partition {twin}; not simulated again\n".encode())
            context.log.info(f"skipped {path.name}: duplicate of {twin}")
            duplicates.append(path.name)
            continue
        try:
            read_request(path, known_phases)
        except RequestError as error:
            atomic_write_bytes(note, f"{error}\n".encode())
            context.log.warning(f"skipped {path.name}: {error}")
            rejected.append(path.name)
            continue
        note.unlink(missing_ok=True)  # a fixed file: its old note no longer applies
        new_keys.append(key)
    cursor = json.dumps(seen, sort_keys=True)
    if not new_keys:
        notes = [f"rejected {rejected}"] * bool(rejected) + [f"duplicates {duplicates}"] * bool(duplicates)
        reason = f"{'; '.join(notes)} (see *.rejected.txt)" if notes else f"no new or changed request files in {requests_dir()}"
        return SensorResult(skip_reason=SkipReason(reason), cursor=cursor)
    return SensorResult(
        run_requests=[RunRequest(run_key=key, partition_key=key) for key in new_keys],
        dynamic_partitions_requests=[simulation_requests.build_add_request(new_keys)],
        cursor=cursor,
    )


@sensor(
    name="experimental_map_sensor",
    job=diffraction_map_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="A new or changed .npz in raw/diffraction/experimental/ starts phase predictions and their evaluation "
    "(only new or changed maps are predicted). Waits, saying so in each tick, until phase_cnn has been "
    "materialized once (run diffraction_job).",
)
def experimental_map_sensor(context: SensorEvaluationContext):
    if context.instance.get_latest_materialization_event(phase_cnn.key) is None:
        # Keep the cursor: files dropped before the first model are picked up once it exists.
        return SkipReason("waiting for a trained phase_cnn: run diffraction_job (or materialize phase_cnn) first; "
                          "files dropped meanwhile are picked up then")
    folder = experimental_dir()
    files = sorted(folder.glob("*.npz")) if folder.is_dir() else []
    seen, run_keys = _seen(context), []
    for path in files:
        key = f"{path.stem}-{sha256_file(path)[:12]}"
        if seen.get(path.name) != key:
            seen[path.name] = key
            run_keys.append(key)
    cursor = json.dumps(seen, sort_keys=True)
    if not run_keys:
        return SensorResult(skip_reason=SkipReason(f"no new or changed .npz files in {folder}"), cursor=cursor)
    # One run covers the folder (unchanged maps are not predicted again); its key names the new files.
    return SensorResult(run_requests=[RunRequest(run_key="+".join(run_keys))], cursor=cursor)


SENSORS: list = [simulation_request_sensor, experimental_map_sensor]
