"""smpp_pipeline: daily Reddit popularity pipeline. Wiring only; logic lives in smpp.tasks.

Each task is one call into `smpp.tasks`, which reads and writes the day's partitions
(keyed by data_interval_start). Heavy libraries are imported inside the tasks, never here.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

try:  # the package is installed in images; in a checkout it lives in ../src
    import smpp  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

REDDIT_POOL = "reddit_api"  # one slot per OAuth client: Reddit's rate limit is per client
# Model tasks go to this Celery queue (a GPU worker listens on "gpu" in the cluster setup).
MODEL_QUEUE = os.environ.get("SMPP_MODEL_QUEUE", "default")

default_args = {
    "owner": "smpp",
    "retries": int(os.environ.get("SMPP_TASK_RETRIES", "2")),
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=15),
    "execution_timeout": timedelta(hours=1),
}

NULLABLE_STRING = ["null", "string"]


@dag(
    dag_id="smpp_pipeline",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    # Reddit's launch: an earlier start_date than any backfilled day, else Airflow creates a
    # historical run with no task instances and marks it successful having done nothing.
    start_date=datetime(2005, 6, 23),
    catchup=False,
    # training reads every earlier day's features and labels: days must run in order
    max_active_runs=1,
    default_args=default_args,
    tags=["smpp", "ml"],
    doc_md=__doc__,
    params={
        "source": Param(None, type=NULLABLE_STRING, enum=[None, "reddit", "archive"],
                        description="reddit (live API) or archive (a dump, for historical days). Empty: settings."),
        "archive_path": Param(None, type=NULLABLE_STRING,
                              description="Path of the Reddit archive dump (.ndjson or .ndjson.zst) when source=archive."),
        "subreddits": Param(None, type=["null", "array"], description="Subreddits to scrape. Empty: settings."),
        "label_age_hours": Param(None, type=["null", "number"], description="Age at which a score becomes the label."),
        "model_profile": Param(None, type=NULLABLE_STRING, enum=[None, "tiny", "offline", "production"],
                               description="Encoder weights: tiny (tests), offline (demo), production (real models)."),
        "train_window_days": Param(None, type=["null", "integer"], description="Train on the last N days (empty: all history)."),
    },
)
def smpp_pipeline():
    @task(pool=REDDIT_POOL, execution_timeout=timedelta(hours=2))
    def scrape_posts(data_interval_start=None, data_interval_end=None, params=None):
        from smpp import tasks

        return tasks.scrape_posts(data_interval_start, data_interval_end, params)

    @task(pool=REDDIT_POOL)
    def refresh_scores(data_interval_start=None, data_interval_end=None, params=None):
        from smpp import tasks

        return tasks.refresh_scores(data_interval_start, data_interval_end, params)

    @task(execution_timeout=timedelta(minutes=20))
    def filter_posts(data_interval_start=None, data_interval_end=None, params=None):
        from smpp import tasks

        return tasks.filter_posts(data_interval_start, data_interval_end, params)

    @task
    def fetch_images(data_interval_start=None, data_interval_end=None, params=None):
        from smpp import tasks

        return tasks.fetch_images(data_interval_start, data_interval_end, params)

    @task(queue=MODEL_QUEUE, execution_timeout=timedelta(hours=3))
    def caption_images(data_interval_start=None, data_interval_end=None, params=None):
        from smpp import tasks

        return tasks.caption_images(data_interval_start, data_interval_end, params)

    @task(execution_timeout=timedelta(minutes=10))
    def plan_chunks(task_name: str, data_interval_start=None, data_interval_end=None, params=None):
        from smpp import tasks

        return tasks.plan_embedding_chunks(data_interval_start, data_interval_end, task_name, params)

    # Each embedding stage is mapped over row chunks (encoders.chunk_size) so workers share a day.
    @task(queue=MODEL_QUEUE, execution_timeout=timedelta(hours=2))
    def embed_text(chunk: int, data_interval_start=None, data_interval_end=None, params=None):
        from smpp import tasks

        return tasks.embed_text(data_interval_start, data_interval_end, params, chunk=chunk)

    @task(queue=MODEL_QUEUE, execution_timeout=timedelta(hours=2))
    def embed_images(chunk: int, data_interval_start=None, data_interval_end=None, params=None):
        from smpp import tasks

        return tasks.embed_images(data_interval_start, data_interval_end, params, chunk=chunk)

    @task(queue=MODEL_QUEUE, execution_timeout=timedelta(hours=2))
    def embed_image_text(chunk: int, data_interval_start=None, data_interval_end=None, params=None):
        from smpp import tasks

        return tasks.embed_image_text(data_interval_start, data_interval_end, params, chunk=chunk)

    @task(execution_timeout=timedelta(minutes=30))
    def build_features(data_interval_start=None, data_interval_end=None, params=None):
        from smpp import tasks

        return tasks.build_features(data_interval_start, data_interval_end, params)

    @task(execution_timeout=timedelta(hours=3))
    def train_model(data_interval_start=None, data_interval_end=None, params=None):
        from smpp import tasks

        return tasks.train_model(data_interval_start, data_interval_end, params)["version"]

    @task(execution_timeout=timedelta(minutes=30))
    def evaluate_and_publish(version: str, data_interval_start=None, data_interval_end=None, params=None):
        from smpp import tasks

        return tasks.evaluate_and_publish(data_interval_start, data_interval_end, version, params)

    captions = caption_images()
    scrape_posts() >> refresh_scores() >> filter_posts() >> fetch_images() >> captions
    embeddings = []
    for embed in (embed_text, embed_images, embed_image_text):
        plan = plan_chunks.override(task_id=f"plan_{embed.function.__name__}")(embed.function.__name__)
        captions >> plan
        embeddings.append(embed.expand(chunk=plan))
    features = build_features()
    embeddings >> features
    version = train_model()
    features >> version
    evaluate_and_publish(version)


smpp_pipeline()
