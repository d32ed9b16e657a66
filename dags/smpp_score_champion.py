"""
# smpp_score_champion: score with each new champion

An example consumer of the `smpp_champion` asset: smpp_pipeline emits it only when a model
is promoted, so this DAG runs once per new champion (never on a schedule). It scores the
feature partition of the day that produced the champion and writes
`partitions/scores/ds=YYYY-MM-DD/part-0.parquet` (post id, predicted log1p score, version).
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import dag, task

try:  # the package is installed in images; in a checkout it lives in ../src
    import smpp  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from smpp_assets import CHAMPION  # noqa: E402

MODEL_QUEUE = os.environ.get("SMPP_MODEL_QUEUE", "default")


@dag(
    dag_id="smpp_score_champion",
    schedule=[CHAMPION],
    start_date=datetime(2005, 6, 23),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "smpp", "retries": 1, "retry_delay": timedelta(minutes=1),
                  "retry_exponential_backoff": 2.0, "execution_timeout": timedelta(hours=1)},
    tags=["smpp", "ml"],
    doc_md=__doc__,
)
def smpp_score_champion():
    @task(queue=MODEL_QUEUE, doc_md="Loads the promoted version and scores its day's features.")
    def score_with_champion(triggering_asset_events=None):
        import pandas as pd

        from smpp import storage
        from smpp.lifecycle.registry import version_dir
        from smpp.settings import get_settings
        from smpp.training import load_model, predict_frame

        event = triggering_asset_events[CHAMPION][-1]  # promotions queued while busy: the newest wins
        version, day = event.extra["version"], event.extra["day"]
        settings = get_settings()
        features = storage.read_partition(settings, "features", day)
        scores = pd.DataFrame({"post_id": features["post_id"],
                               "predicted_log1p_score": predict_frame(load_model(version_dir(settings, version)), features),
                               "model_version": version})
        path = storage.write_partition(settings, "scores", day, scores)
        return {"version": version, "day": day, "rows": len(scores), "partition": str(path)}

    score_with_champion()


smpp_score_champion()
