"""Schema the incremental history features need, added in place to new and existing warehouses.

Triggers, not application code, keep it in step with posts and labels: every writer (ingest,
labels, tombstone purges, a user's own SQL) maintains it, inside its own transaction, so it is
exact whatever order days are ingested or re-run in:
- subreddit_days: kept posts per (subreddit, UTC day);
- labels.subreddit: the label's post's subreddit;
- post_levels: per-post cache (label, matured time, subreddit level at creation); any change to
  a subreddit's posts or labels deletes the cached rows of that subreddit's posts created at or
  after the changed post (the only ones it can change: a label is visible only after its post
  was created, and the post's own row is among them). Rows are re-made when next needed.
An existing warehouse gets the column, indexes and triggers and has subreddit_days and
labels.subreddit recomputed once, when its triggers are first created.
"""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

TRIGGERS = ("smpp_posts_history", "smpp_labels_subreddit", "smpp_labels_history")  # Postgres names
_SQLITE_TRIGGERS = (
    "smpp_posts_ai",
    "smpp_posts_ad",
    "smpp_posts_au",
    "smpp_labels_ai",
    "smpp_labels_au",
    "smpp_labels_ad",
)
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS ix_posts_subreddit_history ON posts (subreddit, created_utc, removed)",
    "CREATE INDEX IF NOT EXISTS ix_posts_author_history ON posts (author, created_utc, removed, subreddit, id)",
    "CREATE INDEX IF NOT EXISTS ix_labels_subreddit_matured ON labels (subreddit, matured_utc)",
    "CREATE INDEX IF NOT EXISTS ix_post_levels_subreddit_created ON post_levels (subreddit, created_utc)",
)
# statement bodies shared by both dialects (NEW/OLD rows)
_COUNT_NEW = (
    "INSERT INTO subreddit_days (subreddit, day, posts) SELECT NEW.subreddit, NEW.created_utc / 86400, 1 "
    "WHERE NOT NEW.removed ON CONFLICT (subreddit, day) DO UPDATE SET posts = subreddit_days.posts + 1"
)
_COUNT_OLD = (
    "UPDATE subreddit_days SET posts = posts - 1 WHERE NOT OLD.removed AND subreddit = OLD.subreddit "
    "AND day = OLD.created_utc / 86400"
)
_FORGET_POST = "DELETE FROM post_levels WHERE subreddit = {row}.subreddit AND created_utc >= {row}.created_utc"
_FORGET_LABEL = (
    "DELETE FROM post_levels WHERE subreddit = (SELECT subreddit FROM posts WHERE id = {row}.post_id) "
    "AND created_utc >= (SELECT created_utc FROM posts WHERE id = {row}.post_id)"
)
_LABEL_SUBREDDIT = (
    "UPDATE labels SET subreddit = NEW.subreddit WHERE post_id = NEW.id AND subreddit IS DISTINCT FROM NEW.subreddit"
)
_RECOUNT = (
    "DELETE FROM subreddit_days",
    "INSERT INTO subreddit_days (subreddit, day, posts) SELECT subreddit, created_utc / 86400, COUNT(*) "
    "FROM posts WHERE NOT removed GROUP BY subreddit, created_utc / 86400",
    "UPDATE labels SET subreddit = (SELECT subreddit FROM posts WHERE posts.id = labels.post_id)",
    "DELETE FROM post_levels",
)
_ready: set[str] = set()


def ensure_history_schema(engine: Engine) -> None:
    """Add what is missing (idempotent; once per engine per process)."""
    key = str(engine.url)
    if key in _ready:
        return
    if engine.dialect.name == "sqlite":
        _sqlite(engine)
    elif engine.dialect.name == "postgresql":
        _postgres(engine)
    else:
        raise NotImplementedError(f"history schema not supported on {engine.dialect.name}")
    _ready.add(key)


def _sqlite(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # one migrating process at a time; sees the others' work
        if "subreddit" not in {c["name"] for c in inspect(conn).get_columns("labels")}:
            conn.exec_driver_sql("ALTER TABLE labels ADD COLUMN subreddit VARCHAR(64)")
        for sql in _INDEXES:
            conn.exec_driver_sql(sql)
        present = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        if set(_SQLITE_TRIGGERS) <= present:
            return
        create_sqlite_triggers(conn)
        for sql in _RECOUNT:  # same transaction: no write can fall between triggers and recount
            conn.exec_driver_sql(sql)


def create_sqlite_triggers(conn) -> None:  # a SQLAlchemy Connection
    """(Re)create the SQLite triggers (without the recount: bulk loaders fill the tables themselves)."""
    label_subreddit = _LABEL_SUBREDDIT.replace("IS DISTINCT FROM", "IS NOT")
    bodies = {
        "smpp_posts_ai": ("AFTER INSERT ON posts", [_COUNT_NEW, label_subreddit, _FORGET_POST.format(row="NEW")]),
        "smpp_posts_ad": (
            "AFTER DELETE ON posts",
            [_COUNT_OLD, _FORGET_POST.format(row="OLD"), "DELETE FROM post_levels WHERE post_id = OLD.id"],
        ),
        "smpp_posts_au": (
            "AFTER UPDATE OF subreddit, created_utc, removed ON posts",
            [_COUNT_OLD, _FORGET_POST.format(row="OLD"), _COUNT_NEW, label_subreddit, _FORGET_POST.format(row="NEW")],
        ),
        "smpp_labels_ai": (
            "AFTER INSERT ON labels",
            [
                "UPDATE labels SET subreddit = (SELECT subreddit FROM posts WHERE id = NEW.post_id) "
                "WHERE post_id = NEW.post_id",
                _FORGET_LABEL.format(row="NEW"),
            ],
        ),
        "smpp_labels_au": (
            "AFTER UPDATE OF post_id, score, matured_utc, status ON labels",
            [_FORGET_LABEL.format(row="OLD"), _FORGET_LABEL.format(row="NEW")],
        ),
        "smpp_labels_ad": ("AFTER DELETE ON labels", [_FORGET_LABEL.format(row="OLD")]),
    }
    for name in _SQLITE_TRIGGERS:
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        when, statements = bodies[name]
        conn.exec_driver_sql(
            f"CREATE TRIGGER {name} {when} FOR EACH ROW BEGIN " + "".join(f"{s}; " for s in statements) + "END"
        )


def _postgres(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(713131)"))  # one migrating process at a time
        conn.exec_driver_sql("ALTER TABLE labels ADD COLUMN IF NOT EXISTS subreddit VARCHAR(64)")
        for sql in _INDEXES:
            conn.exec_driver_sql(sql)
        present = {r[0] for r in conn.exec_driver_sql("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")}
        if set(TRIGGERS) <= present:
            return
        conn.exec_driver_sql(f"""
CREATE OR REPLACE FUNCTION smpp_posts_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    {_COUNT_OLD};
    {_FORGET_POST.format(row="OLD")};
  END IF;
  IF TG_OP = 'DELETE' THEN
    DELETE FROM post_levels WHERE post_id = OLD.id;
  ELSE
    {_COUNT_NEW};
    {_LABEL_SUBREDDIT};
    {_FORGET_POST.format(row="NEW")};
  END IF;
  RETURN NULL;
END $$""")
        conn.exec_driver_sql("""
CREATE OR REPLACE FUNCTION smpp_labels_subreddit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.subreddit := (SELECT subreddit FROM posts WHERE id = NEW.post_id);
  RETURN NEW;
END $$""")
        conn.exec_driver_sql(f"""
CREATE OR REPLACE FUNCTION smpp_labels_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN {_FORGET_LABEL.format(row="OLD")}; END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN {_FORGET_LABEL.format(row="NEW")}; END IF;
  RETURN NULL;
END $$""")
        for name, table in (
            ("smpp_posts_history", "posts"),
            ("smpp_labels_subreddit", "labels"),
            ("smpp_labels_history", "labels"),
        ):
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        conn.exec_driver_sql(
            "CREATE TRIGGER smpp_posts_history AFTER INSERT OR DELETE OR UPDATE OF subreddit, "
            "created_utc, removed ON posts FOR EACH ROW EXECUTE FUNCTION smpp_posts_history()"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER smpp_labels_subreddit BEFORE INSERT OR UPDATE OF post_id ON labels "
            "FOR EACH ROW EXECUTE FUNCTION smpp_labels_subreddit()"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER smpp_labels_history AFTER INSERT OR DELETE OR UPDATE OF post_id, score, "
            "matured_utc, status ON labels FOR EACH ROW EXECUTE FUNCTION smpp_labels_history()"
        )
        for sql in _RECOUNT:
            conn.exec_driver_sql(sql)
