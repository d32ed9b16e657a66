"""One typed settings object: SMPP_* environment variables + optional YAML, local defaults.

Nested fields use a double underscore: SMPP_REDDIT__CLIENT_ID, SMPP_TRAINING__EPOCHS.
The YAML file is read from SMPP_CONFIG (if set). Environment wins over YAML.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_serializer, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]

ModelProfile = Literal["tiny", "offline", "production"]
# auto: days older than live_reach_days come from the archive, recent days from the live API
Source = Literal["auto", "reddit", "archive"]
ResolvedSource = Literal["reddit", "archive"]


class RedditSettings(BaseModel):
    # praw.ini section; kwargs below override it. Endpoints are only read from kwargs/praw.ini.
    site: str | None = None
    # Secrets are SecretStr: every dump of the settings (model_dump, JSON, repr, logs) shows '**********';
    # only make_reddit reads the values (get_secret_value) to build the PRAW client.
    client_id: SecretStr | None = None
    client_secret: SecretStr | None = None
    user_agent: str = "linux:smpp:0.1.0 (popularity research pipeline)"
    username: str | None = None
    password: SecretStr | None = None
    oauth_url: str | None = None
    reddit_url: str | None = None
    short_url: str | None = None
    timeout_s: float = 16.0
    # Reddit allows ~100 requests/min per OAuth client; PRAW paces to the headers.
    max_429_retries: int = 3
    listing_limit: int = 1000
    # Reddit's cap varies a little below 1000; a listing that ended with fewer items was complete.
    listing_cap_floor: int = 900


class FilterSettings(BaseModel):
    image_posts_only: bool = False  # text-only posts are kept and masked in the model
    drop_nsfw: bool = True
    min_title_chars: int = 3
    drop_removed: bool = True


class ImageSettings(BaseModel):
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 15.0
    max_bytes: int = 20 * 1024 * 1024
    max_side: int = 1024  # longest side after decoding; models resize further anyway
    max_retries: int = 2
    retry_backoff_s: float = 0.5  # exponential backoff base (tenacity); sleeps are capped below
    retry_backoff_max_s: float = 8.0
    # Wall deadline per image over connect, headers, body, retries and redirects, so a slow-drip
    # server cannot hold a worker (a watchdog shuts the socket when it passes).
    total_timeout_s: float = 30.0
    max_redirects: int = 5
    per_host_concurrency: int = 4
    workers: int = 8
    # Decode memory: an image whose decode would need more than max_decode_mb (width x
    # height x bytes per pixel of every full-size copy, estimated from the header before decoding)
    # is refused as "over_decode_budget"; all workers' decodes together hold at most
    # decode_budget_mb. 256 MB at max_side 1024: up to ~49 MP RGB or ~27 MP palette/alpha PNG; a
    # JPEG is decoded reduced towards max_side first (a 48 MP photo costs ~30 MB).
    max_decode_mb: int = Field(256, ge=1)
    decode_budget_mb: int = Field(768, ge=1)
    # Hosts exempt from the private-address guard (tests and the demo serve images on 127.0.0.1).
    allowed_private_hosts: list[str] = Field(default_factory=list)
    # Offline (tests, the demo): contact only allowed_private_hosts; any other host is a counted
    # "offline" skip, decided from the URL alone, before any DNS lookup.
    offline: bool = False
    # Fetch and store every gallery item, not only the first; the models still use index 0 alone.
    all_gallery_items: bool = False


class EncoderSettings(BaseModel):
    # None = the model profile's default (see smpp.encoders.profiles).
    text_model: str | None = None
    image_model: str | None = None
    joint_model: str | None = None
    joint_text_model: str | None = None
    caption_model: str | None = None
    caption_prompt: str = "a photograph of"
    caption_max_new_tokens: int = 24
    batch_size: int = 16
    device: str = "auto"  # auto picks cuda when present
    chunk_size: int = 512
    # Also return (and cache) bge-m3's sparse lexical weights; ignored by models without that head.
    text_sparse: bool = False


class TrainingSettings(BaseModel):
    seed: int = 1234
    epochs: int = 40
    batch_size: int = 256  # archive evaluations train on ~10^5 rows; small days simply take few steps
    learning_rate: float = 1e-3
    patience: int = 6
    # A daily step whose cost does not grow with history: a rolling window of the newest labelled rows
    # (within the newest `train_window_days` days, if set; None = no bound). Rows, not days, so one bound
    # serves a sparse dump and a busy subreddit alike; the smallest window within 0.005 validation
    # Spearman of all history (benchmarks/README.md, "Training window").
    train_window_rows: int | None = Field(200_000, ge=1)
    train_window_days: int | None = Field(None, ge=1)
    # Train on days whose number since 1970-01-01 is a multiple of this (1 = daily, as the card asks);
    # on the days between, the champion scores the day instead (recorded as such in the run metrics).
    retrain_every_days: int = Field(1, ge=1)

    @field_validator("train_window_rows", "train_window_days", mode="before")
    @classmethod
    def _none_from_env(cls, value: Any) -> Any:
        # SMPP_TRAINING__TRAIN_WINDOW_ROWS=none turns a bound off (environment values are strings)
        return None if isinstance(value, str) and value.strip().lower() in ("", "none", "null") else value

    val_fraction: float = 0.15
    test_fraction: float = 0.2
    min_rows: int = 30  # fewer labelled rows than this: skip training, say so
    promotion_margin: float = 0.01  # on within-subreddit Spearman
    mae_tolerance: float = 0.05
    within_subreddit_min_posts: int = 20  # subreddits with fewer test posts are not scored
    # Evidence a promotion needs (README "Promotion evidence"): 200 test rows put the overall
    # Spearman's standard error near 1/sqrt(197) = 0.07, so a one-day sample never becomes champion.
    promotion_min_train_rows: int = Field(1000, ge=0)
    promotion_min_test_rows: int = Field(200, ge=0)
    # Off: a null within-subreddit Spearman (no subreddit with within_subreddit_min_posts test posts)
    # refuses promotion instead of falling back to the overall Spearman, which subreddit size dominates.
    promotion_allow_overall_spearman: bool = False
    # Plausibility, for challenger and re-scored champion alike: test predictions beyond
    # [train label min - k std, max + k std], or an MAE above this many times a constant predictor's
    # (the train-slice median label) on the same test slice, mean a broken model, never a champion.
    promotion_max_label_std_outside: float = Field(3.0, gt=0.0)
    promotion_max_mae_vs_constant: float = Field(1.0, gt=0.0)
    # Normalisers: a feature whose train-slice std is below this is constant there (e.g. day of
    # week in a one-day slice) and is fed as 0, since nothing could be learnt from it; every other
    # feature is divided by at least this std. Normalised values are then clipped to +-normalised_clip
    # (NaN -> 0), so one unseen value cannot move a prediction without bound.
    normaliser_min_std: float = Field(1e-3, gt=0.0)
    normalised_clip: float = Field(10.0, gt=0.0)
    # Weight each training post by 1 / (its subreddit's train-slice label variance), so every subreddit
    # counts about equally in the loss, as in the mean within-subreddit Spearman the gate reads.
    balance_subreddits: bool = True  # chosen on validation slices (dev dump, half of its subreddits)
    # Offset = the subreddit's recent matured-label mean where known (follows drift: better MAE and
    # overall Spearman) instead of the train-slice mean; off: lower within-subreddit Spearman on validation.
    level_offset: bool = False
    # Streamed training (day partitions read one record batch at a time; memory stays flat):
    # labels, index, split and slice plan in a child process (what that pass frees would otherwise
    # stay in the training process: allocators keep it, and memory would grow with the window)
    first_pass_in_child: bool = True
    # A version is built in models/.tmp-<version>@<host>@<pid>/ and renamed into place when complete; a
    # training's start removes such folders whose process is gone (same host) or, from any host, this old.
    staging_max_age_hours: float = Field(48.0, gt=0.0)
    adapt_sample_rows: int = 50_000  # uniform train-slice sample the normalisers are adapted on
    shuffle_buffer_rows: int = 16_384  # rows shuffled in memory (files are also visited in a new order each epoch)
    # The metadata LightGBM fits in memory on a uniform train-slice sample of at most this many rows (val
    # likewise; narrow columns, ~100 B a row); the dev dump uses every row. The other baselines stream.
    baseline_max_rows: int = 250_000
    # Model shape and regularisation: chosen on validation slices only, of both halves of the dev dump's
    # subreddits (benchmarks/tune_model.py; each candidate's numbers in benchmarks/README.md).
    ensemble_size: int = Field(3, ge=1, le=8)  # sub-networks averaged in the one saved model
    # Pairwise RankNet term over same-subreddit posts in a batch: off, its gain was noise at twice the fit time.
    rank_loss_weight: float = Field(0.0, ge=0.0)
    rank_group_size: int = Field(32, ge=2)  # posts of one subreddit per run in a training batch (rank loss)
    tower_units: int = Field(256, ge=8)  # first tower / fusion layer width
    # Dropout in towers and fusion head (half of it on the input vectors): the model overfit by epoch 3-5 at 0.2.
    dropout: float = Field(0.35, ge=0.0, lt=1.0)
    l2: float = Field(0.0, ge=0.0)  # L2 penalty on Dense kernels: off, it lowered validation Spearman


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SMPP_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    data_dir: Path = PROJECT_ROOT / "data"
    # default: SQLite file under data_dir. Its password is a secret: every dump of the settings shows it as
    # '***' (the serializer below), repr leaves the URL out; code reads the attribute, which keeps it. Not a
    # SecretStr: driver, host, database name or SQLite path are lineage worth keeping in settings.json.
    database_url: str | None = Field(None, repr=False)
    model_profile: ModelProfile = "offline"
    # auto, so a run without conf (a UI backfill leaves it empty) picks the source that can hold its day
    source: Source = "auto"
    archive_path: Path | None = None
    # source=auto reads a day live only while its start is at most this old. /new listings stop at ~1000
    # posts, which a subreddit posting a few hundred a day fills in about 3 days; 3 still covers the
    # scheduled run (its day is 1 day old when it starts) and its retries or a run a day or two late.
    live_reach_days: float = Field(3.0, gt=0.0)
    # Split the dump into per-day files once (data_dir/archive_index) instead of scanning it per day.
    archive_use_index: bool = True
    archive_index_flush_mb: int = 64  # lines buffered in memory while indexing
    # A long scan of a dump logs its progress (percent, MB/s, lines/s, ETA) this often.
    archive_progress_every_s: float = 30.0
    progress_every_s: float = Field(30.0, gt=0)  # progress lines of embedding, captioning, training and ingest
    subreddits: list[str] = Field(default_factory=lambda: ["pics", "aww", "EarthPorn"])
    # Busy subreddits whose /new listing (capped at ~1000 items) cannot cover a whole day:
    # the smpp_scrape_frequent DAG scrapes them every hour into the warehouse.
    frequent_subreddits: list[str] = Field(default_factory=list)
    label_age_hours: float = 24.0
    label_grace_hours: float = 24.0  # refreshes later than age + grace are "late" labels
    # Airflow wiring the DAG files read at parse time (they hold no constants of their own).
    frequent_scrape_cron: str = "0 * * * *"  # smpp_scrape_frequent's schedule (UTC)
    model_queue: str = "default"  # Celery queue of the model tasks: "gpu" where GPU workers listen on it
    task_retries: int = Field(2, ge=0)  # the tests set 0: a retry would only hide the error for minutes
    reddit_pool: str = "reddit_api"  # one slot per OAuth client: Reddit's rate limit is per client

    reddit: RedditSettings = Field(default_factory=RedditSettings)
    filter: FilterSettings = Field(default_factory=FilterSettings)
    images: ImageSettings = Field(default_factory=ImageSettings)
    encoders: EncoderSettings = Field(default_factory=EncoderSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)

    @model_validator(mode="after")
    def _resolve_paths(self) -> Settings:
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.data_dir / 'warehouse.sqlite'}"
        return self

    @field_serializer("database_url")
    def _hide_database_password(self, url: str | None) -> str | None:
        return redacted_url(url)

    # Layout of the data root (one place, so every stage agrees).
    @property
    def partitions_dir(self) -> Path:
        return self.data_dir / "partitions"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def encoders_dir(self) -> Path:
        """Locally prepared encoder weights (tiny / offline profiles)."""
        return self.data_dir / "encoders"

    @property
    def models_dir(self) -> Path:
        """Registry of trained models: models/<version>/, champion pointer, promotion log."""
        return self.data_dir / "models"

    @property
    def runs_dir(self) -> Path:
        """Per-run metrics (counts by stage) keyed by day."""
        return self.data_dir / "runs"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = os.environ.get("SMPP_CONFIG")
        if config:
            if not Path(config).is_file():
                raise FileNotFoundError(f"SMPP_CONFIG points to a missing file: {config}")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config))
        return tuple(sources)

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with run-level overrides (e.g. DAG params), validated again."""
        # the values themselves, not model_dump(): a dump hides the database password
        copy = self.model_copy(deep=True)
        data = {name: getattr(copy, name) for name in type(self).model_fields}
        for key, value in overrides.items():
            if value is not None:
                data[key] = value
        return Settings(**data)


def redacted_url(url: str | None) -> str | None:
    """A database URL with its password (in the netloc or a password= query argument) shown as '***'."""
    if not url:
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "**********"  # unparseable: nothing of it can be shown safely
    hidden = {key: "***" for key in parsed.query if key.lower() in ("password", "sslpassword")}
    if parsed.password is None and not hidden:
        return url
    return parsed.update_query_dict(hidden).render_as_string(hide_password=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
