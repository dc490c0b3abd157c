"""The data root and its folders (no Dagster import: science code may use it).

    <root>/raw/<pipeline>/   user drops: CSVs, instrument files, pickles, CIFs, ... (only ever read)
    <root>/examples/<pipeline>/  embedded synthetic examples, used when a pipeline has no user data
    <root>/requests/         simulation request YAML files (watched by a sensor)
    <root>/storage/          the IO manager's artefacts
    <root>/exports/          user-facing outputs: predictions, reports
    <root>/quarantine/       rejected inputs, one line per rejection with its reason
    <root>/cache/<pipeline>/ costly intermediate results keyed by their settings (safe to delete)

The root is $MATERIALS_DATA (default ./data). Raw inputs are only ever read.
"""

from __future__ import annotations

import csv
import datetime as dt
import fcntl
import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

QUARANTINE_FIELDS = ["time_utc", "pipeline", "source", "source_sha256", "row", "reason"]


def data_root() -> Path:
    return Path(os.environ.get("MATERIALS_DATA", "data")).expanduser().resolve()


def raw_dir(pipeline: str) -> Path:
    return data_root() / "raw" / pipeline


def examples_dir(pipeline: str) -> Path:
    """Embedded synthetic examples of a pipeline: never mixed into raw/, labelled source=synthetic."""
    return data_root() / "examples" / pipeline


def relative_to_root(path: str | Path) -> str:
    """A path as a user sees it in exports: relative to the data root when it lies below it."""
    try:
        return Path(path).resolve().relative_to(data_root()).as_posix()
    except (ValueError, OSError):
        return str(path)


def requests_dir() -> Path:
    return data_root() / "requests"


INPUT_FOLDERS = (
    "raw/eis", "raw/eis/unlabelled", "raw/pdf/structures", "raw/pdf/measured", "raw/cycling",
    "raw/diffraction/experimental", "raw/diffraction/cif", "raw/electrodes", "requests",
)


def ensure_input_folders() -> list[Path]:
    """Create the (empty) folders users drop files into, so a sensor never watches a folder that is not there."""
    made = []
    for relative in INPUT_FOLDERS:
        folder = data_root() / relative
        try:
            folder.mkdir(parents=True, exist_ok=True)
            made.append(folder)
        except OSError:  # a read-only or remote root: the folders are the user's to make
            pass
    return made


def storage_dir() -> Path:
    return data_root() / "storage"


def exports_dir() -> Path:
    return data_root() / "exports"


def quarantine_dir() -> Path:
    return data_root() / "quarantine"


def cache_dir(pipeline: str) -> Path:
    """Results a rerun with the same settings reuses (generated structures, ...); deleting it only costs time."""
    return data_root() / "cache" / pipeline


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


def _source_sha256(source: str) -> str:
    """Content hash of a rejected source file ('' when the source is not a readable file)."""
    for candidate in (Path(source), data_root() / source):
        if candidate.is_file():
            return sha256_file(candidate)
    return ""


def write_quarantine(pipeline: str, rejections: list[Rejection], checked_sources=()) -> Path:
    """Record the current rejections of `pipeline` in <root>/quarantine/<pipeline>.csv.

    One line per (source, content sha256, row, reason): a rerun over the same file adds nothing, and
    the first-seen time is kept. Lines of every source in `checked_sources` (the files this call read)
    or in `rejections` that are not rejected now are dropped, so a file the user fixed drops out.
    Sources are written relative to the data root.
    """
    path = quarantine_dir() / f"{pipeline}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    hashes: dict[str, str] = {}
    current = []
    for rejection in rejections:
        source = relative_to_root(rejection.source)
        if source not in hashes:
            hashes[source] = _source_sha256(rejection.source)
        row = "" if rejection.row is None else str(rejection.row)
        current.append({"time_utc": now, "pipeline": pipeline, "source": source,
                        "source_sha256": hashes[source], "row": row, "reason": rejection.reason})
    replaced = set(hashes) | {relative_to_root(source) for source in checked_sources}
    with open(path.with_name(f".{path.stem}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # assets of one pipeline may run in parallel processes
        kept = []
        if path.exists():
            with open(path, newline="") as handle:
                kept = [{field: line.get(field) or "" for field in QUARANTINE_FIELDS} for line in csv.DictReader(handle)]
        first_seen = {_quarantine_key(line): line["time_utc"] for line in kept}
        kept = [line for line in kept if line["source"] not in replaced]
        seen = set()
        for line in current:
            key = _quarantine_key(line)
            if key not in seen:
                seen.add(key)
                kept.append({**line, "time_utc": first_seen.get(key, now)})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=QUARANTINE_FIELDS)
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_bytes(path, buffer.getvalue().encode())
    return path


def _quarantine_key(line: dict) -> tuple:
    return (line["source"], line["source_sha256"], str(line["row"]), line["reason"])
