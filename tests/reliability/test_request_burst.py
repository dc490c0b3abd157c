"""1,000 request files dropped at once: exactly 1,000 run requests, none repeated later or after a restart."""

from dagster import DagsterInstance, build_sensor_context

from assets.diffraction.requests import partition_key
from orchestration.sensors import simulation_request_sensor
from tests.reliability.harness import write_request

BURST = 1000
TICKS = 4


def drop_burst(data_root, count: int) -> set[str]:
    """count distinct request files (distinct seeds); returns their partition keys."""
    return {partition_key(write_request(data_root, f"req{i:04d}", 10, [i])) for i in range(count)}


def run_ticks(instance, cursor: str | None, ticks: int) -> tuple[list[str], list[str], str | None]:
    """(run keys, partitions added, last cursor) over `ticks` evaluations, each resuming the last cursor."""
    run_keys, partitions = [], []
    for _ in range(ticks):
        result = simulation_request_sensor(build_sensor_context(instance=instance, cursor=cursor))
        run_keys += [request.run_key for request in result.run_requests or []]
        partitions += [key for request in result.dynamic_partitions_requests or [] for key in request.partition_keys]
        cursor = result.cursor or cursor
    return run_keys, partitions, cursor


def test_a_burst_of_request_files_yields_each_run_exactly_once(data_root):
    expected = drop_burst(data_root, BURST)
    run_keys, partitions, cursor = run_ticks(DagsterInstance.ephemeral(), None, TICKS)
    assert len(run_keys) == BURST and set(run_keys) == expected
    assert sorted(partitions) == sorted(expected)

    # A restarted daemon: a fresh instance process that keeps only the stored cursor.
    after_restart, added, _ = run_ticks(DagsterInstance.ephemeral(), cursor, TICKS)
    assert after_restart == [] and added == []


def test_files_arriving_between_ticks_are_each_requested_once(data_root):
    instance, cursor, seen = DagsterInstance.ephemeral(), None, []
    for wave in range(4):
        for i in range(wave * 50, (wave + 1) * 50):
            write_request(data_root, f"wave{i:03d}", 10, [i])
        run_keys, _, cursor = run_ticks(instance, cursor, 2)
        assert len(run_keys) == 50
        seen += run_keys
    assert len(set(seen)) == len(seen) == 200
