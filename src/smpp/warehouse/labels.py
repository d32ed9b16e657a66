"""Labels at a fixed age: the score at the first snapshot at least `label_age_hours` old.

A post's label matures at created_utc + label_age_hours. Snapshots taken later than the
grace window give a `late` label, kept for the record but never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from smpp.settings import Settings
from smpp.warehouse import Label, Post, PostSnapshot, session_for, upsert
from smpp.warehouse.db import in_chunks, stream_tuples

TRAINABLE_STATUSES = ("ok", "archive")
# what each per-post label status of day_label_status means, for the run page
LABEL_STATUS_MEANING = {
    "ok": "score read within label_grace_hours after the label age: a clean score-at-age label, trained on",
    "archive": "score from the archive dump (the best historical record), trained on",
    "late": (
        "the first snapshot past the label age came more than label_grace_hours after it (e.g. a post first"
        " scraped or refreshed days later), so it is not a clean score-at-age label: kept, never trained on"
    ),
    "not_matured": "no label yet: the post is younger than label_age_hours when counted; a later refresh labels it",
    "missing": "no label although the label age has passed (never refreshed in time, or removed): never trained on",
}


def label_of_score(scores) -> np.ndarray:  # anything pd.to_numeric takes
    """The training label, log1p(max(score, 0)), as float32; a missing score stays NaN."""
    score = pd.to_numeric(pd.Series(scores), errors="coerce").to_numpy(float)
    return np.log1p(np.clip(score, 0, None)).astype(np.float32)


def trainable_labels(session: Session, end_utc: int, created_from_utc: int | None = None) -> pd.DataFrame:
    """(post_id, label) of every trainable label matured by `end_utc`, of posts not removed: what
    training joins to the feature partitions (a backfilled day trains on what was knowable then)."""

    query = (
        select(Label.post_id, Label.score)
        .join(Post, Post.id == Label.post_id)
        .where(Label.status.in_(TRAINABLE_STATUSES), Label.matured_utc <= int(end_utc), Post.removed.is_(False))
    )
    if created_from_utc is not None:
        query = query.where(Post.created_utc >= int(created_from_utc))
    # plain tuples in batches: a million SQLAlchemy Rows at once cost more than the frame they become
    parts = [pd.DataFrame(rows, columns=["post_id", "score"]) for rows in stream_tuples(session, query)]
    labels = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["post_id", "score"])
    return pd.DataFrame({"post_id": labels["post_id"], "label": label_of_score(labels.pop("score"))})


@dataclass
class LabelStats:
    labelled_ok: int = 0
    labelled_late: int = 0
    pending: int = 0


def day_label_status(session: Session, settings: Settings, post_ids: list[str], now: int) -> dict[str, int]:
    """How many of `post_ids` have each label status (LABEL_STATUS_MEANING) at `now`; every id lands in one."""
    counts = dict.fromkeys(LABEL_STATUS_MEANING, 0)
    unique = list(dict.fromkeys(str(p) for p in post_ids))
    found: set[str] = set()
    age_seconds = int(settings.label_age_hours * 3600)
    for chunk in in_chunks(unique):
        stmt = select(Post.id, Post.created_utc, Label.status).outerjoin(Label, Label.post_id == Post.id)
        for post_id, created, status in session.execute(stmt.where(Post.id.in_(chunk))):
            found.add(post_id)
            if status is not None:
                counts[status] = counts.get(status, 0) + 1  # an unknown status is shown, not folded in
            else:
                counts["not_matured" if int(created) + age_seconds > now else "missing"] += 1
    counts["missing"] += len(unique) - len(found)  # ids the warehouse no longer holds (purged)
    return counts


def posts_due_for_refresh(session: Session, settings: Settings, now: int) -> list[str]:
    """Live posts still young enough that a refresh can give them an on-time label."""
    horizon = now - int((settings.label_age_hours + settings.label_grace_hours) * 3600)
    stmt = (
        select(Post.id)
        .outerjoin(Label, Label.post_id == Post.id)
        .where(Post.removed.is_(False), Post.source == "reddit", Post.created_utc >= horizon)
        .where(Label.post_id.is_(None))
        .order_by(Post.created_utc)
    )
    return list(session.scalars(stmt))


def assign_labels(session: Session, settings: Settings, post_ids: list[str] | None = None) -> LabelStats:
    """Give every unlabelled live post whose snapshot reached the label age its label."""
    stats = LabelStats()
    age = settings.label_age_hours
    stmt = (
        select(Post.id, Post.created_utc, PostSnapshot)
        .join(PostSnapshot, PostSnapshot.post_id == Post.id)
        .outerjoin(Label, Label.post_id == Post.id)
        .where(and_(Post.removed.is_(False), Label.post_id.is_(None), Post.source == "reddit"))
        .order_by(Post.id, PostSnapshot.observed_at)
    )
    if post_ids is not None:
        stmt = stmt.where(Post.id.in_(post_ids))
    chosen: dict[str, dict] = {}
    seen: set[str] = set()
    for post_id, created, snap in session.execute(stmt):
        seen.add(post_id)
        if post_id in chosen or snap.age_hours < age:
            continue
        late = snap.age_hours > age + settings.label_grace_hours
        chosen[post_id] = {
            "post_id": post_id,
            "score": snap.score,
            "age_hours": snap.age_hours,
            "label_age_hours": age,
            "observed_at": snap.observed_at,
            "matured_utc": created + int(age * 3600),
            "status": "late" if late else "ok",
        }
    upsert(session, Label, list(chosen.values()))
    session.commit()
    stats.labelled_late = sum(1 for r in chosen.values() if r["status"] == "late")
    stats.labelled_ok = len(chosen) - stats.labelled_late
    stats.pending = len(seen) - len(chosen)
    return stats


@dataclass(frozen=True)
class LabelQuery:
    """The trainable labels matured by `end_utc` (trainable_labels), fetched where training's first pass runs."""

    end_utc: int
    created_from_utc: int | None = None

    def fetch(self, settings: Settings) -> pd.DataFrame:
        with session_for(settings.database_url) as session:
            return trainable_labels(session, self.end_utc, self.created_from_utc)
