"""smpp_scrape_frequent: hourly scrape of busy subreddits into the warehouse.

Reddit's /new listing stops at ~1000 posts, less than a busy subreddit posts in a day. This
DAG scrapes `frequent_subreddits` every hour; the daily smpp_pipeline run then builds the
day's partition from the warehouse, so those posts are in it. Wiring only.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, dag, task

from smpp_dag_defaults import REDDIT_POOL, SETTINGS, default_args


@dag(
    dag_id="smpp_scrape_frequent",
    schedule=CronDataIntervalTimetable(SETTINGS.frequent_scrape_cron, timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,  # the API cannot reach old posts: there is nothing to catch up on
    max_active_runs=1,
    default_args=default_args(execution_timeout=timedelta(minutes=50)),
    tags=["smpp", "ingest"],
    doc_md=__doc__,
)
def smpp_scrape_frequent():
    @task(pool=REDDIT_POOL)
    def scrape_frequent(data_interval_start=None, data_interval_end=None, params=None):
        from smpp import tasks

        return tasks.scrape_frequent(data_interval_start, data_interval_end, params)

    scrape_frequent()


smpp_scrape_frequent()
