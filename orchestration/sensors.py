"""File-drop sensors (simulation requests, new experimental files, ...).

Each sensor keeps a JSON cursor {file name: content key} so a file is looked at
again only when its content changes, and gives every run a run key derived from
the file's name and content hash, so Dagster never launches the same file twice.
"""

import json

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from assets.diffraction.defs import (
    experimental_maps,
    diffraction_patterns,
    phase_cnn,
    phase_predictions,
    prediction_evaluation,
    experimental_dir,
    simulation_requests,
)
from resources.datapaths import atomic_write_bytes, requests_dir, sha256_file

REJECTION_SUFFIX = ".rejected.txt"


def _seen(context: SensorEvaluationContext) -> dict:
    return json.loads(context.cursor) if context.cursor else {}


def rejection_note_path(request_path):
    return request_path.with_name(request_path.name + REJECTION_SUFFIX)


@sensor(
    name="simulation_request_sensor",
    asset_selection=[diffraction_patterns],
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Each new or changed YAML in data/requests/ becomes a diffraction_patterns partition and a run.",
)
def simulation_request_sensor(context: SensorEvaluationContext):
    from assets.diffraction.phases import available_phases
    from assets.diffraction.requests import RequestError, partition_key, read_request, request_files

    seen, known_phases = _seen(context), available_phases()
    new_keys, rejected = [], []
    for path in request_files(requests_dir()):
        key = partition_key(path)
        if seen.get(path.name) == key:
            continue
        seen[path.name] = key
        note = rejection_note_path(path)
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
        reason = f"rejected {rejected} (see *.rejected.txt)" if rejected else "no new or changed request files"
        return SensorResult(skip_reason=SkipReason(reason), cursor=cursor)
    return SensorResult(
        run_requests=[RunRequest(run_key=key, partition_key=key) for key in new_keys],
        dynamic_partitions_requests=[simulation_requests.build_add_request(new_keys)],
        cursor=cursor,
    )


@sensor(
    name="experimental_map_sensor",
    asset_selection=[experimental_maps, phase_predictions, prediction_evaluation],
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="A new or changed .npz in raw/diffraction/experimental/ starts phase predictions and their evaluation.",
)
def experimental_map_sensor(context: SensorEvaluationContext):
    if context.instance.get_latest_materialization_event(phase_cnn.key) is None:
        # Keep the cursor: files dropped before the first model are picked up once it exists.
        return SkipReason("no trained phase_cnn yet: run diffraction_job first")
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
        return SensorResult(skip_reason=SkipReason("no new or changed experimental files"), cursor=cursor)
    # One run covers every file in the folder; its key names all the new files so none is re-run.
    return SensorResult(run_requests=[RunRequest(run_key="+".join(run_keys))], cursor=cursor)


SENSORS: list = [simulation_request_sensor, experimental_map_sensor]
