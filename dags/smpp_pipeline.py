"""
# smpp_pipeline: daily Reddit popularity pipeline

One run per day `[data_interval_start, +1 day)`. Each task is one call into `smpp.tasks`, which
reads and writes that day's partitions under `SMPP_DATA_DIR` (`partitions/<stage>/ds=YYYY-MM-DD/`)
and its counts under `runs/ds=YYYY-MM-DD/<task>.json` (the run's **Metrics** tab shows them).
Re-running a day replaces its partitions atomically and upserts warehouse rows: it never duplicates.

**Stages**: (archive: plan and scan the dump files, one mapped task per file) → scrape (live API
or archive dump) → refresh scores (labels at a fixed age) → filter →
fetch images → caption → embed titles / images / image+text (mapped over row chunks) →
build features → train → evaluate against baselines and the champion, promote on a win.

**Params** (Trigger → form): empty fields fall back to the `SMPP_*` settings. `source` `auto` (the
default) reads a day older than `live_reach_days` (3) from the archive at `archive_path`
(`SMPP_ARCHIVE_PATH`) and a recent day from the live API; `archive` or `reddit` force one.

**Backfill** history with Trigger → Backfill (or `airflow backfill create`): the DAG must be
unpaused, and use *max active runs 1*: each day trains on the days before it. With `source`
`auto` and `SMPP_ARCHIVE_PATH` set, a backfill needs no params.

**Assets**: `smpp_features` (each built day), `smpp_model_versions` (each evaluated model) and
`smpp_champion` (only when a model is promoted; `smpp_score_champion` is scheduled on it).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from smpp_assets import CHAMPION_ALIAS, FEATURES, MODEL_VERSIONS, emit_publish_events
from smpp_dag_defaults import MODEL_QUEUE, REDDIT_POOL, default_args, documented

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
    default_args=default_args(execution_timeout=timedelta(hours=1)),
    tags=["smpp", "ml"],
    doc_md=__doc__,
    params={
        # None: the worker's setting applies (a default here would override SMPP_SOURCE on every run)
        "source": Param(
            None,
            type=NULLABLE_STRING,
            enum=[None, "auto", "reddit", "archive"],
            values_display={None: "empty: SMPP_SOURCE (default auto)"},
            title="Source",
            description="auto: days older than live_reach_days from the archive dump, recent days from the "
            "live API; reddit (live API) or archive (a dump) force one. Empty: SMPP_SOURCE (default auto).",
        ),
        "archive_path": Param(
            None,
            type=NULLABLE_STRING,
            title="Archive dump path",
            description="Reddit archive dump(s) for archive days, as the workers see them: a file "
            "(.zst, .ndjson), a directory of RS_YYYY-MM.zst / <subreddit>_submissions.zst files, or a glob. "
            "Empty: SMPP_ARCHIVE_PATH (default none).",
        ),
        "subreddits": Param(
            None,
            type=["null", "array"],
            items={"type": "string"},
            title="Subreddits",
            description="Subreddits to scrape, one per line. Empty: SMPP_SUBREDDITS (default pics, aww, EarthPorn).",
        ),
        "label_age_hours": Param(
            None,
            type=["null", "number"],
            minimum=1,
            title="Label age (hours)",
            description="Age at which a post's score becomes its label. Empty: SMPP_LABEL_AGE_HOURS (default 24).",
        ),
        "model_profile": Param(
            None,
            type=NULLABLE_STRING,
            enum=[None, "tiny", "offline", "production"],
            values_display={None: "empty: SMPP_MODEL_PROFILE (default offline)"},
            title="Model profile",
            description="Encoder weights: tiny (tests), offline (demo), production (real models). "
            "Empty: SMPP_MODEL_PROFILE (default offline).",
        ),
        "train_window_days": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Training window (days)",
            description="Train on the last N days (and at most the newest "
            "training.train_window_rows labelled rows). Empty: SMPP_TRAINING__TRAIN_WINDOW_DAYS (default none: "
            "the rows window only).",
        ),
    },
)
def smpp_pipeline():
    @task(execution_timeout=timedelta(minutes=10))
    def plan_archive_files(data_interval_start=None, data_interval_end=None, params=None):
        """For an archive day (`source=archive`, or `auto` and the day older than `live_reach_days`): lists the
        dump files under `archive_path` (a file, a directory of `RS_YYYY-MM.zst` / `<sub>_submissions.zst`
        files, or a glob) that can hold the day and whose day index lacks the configured subreddits; empty
        (and its scans skipped) otherwise.
        """
        from smpp import tasks

        return tasks.plan_archive_files(data_interval_start, data_interval_end, params)

    @task(execution_timeout=timedelta(hours=3))
    def index_archive_file(path: str, data_interval_start=None, data_interval_end=None, params=None):
        """Scans one dump file once (mapped: one task per file, so workers scan months in parallel) and splits
        the configured subreddits' posts into a per-subreddit day index under `archive_index/`; later days
        of a backfill read only their day files.
        """
        from smpp import tasks

        return tasks.index_archive_file(path, data_interval_start, data_interval_end, params)

    # none_failed: a run with nothing to scan (live source, index already built) skips the mapped scans
    @task(pool=REDDIT_POOL, execution_timeout=timedelta(hours=2), trigger_rule="none_failed")
    def scrape_posts(data_interval_start=None, data_interval_end=None, params=None):
        """Reads the day's posts from the Reddit API (`/r/<sub>/new`, PRAW) or, for an archive day, from the
        dump at `archive_path` (its metrics: `source` as resolved, `source_requested`); upserts posts,
        snapshots, authors (and archive labels) into the warehouse and writes `partitions/posts/ds=`. Uses
        the `reddit_api` pool.
        """
        from smpp import tasks

        return tasks.scrape_posts(data_interval_start, data_interval_end, params)

    @task(pool=REDDIT_POOL)
    def refresh_scores(data_interval_start=None, data_interval_end=None, params=None):
        """Re-reads the scores of posts younger than label age + grace (`/api/info`, 100 per request) and
        records the label at the fixed age; tombstones and purges removed posts. Skipped for archive days
        (the dump's score is the label).
        """
        from smpp import tasks

        return tasks.refresh_scores(data_interval_start, data_interval_end, params)

    @task(execution_timeout=timedelta(minutes=20))
    def filter_posts(data_interval_start=None, data_interval_end=None, params=None):
        """Applies the filter rules (NSFW, title length, image posts only, tombstones) and writes the kept
        posts to `filtered/ds=`; drop counts per rule go to the run metrics.
        """
        from smpp import tasks

        return tasks.filter_posts(data_interval_start, data_interval_end, params)

    @task()
    def fetch_images(data_interval_start=None, data_interval_end=None, params=None):
        """Downloads each kept post's image with size limits and an SSRF guard into the content-addressed store
        `images/<sha[:2]>/<sha256>.jpg`; status per post in `images/ds=`.
        """
        from smpp import tasks

        return tasks.fetch_images(data_interval_start, data_interval_end, params)

    @task(queue=MODEL_QUEUE, execution_timeout=timedelta(hours=3))
    def caption_images(data_interval_start=None, data_interval_end=None, params=None):
        """Captions the fetched images with the profile's captioning model (cached by image hash) into
        `captions/ds=`. Runs on the model queue.
        """
        from smpp import tasks

        return tasks.caption_images(data_interval_start, data_interval_end, params)

    @task(execution_timeout=timedelta(minutes=10))
    def plan_chunks(task_name: str, data_interval_start=None, data_interval_end=None, params=None):
        from smpp import tasks

        return tasks.plan_embedding_chunks(data_interval_start, data_interval_end, task_name, params)

    # Each embedding stage is mapped over row chunks (encoders.chunk_size) so workers share a day.
    @task(queue=MODEL_QUEUE, execution_timeout=timedelta(hours=2))
    def embed_text(chunk: int, data_interval_start=None, data_interval_end=None, params=None):
        """Embeds titles and captions with bge-m3 (dense; sparse optional), one mapped task per chunk, into a
        staging chunk of `text_embeddings/ds=`. Runs on the model queue.
        """
        from smpp import tasks

        return tasks.embed_text(data_interval_start, data_interval_end, params, chunk=chunk)

    @task(queue=MODEL_QUEUE, execution_timeout=timedelta(hours=2))
    def embed_images(chunk: int, data_interval_start=None, data_interval_end=None, params=None):
        """Embeds images with the ViT (pooled output), one mapped task per chunk, into a staging chunk of
        `image_embeddings/ds=`. Runs on the model queue.
        """
        from smpp import tasks

        return tasks.embed_images(data_interval_start, data_interval_end, params, chunk=chunk)

    @task(queue=MODEL_QUEUE, execution_timeout=timedelta(hours=2))
    def embed_image_text(chunk: int, data_interval_start=None, data_interval_end=None, params=None):
        """Joint image+title embeddings with Visualized BGE, one mapped task per chunk, into a staging chunk of
        `joint_embeddings/ds=`. Runs on the model queue.
        """
        from smpp import tasks

        return tasks.embed_image_text(data_interval_start, data_interval_end, params, chunk=chunk)

    @task(execution_timeout=timedelta(minutes=30), outlets=[FEATURES])
    def build_features(data_interval_start=None, data_interval_end=None, params=None, outlet_events=None):
        """Merges the embedding chunks atomically and joins posts, images, captions, embeddings and author
        karma into the validated feature table `features/ds=`. Emits the `smpp_features` asset.
        """
        from smpp import tasks

        result = tasks.build_features(data_interval_start, data_interval_end, params)
        outlet_events[FEATURES].extra = {"day": result["day"], "rows": result["rows"]}
        return result

    @task(queue=MODEL_QUEUE, execution_timeout=timedelta(hours=3))
    def train_model(data_interval_start=None, data_interval_end=None, params=None):
        """Trains the Keras multimodal regressor on the features whose labels had matured by the end of this
        interval (chronological split), with baselines, plots and a model card in `models/<version>/`. Runs
        on the model queue.
        """
        from smpp import tasks

        return tasks.train_model(data_interval_start, data_interval_end, params)["version"]

    @task(execution_timeout=timedelta(minutes=30), outlets=[MODEL_VERSIONS, CHAMPION_ALIAS])
    def evaluate_and_publish(
        version: str, data_interval_start=None, data_interval_end=None, params=None, outlet_events=None
    ):
        """Re-scores the champion on the challenger's test slice and promotes the new version only if it beats
        the baselines and the champion by the margin; logs the decision. Emits `smpp_model_versions` always
        and `smpp_champion` only on a promotion.
        """
        from smpp import tasks

        result = tasks.evaluate_and_publish(data_interval_start, data_interval_end, version, params)
        emit_publish_events(outlet_events, result)
        return result

    captions = caption_images()
    scrape = scrape_posts()
    documented(index_archive_file).expand(path=plan_archive_files()) >> scrape
    scrape >> refresh_scores() >> filter_posts() >> fetch_images() >> captions
    embeddings = []
    for embed in (embed_text, embed_images, embed_image_text):
        name = embed.function.__name__
        plan = plan_chunks.override(
            task_id=f"plan_{name}", doc_md=f"Plans the row chunks of `{name}` (`encoders.chunk_size` rows each)."
        )(name)
        captions >> plan
        embeddings.append(documented(embed).expand(chunk=plan))
    features = build_features()
    embeddings >> features
    version = train_model()
    features >> version
    evaluate_and_publish(version)


smpp_pipeline()
