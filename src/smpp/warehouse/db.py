"""Engine, schema creation and dialect-aware upserts (SQLite file by default, any SQLAlchemy URL)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Engine,
    Integer,
    Select,
    SmallInteger,
    bindparam,
    create_engine,
    event,
    make_url,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from smpp.warehouse.models import Base

# Dialects whose bulk writes and key lookups go to the DB-API driver as plain tuples:
# SQLAlchemy's per-row parameter processing cost more than SQLite's own work on archive
# backfills. Elsewhere (Postgres) they run as the equivalent Core statements.
DRIVER_DIALECTS = frozenset({"sqlite"})
IN_CHUNK = 500  # keys per IN (...) query: SQLite caps bound parameters per statement


def in_chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterator[list[Any]]:
    """`values` in lists of at most `size`: one IN (...) per list stays under the parameter limit."""
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


# What each integer column type holds on Postgres (SQLite's INTEGER holds 64 bits, its driver no more):
# sources.records refuses values outside them, so that a day stores the same rows on both.
INTEGER_RANGES = ((BigInteger, 64), (SmallInteger, 16), (Integer, 32))  # subclasses first


class ColumnRangeError(ValueError):
    """A row value outside its integer column's type: names the table, column, value and row key."""


def integer_range(column: Column) -> tuple[int, int] | None:
    """The values an integer column stores on every dialect; None for other types."""
    for kind, bits in INTEGER_RANGES:
        if isinstance(column.type, kind):
            return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return None


def out_of_range(table: Any, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str | None:
    """A description of the first value of `rows` outside its integer column (None: all fit)."""
    for position, name in enumerate(columns):
        bounds = integer_range(table.c[name])
        if bounds is None:
            continue
        for row in rows:
            value = row[position]
            if isinstance(value, int) and not bounds[0] <= value <= bounds[1]:
                return (
                    f"{table.name}.{name} = {value!r:.40} is outside its {table.c[name].type} range {bounds} "
                    f"(row {dict(zip(columns, row[:1]))})"
                )
    return None


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # parallel Airflow tasks write the same file: wait for locks instead of failing
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # no fsync per commit (WAL stays consistent; a power cut may undo the last commits,
            # which re-running the day restores): ~1 commit per day made backfills fsync-bound
            cur.execute("PRAGMA synchronous=NORMAL")
            # Checkpoint every ~64 MB of WAL: a backfilled day rewrites a few hundred hot index pages,
            # and a larger WAL copies each one back once per many days rather than every few days.
            cur.execute("PRAGMA wal_autocheckpoint=16384")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    elif make_url(url).get_driver_name() == "psycopg2":
        # psycopg2's executemany is one round trip per row; SQLAlchemy batches an
        # INSERT ... ON CONFLICT only in this mode (numbers: benchmarks/README.md, archive_ingest.py)
        engine = create_engine(url, pool_pre_ping=True, executemany_mode="values_plus_batch")
    else:
        engine = create_engine(url, pool_pre_ping=True)
    Base.metadata.create_all(engine)
    from smpp.warehouse.history_schema import ensure_history_schema

    ensure_history_schema(engine)  # columns, indexes and triggers create_all does not add to existing tables
    return engine


def session_for(url: str) -> Session:
    return Session(get_engine(url), expire_on_commit=False)


def upsert(
    session: Session,
    model: type[Base],
    rows: Sequence[dict[str, Any]],
    *,
    update: Iterable[str] | None = None,
) -> int:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE the `update` columns (or DO NOTHING).

    Every row has the keys of the first. One statement run with executemany: it compiles
    once, where a multi-row VALUES per chunk recompiled every time (~50x slower on archive
    backfills).
    """
    if not rows:
        return 0
    columns = tuple(rows[0])
    return insert_rows(session, model, columns, [tuple(row[c] for c in columns) for row in rows], update=update)


def insert_rows(
    session: Session,
    model: type[Base],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    update: Iterable[str] | None = None,
) -> int:
    """upsert() for rows given as tuples of `columns` values: the bulk path of archive backfills."""
    if not rows:
        return 0
    connection = session.connection()
    dialect = connection.dialect
    update = tuple(update or ())
    try:
        if dialect.name not in DRIVER_DIALECTS:
            names = tuple(columns)
            connection.execute(
                _upsert_statement(dialect, model.__table__, names, update, compiled=False),
                [dict(zip(names, row)) for row in rows],
            )
            return len(rows)
        sql, json_positions = _upsert_statement(dialect, model.__table__, tuple(columns), update, compiled=True)
        driver_rows = [_with_json(row, json_positions) for row in rows] if json_positions else rows
        with closing(_driver_cursor(session)) as cursor:
            cursor.executemany(sql, driver_rows)
    except (OverflowError, DataError) as exc:
        # the driver's message names neither the column nor the row (records validate before this)
        problem = out_of_range(model.__table__, columns, rows)
        if problem is None:
            raise
        raise ColumnRangeError(problem) from exc
    return len(rows)


def _driver_cursor(session: Session) -> Any:
    """A DB-API cursor on the session's connection, inside its transaction.

    Skips SQLAlchemy's per-statement execution machinery (~0.2 ms a call, more than a day's
    key lookup itself costs on SQLite); the session still begins and commits the transaction.
    """
    return session.connection().connection.driver_connection.cursor()


def _with_json(row: Sequence[Any], positions: tuple[int, ...]) -> tuple:
    values = list(row)
    for i in positions:
        value = values[i]
        values[i] = "[]" if value == [] else json.dumps(value)  # most posts: no gallery
    return tuple(values)


@lru_cache(maxsize=64)
def _upsert_statement(
    dialect: Dialect, table: Any, columns: tuple[str, ...], update: tuple[str, ...], compiled: bool
) -> Any:
    """The upsert statement, or (compiled SQL with positional parameters in `columns` order,
    positions of JSON columns) for the driver."""
    if dialect.name == "sqlite":
        insert = sqlite.insert
    elif dialect.name == "postgresql":
        insert = postgresql.insert
    else:
        raise NotImplementedError(f"upsert not supported on {dialect.name}")
    stmt = insert(table)
    if compiled:
        stmt = stmt.values({c: bindparam(c) for c in columns})
    keys = [c.name for c in table.primary_key.columns]
    if update:
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in update})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    if not compiled:
        return stmt
    sql = stmt.compile(dialect=dialect)
    if tuple(sql.positiontup or ()) != columns:
        raise RuntimeError(f"{table.name}: compiled parameters {sql.positiontup} are not {columns}")
    return sql.string, tuple(i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON))


def stream_tuples(session: Session, statement: Select, batch_rows: int = 50_000) -> Iterator[list[tuple]]:
    """The rows of a Core select, in batches of plain tuples.

    On DRIVER_DIALECTS straight from the DB-API cursor: SQLAlchemy's Row objects cost more than
    SQLite's own work on history queries of millions of rows. Its parameters go to the driver
    as they are, so they must be plain strings and numbers (no type processing).
    """
    connection = session.connection()
    if connection.dialect.name not in DRIVER_DIALECTS:
        # on the statement: Connection.execution_options would leave the session's connection
        # streaming, and a later write on it then fails inside a server-side cursor (Postgres)
        result = connection.execute(statement.execution_options(yield_per=batch_rows))
        for batch in result.partitions():
            yield [tuple(row) for row in batch]
        return
    compiled = statement.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    params = [compiled.params[name] for name in compiled.positiontup or ()]
    if not all(isinstance(p, (str, int, float)) for p in params):  # bool is an int
        raise TypeError(
            f"stream_tuples passes parameters unprocessed; got {sorted({type(p).__name__ for p in params})}"
        )
    with closing(_driver_cursor(session)) as cursor:
        cursor.execute(compiled.string, params)
        while batch := cursor.fetchmany(batch_rows):
            yield batch


def existing_keys(session: Session, column: Column, keys: Iterable[Any]) -> set[Any]:
    """The values of `keys` present in `column` (a primary key or indexed column)."""
    keys = list(keys)
    found: set[Any] = set()
    connection = session.connection()
    driver = connection.dialect.name in DRIVER_DIALECTS
    quote = connection.dialect.identifier_preparer.quote
    name, table = quote(column.name), quote(column.table.name)
    for start in range(0, len(keys), IN_CHUNK):
        chunk = keys[start : start + IN_CHUNK]
        if driver:
            sql = f"SELECT {name} FROM {table} WHERE {name} IN ({','.join('?' * len(chunk))})"  # qmark: sqlite
            with closing(_driver_cursor(session)) as cursor:
                found.update(value for (value,) in cursor.execute(sql, chunk))
        else:
            found.update(connection.execute(select(column).where(column.in_(chunk))).scalars())
    return found
