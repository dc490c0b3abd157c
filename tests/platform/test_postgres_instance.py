"""A job run against the shared-instance dagster.yaml (PostgreSQL storage) and read back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.platform.postgres_server import postgres_bin_dir, running_postgres

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    postgres_bin_dir() is None, reason="no PostgreSQL server binaries (Debian package postgresql)"
)


def test_job_runs_on_postgres_instance_and_is_read_back(tmp_path, monkeypatch):
    from dagster import DagsterInstance, DagsterRunStatus

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    with running_postgres() as pg:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "MATERIALS_DATA": str(tmp_path / "data"),
            "DAGSTER_PG_HOST": pg["host"],
            "DAGSTER_PG_PORT": str(pg["port"]),
            "DAGSTER_PG_DB": pg["db"],
            "DAGSTER_PG_USER": pg["user"],
            "DAGSTER_PG_PASSWORD": "",
        }
        dagster = str(Path(sys.executable).parent / "dagster")
        pool = subprocess.run(
            [dagster, "instance", "concurrency", "set", "gpu", "1"], env=env, cwd=REPO, capture_output=True, text=True
        )
        assert pool.returncode == 0, pool.stdout[-2000:] + pool.stderr[-2000:]
        result = subprocess.run(
            [dagster, "asset", "materialize", "-m", "orchestration.definitions", "--select", "eis_simulated_spectra"],
            env=env, cwd=REPO, capture_output=True, text=True,
        )
        assert result.returncode == 0, result.stderr[-3000:]

        for key, value in env.items():
            monkeypatch.setenv(key, value)
        with DagsterInstance.get() as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
            runs = instance.get_runs()
            assert [run.status for run in runs] == [DagsterRunStatus.SUCCESS]
            materialized = instance.get_latest_materialization_event(
                __import__("dagster").AssetKey("eis_simulated_spectra")
            )
            assert materialized is not None and materialized.run_id == runs[0].run_id
            assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 1
