"""
# smpp_score_champion: score with each new champion

An example consumer of the `smpp_champion` asset: smpp_pipeline emits it only when a model
is promoted, so this DAG runs once per new champion (never on a schedule). It scores the
feature partition of the day that produced the champion and writes
`partitions/scores/ds=YYYY-MM-DD/part-0.parquet` (post id, predicted log1p score, version).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task

from smpp_assets import CHAMPION
from smpp_dag_defaults import MODEL_QUEUE, default_args


@dag(
    dag_id="smpp_score_champion",
    schedule=[CHAMPION],
    start_date=datetime(2005, 6, 23),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(execution_timeout=timedelta(hours=1), retries=1),
    tags=["smpp", "ml"],
    doc_md=__doc__,
)
def smpp_score_champion():
    @task(queue=MODEL_QUEUE, doc_md="Loads the promoted version and scores its day's features.")
    def score_with_champion(triggering_asset_events=None):
        from smpp import tasks

        event = triggering_asset_events[CHAMPION][-1]  # promotions queued while busy: the newest wins
        version, day = event.extra["version"], event.extra["day"]
        return tasks.score_with_champion(version, day)

    score_with_champion()


smpp_score_champion()
