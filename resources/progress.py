"""Progress of long work as log lines: count, rate and time left, at most every `every_s` seconds."""

from __future__ import annotations

import time
from collections.abc import Callable


class Progress:
    """Call `update(done)` as work completes; logs 'label: done/total (pct), rate unit/s, t left' lines."""

    def __init__(self, label: str, total: int, log: Callable[[str], None], unit: str = "items", every_s: float = 30.0):
        self.label, self.total, self.log, self.unit, self.every_s = label, int(total), log, unit, every_s
        self.started = time.perf_counter()
        self.last_logged = self.started

    def line(self, done: int) -> str:
        elapsed = time.perf_counter() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (self.total - done) / rate if rate > 0 else float("nan")
        share = done / self.total if self.total else 1.0
        return (f"{self.label}: {done:,}/{self.total:,} {self.unit} ({share:.0%}), {rate:,.1f} {self.unit}/s, "
                f"{elapsed:,.0f} s elapsed, about {left:,.0f} s left")

    def update(self, done: int, force: bool = False) -> None:
        now = time.perf_counter()
        if force or done >= self.total or now - self.last_logged >= self.every_s:
            self.last_logged = now
            self.log(self.line(done))
