"""Read a drop folder of battery-cycler files as the cycling pipeline does, and say what became of each file.

    python -m benchmarks.cycler_files --data ../shared/data/cycling/raw

Prints one line per file (`file: NAME instrument=... cycles=N status=read|sidecar|rejected (reason)`), then
files_total, files_read, files_sidecar, files_rejected, files_ignored (files under --data the pipeline does not
list; must be 0), cycles_read, capacity_consistent_share (cycles whose instrument capacities equal the current's
integral within 1 % or 0.1 mAh, over the cycles that could be checked), seconds_total, and mb_per_second: MB
of text exports read (and converted to the unified rows) per CPU second of this process spent reading them
(pandas' C parser, one thread: CPU seconds are one core's seconds, and unlike wall time they do not grow when
other jobs share the machine; mb_per_second_wall is the wall-clock figure). Progress lines (count, rate,
time left) go to stderr for long folders.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from assets.cycling import cycle_summary, cyclers, unified
from benchmarks import results


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def listed_files(folder: Path) -> tuple[list[Path], int]:
    """(the files the pipeline lists, the number of other files under the folder: ignored ones)."""
    paths = unified.raw_files(folder)
    listed = {p.resolve() for p in paths}
    lives = {p.resolve() for p in (folder / unified.LIVES_FOLDER).glob("*") if p.is_file()} \
        if unified.qdlin_splits(folder) else set()  # consumed with their Qdlin split
    ignored = [p for p in folder.rglob("*") if p.is_file() and p.resolve() not in listed | lives]
    return paths, len(ignored)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="drop folder of cycler files")
    args = parser.parse_args(argv)
    folder = args.data
    if not folder.is_dir():
        print(f"error: --data {folder} is not a folder", file=sys.stderr)
        return 2
    paths, n_ignored = listed_files(folder)
    start = time.perf_counter()
    frames, rejections, notes, summaries = [], [], {}, []
    text_bytes, text_seconds, text_cpu_seconds = 0, 0.0, 0.0
    from resources.progress import Progress

    progress = Progress("cycler files", len(paths), _log, unit="files", every_s=5.0)
    for done, path in enumerate(paths):
        began, began_cpu = time.perf_counter(), time.process_time()
        read, rejected, origins = unified.read_files([path], root=folder, log=_log)
        seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - began_cpu
        frames += read
        rejections += rejected
        notes.update(origins)
        if any(len(f) for f in read) and cyclers.is_text_file(path):
            text_bytes += path.stat().st_size
            text_seconds += seconds
            text_cpu_seconds += cpu_seconds
        progress.update(done + 1)
    table = unified._conform(frames)
    if len(table):
        summaries = cycle_summary.cycle_summary(table)
    files = unified.files_table(paths, folder, table, rejections, notes)
    seconds_total = time.perf_counter() - start
    for row in files.itertuples(index=False):
        reason = f" ({row.reason})" if row.reason else ""
        print(f"file: {row.file} instrument={row.instrument} cycles={row.cycles} status={row.status}{reason}")
    counts = files["status"].value_counts()
    print(f"files_total: {len(files) + n_ignored}")
    for status in ["read", "sidecar", "rejected"]:
        print(f"files_{status}: {int(counts.get(status, 0))}")
    print(f"files_ignored: {n_ignored}")
    print(f"cycles_read: {int(files['cycles'].sum())}")
    checked = 0 if not len(table) else int((summaries["capacity_check"] != "not checked").sum())
    inconsistent = 0 if not len(table) else int((summaries["capacity_check"] == "inconsistent").sum())
    print(f"cycles_capacity_checked: {checked}")
    print(f"cycles_capacity_inconsistent: {inconsistent}")
    share = cycle_summary.consistent_share(summaries) if len(table) else float("nan")
    print(f"capacity_consistent_share: {share:.4f}")
    print(f"text_mb: {text_bytes / 1e6:.3f}")
    print(f"text_seconds: {text_seconds:.3f}")
    print(f"text_cpu_seconds: {text_cpu_seconds:.3f}")
    print(f"seconds_total: {seconds_total:.3f}")
    print(f"mb_per_second_wall: {text_bytes / 1e6 / text_seconds if text_seconds else float('nan'):.2f}")
    print(f"mb_per_second: {text_bytes / 1e6 / text_cpu_seconds if text_cpu_seconds else float('nan'):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(results.run(main, "cycler_files"))
