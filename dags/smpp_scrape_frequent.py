"""smpp_scrape_frequent: hourly scrape of busy subreddits into the warehouse.

Reddit's /new listing stops at ~1000 posts, less than a busy subreddit posts in a day. This
DAG scrapes `frequent_subreddits` every hour; the daily smpp_pipeline run then builds the
day's partition from the warehouse, so those posts are in it. Wiring only.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import CronDataIntervalTimetable, dag, task

try:  # the package is installed in images; in a checkout it lives in ../src
    import smpp  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


@dag(
    dag_id="smpp_scrape_frequent",
    schedule=CronDataIntervalTimetable(os.environ.get("SMPP_FREQUENT_SCRAPE_CRON", "0 * * * *"), timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,  # the API cannot reach old posts: there is nothing to catch up on
    max_active_runs=1,
    default_args={
        "owner": "smpp",
        "retries": int(os.environ.get("SMPP_TASK_RETRIES", "2")),
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,
        "execution_timeout": timedelta(minutes=50),
    },
    tags=["smpp", "ingest"],
    doc_md=__doc__,
)
def smpp_scrape_frequent():
    @task(pool="reddit_api")
    def scrape_frequent(data_interval_start=None, data_interval_end=None, params=None):
        from smpp import tasks

        return tasks.scrape_frequent(data_interval_start, data_interval_end, params)

    scrape_frequent()


smpp_scrape_frequent()
