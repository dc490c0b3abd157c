"""What a run produced, in a few lines per pipeline: headline scores, rejected user records, failed checks, exports.

    python -m orchestration.summary [RUN_ID]     (default: the newest run of $DAGSTER_HOME)

`./dev.sh demo` and `./dev.sh dagster job execute ...` print it at the end of every run.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance

from resources.datapaths import data_root, relative_to_root

# Metadata a scientist looks at first: scores and errors of models, and what the intake rejected.
HEADLINE = re.compile(
    r"(accuracy|f1|top_?\d|mae|mape|rmse|r2|share_beating|converged|reproduces_share|determined_share|rejected_share|n_rejected|n_user_records)", re.I
)
EXPORT = re.compile(r"(export|predictions_file|metrics_file)", re.I)


def _value(entry):
    value = getattr(entry, "value", entry)
    return value.path if hasattr(value, "path") else value


def _export_path(value: str) -> str:
    """An export as the summary prints it: relative to the data root (assets record some paths absolute,
    some already relative), so every pipeline's exports read the same way; a path outside the root stays whole."""
    return relative_to_root(value) if Path(value).is_absolute() else Path(value).as_posix()


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _groups() -> dict[str, str]:
    from orchestration.definitions import defs

    return {node.key.to_user_string(): node.group_name for node in defs.get_repository_def().asset_graph.asset_nodes}


def run_summary(instance: DagsterInstance, run_id: str | None = None) -> list[str]:
    """Lines describing one run (the newest when `run_id` is None)."""
    groups = _groups()
    runs = [instance.get_run_by_id(run_id)] if run_id else instance.get_runs(limit=1)
    if not runs or runs[0] is None:
        return ["no run found in this Dagster instance"]
    run = runs[0]
    stats = instance.get_run_stats(run.run_id)
    seconds = (stats.end_time or 0) - (stats.start_time or 0) if stats.start_time else float("nan")
    lines = [f"== {run.job_name}: {run.status.value} in {seconds:.0f} s (run {run.run_id[:8]}) =="]
    by_group: dict[str, list[str]] = defaultdict(list)
    exports: dict[str, set[str]] = defaultdict(set)
    for record in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
        materialization = record.dagster_event.event_specific_data.materialization
        key = materialization.asset_key.to_user_string()
        group = groups.get(key, "other")
        scores = []
        for name, entry in materialization.metadata.items():
            value = _value(entry)
            if EXPORT.search(name) and isinstance(value, str):
                exports[group].add(_export_path(value))
            elif EXPORT.search(name) and isinstance(value, dict):
                exports[group].update(_export_path(str(v)) for v in value.values())
            elif HEADLINE.search(name) and isinstance(value, (int, float)) and not isinstance(value, bool):
                scores.append(f"{name} {_format(value)}")
        if scores:
            by_group[group].append(f"  {key}: " + ", ".join(scores))
    for record in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.dagster_event.event_specific_data
        if not evaluation.passed:
            key = evaluation.asset_key.to_user_string()
            by_group[groups.get(key, "other")].append(f"  CHECK FAILED {key}.{evaluation.check_name} ({evaluation.severity.value})")
    for group in sorted(set(by_group) | set(exports)):
        lines.append(group)
        lines.extend(by_group[group])
        if exports[group]:
            lines.append("  exports: " + ", ".join(sorted(exports[group])))
    if len(lines) == 1:
        lines.append("no asset was materialized")
    if any(exports.values()):
        lines.insert(1, f"data root: {data_root()} (export paths below are relative to it)")
    return lines


def main(argv: list[str]) -> int:
    with DagsterInstance.get() as instance:
        print("\n".join(run_summary(instance, argv[0] if argv else None)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
