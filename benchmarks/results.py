"""Record what a benchmark printed, with when, where and how it ran, as benchmarks/results/<name>.json.

Every benchmark ends with

    if __name__ == "__main__":
        raise SystemExit(results.run(main, "<name>"))

`run` takes `--results-dir DIR` and `--results-name NAME` (also as `--flag=value`) out of sys.argv
before `main` parses it, runs `main` with its stdout teed, and writes the `name: value` lines it printed (the figures, in
order, the last one the headline) with the date, the commit, the machine (cores, 1-minute load
before and after) and the exact command. The directory is, in order: `--results-dir`, the
environment variable MATERIALS_BENCHMARK_RESULTS (the test suite points it at a temporary folder,
so a benchmark a test runs never overwrites the committed figures), `benchmarks/results/`.

A run that printed no figure (`--help`, or one that could not start) writes nothing, so it never
replaces a real result with an empty one; a run that printed figures and exited non-zero is
written with its exit code, since the figures say what failed. `python -m benchmarks.report`
renders the docs' figure tables from these files. `--results-name` keeps two configurations of one
benchmark apart (`eis_real` for the CV, `--skip-cv --results-name eis_real_fitting` for the fits); it stays
in the recorded command, so rerunning the command rewrites the same file.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO / "benchmarks" / "results"
ENV_DIR = "MATERIALS_BENCHMARK_RESULTS"
FLAG = "--results-dir"
NAME_FLAG = "--results-name"

# `name: value`, the name an identifier optionally followed by a parenthesised note
# (`speed_ratio_ours_over_pdffit2 (numba kernel, one core, 9 PDFs each side): 17.2`).
FIGURE_LINE = re.compile(r"^(?P<name>[A-Za-z_][\w.\-]*)(?: \((?P<note>[^)]*)\))?: (?P<value>.*\S)\s*$")
LEADING_NUMBER = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def split_flag(argv: list[str], flag: str) -> tuple[list[str], str | None]:
    """Remove `flag VALUE` / `flag=VALUE` from argv; return the rest and VALUE (None if absent)."""
    rest, chosen = [], None
    items = iter(argv)
    for item in items:
        if item == flag:
            chosen = next(items, None)
            if chosen is None:
                raise SystemExit(f"{flag} needs a value")
        elif item.startswith(flag + "="):
            chosen = item[len(flag) + 1:]
        else:
            rest.append(item)
    return rest, chosen


def parse_figures(text: str) -> list[dict]:
    """The `name: value` lines of a benchmark's output, in order: name, value (text), number (or None), note."""
    figures = []
    for line in text.splitlines():
        match = FIGURE_LINE.match(line)
        if not match:
            continue
        value = match["value"]
        number = LEADING_NUMBER.match(value)
        figures.append({
            "name": match["name"],
            "value": value,
            "number": float(number.group()) if number else None,
            "note": match["note"],
        })
    return figures


class _Tee(io.TextIOBase):
    """Writes to the real stdout and keeps a copy (what the benchmark printed, in order)."""

    def __init__(self, stream):
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text):
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()

    # Libraries that ask the console about itself (encoding, terminal, descriptor) get the real one's answer.
    @property
    def encoding(self):
        return self.stream.encoding

    def isatty(self):
        return self.stream.isatty()

    def fileno(self):
        return self.stream.fileno()


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _code_changed_since_commit() -> bool | None:
    """Whether tracked code differs from the commit (the figures then come from uncommitted code)."""
    status = _git("status", "--porcelain", "--untracked-files=no", "--", "assets", "resources", "orchestration",
                  "benchmarks", "configs")
    return None if status is None else bool(status)


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)  # kB -> GiB
    except OSError:
        pass
    return None


def machine(load_before: float) -> dict:
    """Cores, memory and the 1-minute load average before and after the run (others may share the machine)."""
    return {
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "load_1min_before": round(load_before, 2),
        "load_1min_after": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def record(benchmark: str, name: str, argv: list[str], output: str, exit_code: int, wall_s: float,
           load_before: float, started_utc: datetime.datetime) -> dict:
    """The results entry `name` of one run of benchmarks.<benchmark> with argv (what `write` stores)."""
    figures = parse_figures(output)
    return {
        "name": name,
        "date_utc": started_utc.strftime("%Y-%m-%d %H:%M"),
        "command": shlex.join(["python", "-m", f"benchmarks.{benchmark}", *argv]),
        "commit": _git("rev-parse", "--short=12", "HEAD"),
        "uncommitted_code_changes": _code_changed_since_commit(),
        "machine": machine(load_before),
        "wall_s": round(wall_s, 1),
        "exit_code": exit_code,
        "figures": figures,
        "headline": figures[-1]["name"] if figures else None,
    }


def write(entry: dict, folder: Path) -> Path:
    """Store one entry as <folder>/<name>.json, staged and renamed so a killed run leaves the old file whole."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{entry['name']}.json"
    staged = path.with_suffix(".json.tmp")
    staged.write_text(json.dumps(entry, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    staged.replace(path)
    return path


def _exit_code(value) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    print(value, file=sys.stderr)  # SystemExit("message") prints the message and exits 1
    return 1


def run(main: Callable[[], int | None], name: str) -> int:
    """Run a benchmark's main with stdout teed; write its figures (see the module doc); return its exit code."""
    argv, chosen = split_flag(sys.argv[1:], FLAG)
    parsed, results_name = split_flag(argv, NAME_FLAG)
    sys.argv[1:] = parsed
    folder = Path(chosen or os.environ.get(ENV_DIR) or DEFAULT_DIR)
    load_before, started_utc = os.getloadavg()[0], datetime.datetime.now(datetime.timezone.utc)
    began = time.perf_counter()
    tee, real_stdout = _Tee(sys.stdout), sys.stdout
    sys.stdout = tee
    try:
        code = _exit_code(main())
    except SystemExit as stop:
        code = _exit_code(stop.code)
    finally:
        sys.stdout = real_stdout
    entry = record(name, results_name or name, argv, tee.copy.getvalue(), code, time.perf_counter() - began,
                   load_before, started_utc)
    # --help prints the module doc, whose lines may look like figures; it is not a run.
    if entry["figures"] and not {"-h", "--help"} & set(parsed):
        print(f"results written to {write(entry, folder)}", file=sys.stderr)
    return code
