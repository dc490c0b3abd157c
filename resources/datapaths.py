"""The data root and its folders (no Dagster import: science code may use it).

    <root>/raw/<pipeline>/   user drops: CSVs, instrument files, pickles, CIFs, ...
    <root>/requests/         simulation request YAML files (watched by a sensor)
    <root>/storage/          the IO manager's artefacts
    <root>/exports/          user-facing outputs: predictions, reports
    <root>/quarantine/       rejected inputs, one line per rejection with its reason

The root is $MATERIALS_DATA (default ./data). Raw inputs are only ever read.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

QUARANTINE_FIELDS = ["time_utc", "pipeline", "source", "row", "reason"]


def data_root() -> Path:
    return Path(os.environ.get("MATERIALS_DATA", "data")).expanduser().resolve()


def raw_dir(pipeline: str) -> Path:
    return data_root() / "raw" / pipeline


def requests_dir() -> Path:
    return data_root() / "requests"


def storage_dir() -> Path:
    return data_root() / "storage"


def exports_dir() -> Path:
    return data_root() / "exports"


def quarantine_dir() -> Path:
    return data_root() / "quarantine"


@dataclass(frozen=True)
class Rejection:
    """One rejected input: which file, which row (None for a whole file) and why."""

    source: str
    row: int | str | None
    reason: str


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write to a temporary sibling then rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; exports are for other users too
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_export_csv(frame, name: str) -> Path:
    """Atomically write a DataFrame to <root>/exports/<name>."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return atomic_write_bytes(exports_dir() / name, buffer.getvalue().encode())


def write_quarantine(pipeline: str, rejections: list[Rejection]) -> Path:
    """Append rejections to <root>/quarantine/<pipeline>.csv (one line each)."""
    path = quarantine_dir() / f"{pipeline}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    new_file = not path.exists()
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=QUARANTINE_FIELDS)
        if new_file:
            writer.writeheader()
        for rejection in rejections:
            writer.writerow(
                {
                    "time_utc": now,
                    "pipeline": pipeline,
                    "source": rejection.source,
                    "row": "" if rejection.row is None else rejection.row,
                    "reason": rejection.reason,
                }
            )
    return path
