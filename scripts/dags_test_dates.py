"""Give `airflow dags test` runs their real start time, so the runs list shows true durations.

Airflow 3.3's `DAG.test()` stores a run's start_date as its logical date (apache/airflow#66127,
open): a backfilled 2013 day then shows "started 2013", a duration of "4871d", and skews the
DAG's "Expected Duration". `make demo` runs days through `dags test`, so it calls this after each.

    python scripts/dags_test_dates.py smpp_pipeline 2013-07-31

A script, not part of the package: smpp itself never imports Airflow (the import contract).
Only runs with the bug's signature (start_date == logical_date, before its first task started)
are changed, to that first task's start: scheduler and backfill runs are never touched.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime


def correct_run_start_dates(dag_id: str, logical_date: datetime | None = None) -> list[str]:
    """Set start_date = first task start on `dag_id`'s dags-test runs (of one logical date, or all);
    return the run ids changed. Needs AIRFLOW_HOME (Airflow's own metadata session)."""
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    changed: list[str] = []
    with create_session() as session:
        query = select(DagRun).where(DagRun.dag_id == dag_id, DagRun.start_date == DagRun.logical_date)
        if logical_date is not None:
            query = query.where(DagRun.logical_date == logical_date)
        for run in session.scalars(query):
            first_task = session.scalar(
                select(func.min(TaskInstance.start_date)).where(
                    TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id
                )
            )
            if first_task is not None and run.start_date is not None and first_task > run.start_date:
                run.start_date = first_task
                changed.append(run.run_id)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dag_id")
    parser.add_argument("logical_date", nargs="?", help="YYYY-MM-DD (UTC midnight); default: every such run")
    args = parser.parse_args(argv)
    when = None
    if args.logical_date:
        try:
            when = datetime.strptime(args.logical_date, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            parser.error(f"logical_date must be YYYY-MM-DD, got {args.logical_date!r}")
    changed = correct_run_start_dates(args.dag_id, when)
    print(f"corrected the start date of {len(changed)} dags-test run(s) of {args.dag_id}: {', '.join(changed) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
