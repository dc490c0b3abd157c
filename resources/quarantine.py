"""Rejections that count and show: per-file tallies of a user's records, WARNING log lines, the rejected-share check.

Every pipeline's intake asset calls `report_rejections` once with what it read from the user's files
(never the embedded synthetic examples): the share is rejected / all records of user files, an
unreadable file counts by its expected records (or as one record when that is unknown), the
quarantine file is rewritten by content hash and row (so reruns add nothing), and the run log gets
one WARNING line per file with its count and its reasons grouped by kind.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import dagster as dg

from resources.datapaths import Rejection, relative_to_root, write_quarantine

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def reason_kind(reason: str) -> str:
    """A rejection reason with its numbers and quoted values blanked, so reasons group by kind."""
    return _NUMBER.sub("N", _QUOTED.sub("'…'", reason.split("\n")[0])).strip()


@dataclass
class FileTally:
    """What became of one user file: its records, the rejected ones, and why (by kind)."""

    source: str
    n_records: int = 0
    n_rejected: int = 0
    whole_file: bool = False
    kinds: Counter = field(default_factory=Counter)

    def top_reasons(self, n: int = 3) -> str:
        return "; ".join(f"{count}x {kind}" for kind, count in self.kinds.most_common(n))


@dataclass
class RejectionSummary:
    """Per-file tallies of one intake over the user's files, and the share that the check bounds."""

    pipeline: str
    files: list[FileTally]
    quarantine_path: str

    @property
    def n_records(self) -> int:
        return sum(f.n_records for f in self.files)

    @property
    def n_rejected(self) -> int:
        return sum(f.n_rejected for f in self.files)

    @property
    def share(self) -> float:
        """Rejected share of the user's records (0.0 when the user supplied none)."""
        return self.n_rejected / self.n_records if self.n_records else 0.0

    def metadata(self) -> dict:
        """Numeric counts (plotted by Dagster over runs) and a per-file table with a schema."""
        rows = [
            dg.TableRecord({"file": f.source, "records": f.n_records, "rejected": f.n_rejected,
                            "whole_file": f.whole_file, "reasons": f.top_reasons()})
            for f in self.files if f.n_rejected
        ]
        schema = dg.TableSchema(columns=[
            dg.TableColumn("file", "string"), dg.TableColumn("records", "int"), dg.TableColumn("rejected", "int"),
            dg.TableColumn("whole_file", "bool"), dg.TableColumn("reasons", "string"),
        ])
        return {
            "n_user_records": self.n_records,
            "n_rejected": self.n_rejected,
            "rejected_share": round(self.share, 4),
            "n_user_files": len(self.files),
            "rejections_by_file": dg.MetadataValue.table(rows, schema=schema),
            "quarantine_file": dg.MetadataValue.path(self.quarantine_path),
        }

    def check_result(self, check_name: str, bound: float, severity: str = "ERROR") -> dg.AssetCheckResult:
        """Passes when the rejected share of user records is within `bound`; `severity` WARN lets the run go on."""
        return dg.AssetCheckResult(
            check_name=check_name,
            passed=self.share <= bound,
            severity=dg.AssetCheckSeverity(severity.upper()),
            metadata={"rejected_share": round(self.share, 4), "bound": bound, "n_rejected": self.n_rejected,
                      "n_user_records": self.n_records,
                      "files_with_rejections": ", ".join(f.source for f in self.files if f.n_rejected) or "none"},
        )


def tally_rejections(rejections: list[Rejection], accepted_by_source: dict[str, int],
                     expected_by_source: dict[str, int] | None = None) -> list[FileTally]:
    """Per user file: accepted + rejected records. A whole-file rejection (row None) counts its expected records."""
    expected_by_source = expected_by_source or {}
    tallies: dict[str, FileTally] = {}
    for source, accepted in accepted_by_source.items():
        tallies[relative_to_root(source)] = FileTally(relative_to_root(source), n_records=int(accepted))
    for rejection in rejections:
        source = relative_to_root(rejection.source)
        tally = tallies.setdefault(source, FileTally(source))
        tally.kinds[reason_kind(rejection.reason)] += 1
        if rejection.row is None:
            expected = int(expected_by_source.get(rejection.source, expected_by_source.get(source, 1)))
            tally.whole_file = True
            tally.n_rejected += max(expected - tally.n_rejected, 0)
            tally.n_records = max(tally.n_records, tally.n_rejected)
        else:
            tally.n_rejected += 1
            tally.n_records += 1
    return sorted(tallies.values(), key=lambda t: t.source)


def report_rejections(log, pipeline: str, rejections: list[Rejection], accepted_by_source: dict[str, int],
                      expected_by_source: dict[str, int] | None = None) -> RejectionSummary:
    """Quarantine `rejections` (keyed by content hash and row), log one WARNING per file, return the summary.

    `accepted_by_source` maps every user file read (path) to its accepted record count, 0 included,
    so that a file the user fixed drops out of the quarantine. Pass only user files, never synthetic sources.
    """
    files = tally_rejections(rejections, accepted_by_source, expected_by_source)
    path = write_quarantine(pipeline, rejections, checked_sources=list(accepted_by_source))
    for tally in files:
        if tally.n_rejected:
            log.warning(f"{pipeline}: {tally.source}: {tally.n_rejected} of {tally.n_records} records rejected"
                        f"{' (whole file)' if tally.whole_file else ''}: {tally.top_reasons()}; "
                        f"rows and reasons in {relative_to_root(path)}")
    return RejectionSummary(pipeline, files, relative_to_root(path))
