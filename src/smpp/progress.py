"""Progress of long loops as log lines (read the same in an Airflow task log and a terminal): done/total, rate, ETA."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

log = logging.getLogger("smpp.progress")


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclass
class Progress:
    """Counts work done and logs a line at most every `every_s` seconds (and at the end).

    A tqdm bar redraws one terminal line with carriage returns, which an Airflow log stores as
    one line per redraw or not at all; timed log lines stay readable in both.
    """

    what: str
    total: int | None
    unit: str = "items"
    every_s: float = 30.0
    logger: logging.Logger = log
    done: int = 0
    started: float = field(default_factory=lambda: time.monotonic())
    last_logged: float = field(default_factory=lambda: time.monotonic())

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if now - self.last_logged >= self.every_s:
            self.last_logged = now
            self.logger.info("%s", self.line(now))

    def counted(self, result, count: int):
        """`result`, after advancing by `count`: counts work inside a comprehension."""
        self.advance(count)
        return result

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self.started, 1e-9)
        rate = self.done / elapsed
        if self.total:
            eta = (self.total - self.done) / rate if rate > 0 else math.inf
            return (
                f"{self.what}: {self.done:,}/{self.total:,} {self.unit} ({100 * self.done / self.total:.1f} %), "
                f"{rate:,.1f} {self.unit}/s, ETA {_duration(eta)}"
            )
        return f"{self.what}: {self.done:,} {self.unit}, {rate:,.1f} {self.unit}/s, {_duration(elapsed)} so far"

    def finish(self) -> None:
        elapsed = time.monotonic() - self.started
        rate = self.done / max(elapsed, 1e-9)
        self.logger.info(
            "%s: %s %s done in %s (%.1f %s/s)",
            self.what,
            f"{self.done:,}",
            self.unit,
            _duration(elapsed),
            rate,
            self.unit,
        )
