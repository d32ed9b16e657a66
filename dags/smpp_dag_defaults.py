"""What the smpp DAGs share: the retry policy, the Reddit pool and the model queue, all from Settings."""

from __future__ import annotations

from datetime import timedelta

from smpp.settings import get_settings

SETTINGS = get_settings()
REDDIT_POOL = SETTINGS.reddit_pool
MODEL_QUEUE = SETTINGS.model_queue


def default_args(execution_timeout: timedelta, retries: int | None = None) -> dict:
    """Retries with exponential backoff: Reddit 5xx and worker restarts are transient."""
    return {
        "owner": "smpp",
        "retries": SETTINGS.task_retries if retries is None else retries,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=15),
        "execution_timeout": execution_timeout,
    }


def documented(decorated_task):
    """The task with its docstring as doc_md: a mapped (.expand) task does not take it by itself."""
    return decorated_task.override(doc_md=decorated_task.function.__doc__)
