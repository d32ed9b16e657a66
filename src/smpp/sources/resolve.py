"""Which source reads a run's day: the setting, or with `source=auto` the age of the day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from smpp.settings import ResolvedSource, Settings


def resolve_source(settings: Settings, interval_start: datetime, now: datetime) -> ResolvedSource:
    """`reddit` or `archive` for the day starting at `interval_start`, judged at `now`.

    Explicit `reddit` / `archive` are returned as set. `auto`: a day whose start is more than
    `live_reach_days` before `now` is beyond Reddit's listings and comes from the archive (which must
    then be configured: ValueError naming SMPP_ARCHIVE_PATH and the day); a more recent day goes live.
    """
    if settings.source != "auto":
        return settings.source
    start, now = _aware(interval_start), _aware(now)
    if now - start <= timedelta(days=settings.live_reach_days):
        return "reddit"
    if settings.archive_path is None:
        raise ValueError(
            f"source=auto: the day {start.date().isoformat()} (interval start {start.isoformat()}) is more than "
            f"live_reach_days={settings.live_reach_days:g} days old, beyond what Reddit's listings reach, so it "
            "must come from an archive dump, and none is configured: set SMPP_ARCHIVE_PATH (or the archive_path "
            "DAG param) to a dump file, folder or glob, or set source=reddit to force the live API"
        )
    return "archive"


def _aware(moment: datetime) -> datetime:
    # a naive datetime is UTC here, as everywhere in the pipeline
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
