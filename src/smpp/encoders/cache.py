"""Embedding and caption cache: one SQLite file per model key under settings.cache_dir.

The text, image and joint embedding tasks may run at the same time in separate processes, so
each file uses WAL (readers never block the writer) and a busy timeout (writers queue instead
of failing with "database is locked"). Vectors are float32 blobs keyed by content key.
Sparse lexical weights live in their own file per model, so dense-only runs never touch them.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

import numpy as np

BUSY_TIMEOUT_MS = 120_000
_QUERY_CHUNK = 500  # stays under SQLite's bound-parameter limit


def cache_file(cache_dir: Path, role: str, model_key: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_key).strip("_")[:96]
    digest = hashlib.sha256(model_key.encode()).hexdigest()[:10]
    return cache_dir / "encoders" / f"{role}-{slug}-{digest}.sqlite"


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)) as conn:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        yield conn


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class VectorCache:
    """content key -> float32 vector, for one model (id + revision)."""

    def __init__(self, cache_dir: Path, role: str, model_key: str) -> None:
        self.path = cache_file(cache_dir, role, model_key)
        self.model_key = model_key
        with _connect(self.path) as conn, conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS vectors ("
                " key TEXT PRIMARY KEY, dim INTEGER NOT NULL, vector BLOB NOT NULL) WITHOUT ROWID"
            )
            conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('model_key', ?)", (model_key,))

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with _connect(self.path) as conn:
            for chunk in _chunks(keys, _QUERY_CHUNK):
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(f"SELECT key, dim, vector FROM vectors WHERE key IN ({marks})", tuple(chunk))
                for key, dim, blob in rows:
                    vector = np.frombuffer(blob, dtype=np.float32)
                    if vector.shape != (dim,):
                        raise ValueError(f"corrupt cache row {key!r} in {self.path}: {vector.shape} != ({dim},)")
                    found[key] = vector
        return found

    def put_many(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        rows = [
            (key, int(vector.shape[0]), np.ascontiguousarray(vector, dtype=np.float32).tobytes())
            for key, vector in zip(keys, vectors)
        ]
        with _connect(self.path) as conn, conn:
            conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)

    def __len__(self) -> int:
        with _connect(self.path) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])


class CaptionCache:
    """content key -> caption, for one captioner and generation config."""

    def __init__(self, cache_dir: Path, model_key: str) -> None:
        self.path = cache_file(cache_dir, "caption", model_key)
        with _connect(self.path) as conn, conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS captions (key TEXT PRIMARY KEY, caption TEXT NOT NULL) WITHOUT ROWID"
            )
            conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('model_key', ?)", (model_key,))

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with _connect(self.path) as conn:
            for chunk in _chunks(keys, _QUERY_CHUNK):
                marks = ",".join("?" * len(chunk))
                found.update(conn.execute(f"SELECT key, caption FROM captions WHERE key IN ({marks})", tuple(chunk)))
        return found

    def put_many(self, keys: Sequence[str], captions: Sequence[str]) -> None:
        if len(keys) != len(captions):
            raise ValueError(f"{len(keys)} keys for {len(captions)} captions")
        with _connect(self.path) as conn, conn:
            conn.executemany("INSERT OR REPLACE INTO captions VALUES (?, ?)", list(zip(keys, captions)))


class SparseCache:
    """content key -> sparse lexical weights (token id -> weight), for one text model."""

    def __init__(self, cache_dir: Path, role: str, model_key: str) -> None:
        self.path = cache_file(cache_dir, f"{role}-sparse", model_key)
        with _connect(self.path) as conn, conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS lexical_weights (key TEXT PRIMARY KEY, weights TEXT NOT NULL) WITHOUT ROWID"
            )
            conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('model_key', ?)", (model_key,))

    def get_many(self, keys: Sequence[str]) -> dict[str, dict[str, float]]:
        found: dict[str, dict[str, float]] = {}
        with _connect(self.path) as conn:
            for chunk in _chunks(keys, _QUERY_CHUNK):
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(f"SELECT key, weights FROM lexical_weights WHERE key IN ({marks})", tuple(chunk))
                found.update((key, json.loads(weights)) for key, weights in rows)
        return found

    def put_many(self, keys: Sequence[str], weights: Sequence[dict[str, float]]) -> None:
        if len(keys) != len(weights):
            raise ValueError(f"{len(keys)} keys for {len(weights)} weight maps")
        # JSON keeps the token order and round-trips every float exactly.
        rows = [
            (key, json.dumps({str(token): float(weight) for token, weight in item.items()}, separators=(",", ":")))
            for key, item in zip(keys, weights)
        ]
        with _connect(self.path) as conn, conn:
            conn.executemany("INSERT OR REPLACE INTO lexical_weights VALUES (?, ?)", rows)

    def __len__(self) -> int:
        with _connect(self.path) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM lexical_weights").fetchone()[0])


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def joint_key(image_key: str, text: str) -> str:
    return text_key(f"{image_key}\n{text_key(text)}")


def purge_keys(cache_dir: Path, keys: Iterable[str]) -> int:
    """Delete these content keys from every model's cache (deleted posts must leave no trace)."""
    keys = sorted(set(keys))
    removed = 0
    for path in sorted((cache_dir / "encoders").glob("*.sqlite")):
        with _connect(path) as conn, conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            for table in ("vectors", "captions", "lexical_weights") if keys else ():
                if table not in tables:
                    continue
                for chunk in _chunks(keys, _QUERY_CHUNK):
                    marks = ",".join("?" * len(chunk))
                    removed += conn.execute(f"DELETE FROM {table} WHERE key IN ({marks})", tuple(chunk)).rowcount
    return removed
