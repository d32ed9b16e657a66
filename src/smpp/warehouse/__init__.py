"""The warehouse: SQLAlchemy models and upserts."""

from smpp.warehouse.db import get_engine, session_for, upsert
from smpp.warehouse.models import Author, AuthorSnapshot, Label, Post, PostLevel, PostSnapshot, SubredditDay, Tombstone

__all__ = [
    "Author",
    "AuthorSnapshot",
    "Label",
    "Post",
    "PostLevel",
    "PostSnapshot",
    "SubredditDay",
    "Tombstone",
    "get_engine",
    "session_for",
    "upsert",
]
