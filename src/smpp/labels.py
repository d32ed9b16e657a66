"""Labels at a fixed age: the score at the first snapshot at least `label_age_hours` old.

A post's label matures at created_utc + label_age_hours. Snapshots taken later than the
grace window give a `late` label, kept for the record but never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from smpp.settings import Settings
from smpp.warehouse import Label, Post, PostSnapshot, upsert

TRAINABLE_STATUSES = ("ok", "archive")


@dataclass
class LabelStats:
    labelled_ok: int = 0
    labelled_late: int = 0
    pending: int = 0


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
