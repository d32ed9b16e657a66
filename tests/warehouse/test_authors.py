"""Author facts from the warehouse: the first snapshot only, for any number of names."""

from __future__ import annotations

from smpp.sources.records import AuthorRecord
from smpp.warehouse import session_for
from smpp.warehouse.authors import first_snapshots, known_fullnames
from smpp.warehouse.ingest import ingest_authors


def test_first_snapshots_and_fullnames_for_more_names_than_sqlite_binds_in_one_statement(settings):
    with session_for(settings.database_url) as session:
        ingest_authors(session, [AuthorRecord("alice", "t2_a", 1_000, 10, 20, 5_000)])
        ingest_authors(session, [AuthorRecord("alice", "t2_a", 1_000, 9_999, 9_999, 9_000)])  # later: never used
        ingest_authors(session, [AuthorRecord("zed", "t2_z", 2_000, 1, 2, 5_000)])
    # SQLite caps bound parameters per statement (32,766 by default, 250,000 in Debian's build): one IN
    # list of every name would fail
    names = [f"user{i:06d}" for i in range(250_001)] + ["alice", "zed", None]
    frame = first_snapshots(settings, names).set_index("name")
    assert sorted(frame.index) == ["alice", "zed"]
    assert frame.loc["alice", ["created_utc", "link_karma", "comment_karma"]].tolist() == [1_000, 10, 20]
    assert frame.loc["zed", "link_karma"] == 1
    assert known_fullnames(settings, names) == {"alice": "t2_a", "zed": "t2_z"}
