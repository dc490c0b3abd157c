"""simulation_request_sensor, experimental_map_sensor and the nightly schedule on temporary folders."""

import datetime as dt
import json

import numpy as np
from dagster import AssetMaterialization, DagsterInstance, build_schedule_context, build_sensor_context, instance_for_test

from assets.diffraction.defs import simulation_requests
from assets.diffraction.requests import partition_key
from orchestration.schedules import nightly_pending_requests_schedule
from orchestration.sensors import experimental_map_sensor, simulation_request_sensor


def tick(sensor, cursor=None, instance=None):
    return sensor(build_sensor_context(instance=instance or DagsterInstance.ephemeral(), cursor=cursor))


def test_new_request_files_become_partitions_and_runs_once(data_root):
    folder = data_root / "requests"
    folder.mkdir()
    (folder / "a.yaml").write_text("orientations_per_phase: 10\n")
    (folder / "b.yml").write_text("phases: [Pb, CsI]\n")
    first = tick(simulation_request_sensor)
    keys = [partition_key(folder / "a.yaml"), partition_key(folder / "b.yml")]
    assert [r.run_key for r in first.run_requests] == keys
    assert [r.partition_key for r in first.run_requests] == keys
    assert first.dynamic_partitions_requests[0].partition_keys == keys
    assert first.dynamic_partitions_requests[0].partitions_def_name == simulation_requests.name

    again = tick(simulation_request_sensor, first.cursor)
    assert not again.run_requests and "no new or changed" in again.skip_reason.skip_message

    (folder / "a.yaml").write_text("orientations_per_phase: 11\n")
    changed = tick(simulation_request_sensor, again.cursor)
    assert [r.run_key for r in changed.run_requests] == [partition_key(folder / "a.yaml")] != keys[:1]


def test_same_content_under_another_name_is_not_simulated_again(data_root):
    folder = data_root / "requests"
    folder.mkdir()
    (folder / "a.yaml").write_text("phases: [Pb, CsI]\n")
    first = tick(simulation_request_sensor)
    (folder / "copy_of_a.yaml").write_text("phases: [Pb, CsI]\n")
    second = tick(simulation_request_sensor, first.cursor)
    assert not second.run_requests and "duplicates ['copy_of_a.yaml']" in second.skip_reason.skip_message
    note = (folder / "copy_of_a.yaml.rejected.txt").read_text()
    assert partition_key(folder / "a.yaml") in note and "same content" in note


def test_sensors_launch_named_jobs():
    assert simulation_request_sensor.job_name == "diffraction_request_job"
    assert experimental_map_sensor.job_name == "diffraction_map_job"


def test_invalid_request_is_skipped_with_a_note_and_the_sensor_goes_on(data_root):
    folder = data_root / "requests"
    folder.mkdir()
    (folder / "bad.yaml").write_text("phases: [Pb, Unobtainium]\n")
    (folder / "good.yaml").write_text("{}\n")
    result = tick(simulation_request_sensor)
    assert [r.run_key for r in result.run_requests] == [partition_key(folder / "good.yaml")]
    note = (folder / "bad.yaml.rejected.txt").read_text()
    assert "bad.yaml: field 'phases'" in note and "Unobtainium" in note
    assert set(json.loads(result.cursor)) == {"bad.yaml", "good.yaml"}

    only_bad = tick(simulation_request_sensor, result.cursor)
    assert not only_bad.run_requests
    (folder / "bad.yaml").write_text("phases: [Pb, CsI]\n")  # fixed: runs, and its note goes
    fixed = tick(simulation_request_sensor, only_bad.cursor)
    assert [r.partition_key for r in fixed.run_requests] == [partition_key(folder / "bad.yaml")]
    assert not (folder / "bad.yaml.rejected.txt").exists()


def test_experimental_sensor_waits_for_a_model_then_runs_for_new_or_changed_files(data_root):
    folder = data_root / "raw" / "diffraction" / "experimental"
    folder.mkdir(parents=True)
    np.savez(folder / "scan1.npz", x=np.arange(147.0), y=np.zeros((2, 2, 147)))
    instance = DagsterInstance.ephemeral()
    assert "waiting for a trained phase_cnn" in tick(experimental_map_sensor, instance=instance).skip_message
    instance.report_runless_asset_event(AssetMaterialization("phase_cnn"))
    first = tick(experimental_map_sensor, instance=instance)
    assert len(first.run_requests) == 1 and first.run_requests[0].run_key.startswith("scan1-")
    assert not tick(experimental_map_sensor, first.cursor, instance).run_requests
    np.savez(folder / "scan2.npz", x=np.arange(147.0), y=np.ones((2, 2, 147)))
    second = tick(experimental_map_sensor, first.cursor, instance)
    assert second.run_requests[0].run_key.startswith("scan2-")


def test_nightly_schedule_launches_registered_requests_never_materialized(data_root):
    folder = data_root / "requests"
    folder.mkdir()
    (folder / "pending.yaml").write_text("{}\n")
    pending = partition_key(folder / "pending.yaml")
    with instance_for_test() as instance:  # schedules need a persistent instance reference
        instance.add_dynamic_partitions(simulation_requests.name, [pending, "removed-file-000000000000"])
        context = build_schedule_context(instance=instance, scheduled_execution_time=dt.datetime(2026, 11, 24, 2))
        requests = nightly_pending_requests_schedule(context)
    assert [(r.partition_key, r.run_key) for r in requests] == [(pending, f"{pending}-nightly-2026-11-24")]
