"""Render the figures in README.md and docs/*.md from benchmarks/results/*.json (never by hand).

    python -m benchmarks.report [--results DIR] [--check] [PAGE ...]

A page asks for figures with marker pairs; everything between a pair is rewritten:

    <!-- figures:eis_real -->                      a table of every figure eis_real printed
    <!-- figures:eis_real best_cv_accuracy cv_seconds -->   only those, in that order
    <!-- /figures -->
    <!-- headline:eis_real -->   one line: the headline (last printed figure), or the named one
    <!-- /headline -->
    <!-- benchmarks-index -->    one row per results file: headline, date, machine, command
    <!-- /benchmarks-index -->

Each rendering says when, on which commit and machine (cores, load) and with which exact command the
figures were printed; a results file migrated from the hand-copied README of 2026-12-06 says so.
A marker naming a results file or a figure that does not exist is an error naming the page and the
marker. `--check` rewrites nothing and exits 1 when a page is out of date (the test suite runs it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"

BLOCK = re.compile(
    r"(?P<open><!-- (?P<kind>figures|headline):(?P<name>[\w.\-]+)(?P<wanted>(?: [\w.\-]+)*) -->)"
    r"(?P<body>.*?)(?P<close><!-- /(?P=kind) -->)",
    re.S,
)
INDEX = re.compile(r"(?P<open><!-- benchmarks-index -->)(?P<body>.*?)(?P<close><!-- /benchmarks-index -->)", re.S)


class ReportError(ValueError):
    """A page asks for a figure no results file holds."""


def load_results(folder: Path) -> dict[str, dict]:
    """Every <name>.json in folder, by name."""
    entries = {}
    for path in sorted(folder.glob("*.json")):
        entry = json.loads(path.read_text(encoding="utf-8"))
        entries[entry["name"]] = entry
    return entries


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _load(machine: dict) -> str:
    before, after = machine.get("load_1min_before"), machine.get("load_1min_after")
    if before is None:
        return machine.get("load", "load not recorded")
    return f"load {before}" if after is None else f"load {before} → {after}"


def provenance(entry: dict) -> str:
    """Date, commit, machine and exact command of one results entry, as one line of Markdown."""
    machine = entry.get("machine", {})
    where = f"{machine.get('cores', '?')} cores, {_load(machine)}"
    parts = [f"`{entry['command']}`", f"{entry['date_utc']} UTC"]
    if entry.get("commit"):
        changed = " + uncommitted changes" if entry.get("uncommitted_code_changes") else ""
        parts.append(f"commit {entry['commit']}{changed}")
    parts.append(where)
    if entry.get("wall_s") is not None:
        parts.append(f"{entry['wall_s']:.0f} s")
    if entry.get("exit_code"):
        parts.append(f"**exit code {entry['exit_code']}**")
    line = ", ".join(parts)
    if entry.get("migrated"):
        line = f"**migrated**, {entry['migrated']}: {line}"
    return line


def _figure(entry: dict, name: str, page: str, marker: str) -> dict:
    for figure in entry["figures"]:
        if figure["name"] == name:
            return figure
    raise ReportError(f"{page}: {marker} asks for figure {name!r}, which results/{entry['name']}.json does not hold "
                      f"(it holds {', '.join(f['name'] for f in entry['figures'])})")


def _label(figure: dict) -> str:
    return f"`{figure['name']}`" + (f" ({figure['note']})" if figure.get("note") else "")


def render_figures(entry: dict, wanted: list[str], page: str, marker: str) -> str:
    figures = [_figure(entry, name, page, marker) for name in wanted] if wanted else entry["figures"]
    rows = [f"| {_cell(_label(f))} | {_cell(f['value'])} |" for f in figures]
    # A blank line after the opening marker, so every Markdown renderer starts the table there.
    return "\n".join(["", "", "| figure | value |", "|---|---|", *rows, "", provenance(entry), ""])


def render_headline(entry: dict, wanted: list[str], page: str, marker: str) -> str:
    figure = _figure(entry, wanted[0] if wanted else entry["headline"], page, marker)
    # One line in running text: the figure, when and how; the full provenance is in the figures tables.
    machine = entry.get("machine", {})
    mark = "; migrated from the README, not rerun" if entry.get("migrated") else ""
    return (f"{_label(figure)} **{figure['value']}** ({entry['date_utc']} UTC, {machine.get('cores', '?')} cores, "
            f"{_load(machine)}, `{entry['command']}`{mark})")


def render_index(entries: dict[str, dict]) -> str:
    rows = []
    for entry in entries.values():
        headline = _figure(entry, entry["headline"], "index", entry["name"])
        machine = entry.get("machine", {})
        mark = " (migrated, not rerun)" if entry.get("migrated") else ""
        rows.append(f"| `{entry['name']}` | {_cell(_label(headline))}: {_cell(headline['value'])} | "
                    f"{entry['date_utc']}{mark} | {machine.get('cores', '?')} cores, {_cell(_load(machine))} | "
                    f"`{_cell(entry['command'])}` |")
    return "\n".join(["", "", "| benchmark | headline (last printed figure) | date (UTC) | machine | command |",
                      "|---|---|---|---|---|", *rows, ""])


def render_page(text: str, entries: dict[str, dict], page: str) -> str:
    """The page with every marker block rewritten from entries; ReportError for a missing results entry."""

    def block(match: re.Match) -> str:
        name, wanted, marker = match["name"], match["wanted"].split(), match["open"]
        if name not in entries:
            raise ReportError(f"{page}: {marker} has no results file {name}.json "
                              f"(run `python -m benchmarks.{name}` to write it)")
        render = render_figures if match["kind"] == "figures" else render_headline
        return match["open"] + render(entries[name], wanted, page, marker) + match["close"]

    text = BLOCK.sub(block, text)
    return INDEX.sub(lambda m: m["open"] + render_index(entries) + m["close"], text)


def default_pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pages", nargs="*", type=Path, help="Markdown pages (default: README.md and docs/*.md)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of <name>.json results")
    parser.add_argument("--check", action="store_true", help="rewrite nothing; exit 1 when a page is out of date")
    args = parser.parse_args(argv)
    entries = load_results(args.results)
    stale = []
    for path in args.pages or default_pages():
        text = path.read_text(encoding="utf-8")
        try:
            rendered = render_page(text, entries, str(path))
        except ReportError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        if rendered != text:
            stale.append(path)
            if not args.check:
                path.write_text(rendered, encoding="utf-8")
    verb = "out of date" if args.check else "rewritten"
    for path in stale:
        print(f"{verb}: {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
