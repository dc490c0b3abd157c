"""A throwaway PostgreSQL server on 127.0.0.1 (Debian's postgresql package) for instance tests."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager

from tests.platform.dagster_dev import free_port


def postgres_bin_dir() -> str | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(candidates[-1]) if candidates else None


def _as_server_user(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: drop to the postgres account."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@contextmanager
def running_postgres(db_name: str = "dagster"):
    """Yield connection settings {host, port, user, db} of a fresh server; stop and delete it after."""
    bin_dir = postgres_bin_dir()
    workdir = tempfile.mkdtemp(prefix="pg-test-")
    os.chmod(workdir, 0o777)
    data_dir = os.path.join(workdir, "data")
    if os.geteuid() == 0:
        shutil.chown(workdir, user="postgres")
    port = free_port()
    subprocess.run(
        _as_server_user([f"{bin_dir}/initdb", "-D", data_dir, "-U", "postgres", "--auth=trust"]),
        check=True, capture_output=True,
    )
    server = subprocess.Popen(
        _as_server_user([f"{bin_dir}/postgres", "-D", data_dir, "-p", str(port), "-k", workdir,
                         "-c", "listen_addresses=127.0.0.1"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([f"{bin_dir}/pg_isready", "-h", "127.0.0.1", "-p", str(port)],
                             capture_output=True).returncode != 0:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("PostgreSQL did not start")
            time.sleep(0.3)
        subprocess.run([f"{bin_dir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", db_name],
                       check=True, capture_output=True)
        yield {"host": "127.0.0.1", "port": port, "user": "postgres", "db": db_name}
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)
