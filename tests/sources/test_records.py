"""PostRecord.from_reddit_json: convertible values are converted, unusable records are ValueErrors."""

from __future__ import annotations

from dataclasses import fields

import pytest

from smpp.sources.records import InvalidRecord, PostRecord

GOOD = {"id": "abc12", "title": "hello", "subreddit": "pics", "author": "alice", "created_utc": 1_375_142_400.0}


def parse(**changes):
    data = {**GOOD, **changes}
    for key in [k for k, v in changes.items() if v is KeyError]:
        del data[key]
    return PostRecord.from_reddit_json(data, observed_at=None, source="reddit")


def test_wrong_but_convertible_types_are_converted():
    record = parse(
        created_utc="1375142400.7",
        score="42",
        num_comments=3.0,
        title=1234,
        over_18="false",
        is_self="true",
        upvote_ratio="0.93",
        subreddit_subscribers="1000",
        selftext_len="12",
    )
    assert record.created_utc == 1_375_142_400 and record.score == 42 and record.num_comments == 3
    assert record.title == "1234" and record.over_18 is False and record.is_self is True
    assert record.upvote_ratio == 0.93 and record.subreddit_subscribers == 1000 and record.selftext_len == 12
    assert parse(id=None, name="t3_xyz").id == "xyz"
    assert parse(score=None).score == 0 and parse(upvote_ratio=None).upvote_ratio is None


@pytest.mark.parametrize(
    ("changes", "reason", "message"),
    [
        ({"id": KeyError}, "missing_id", "neither id nor name"),
        ({"id": "../etc"}, "bad_id", "base36"),
        ({"created_utc": None}, "missing_created_utc", "abc12 has no created_utc"),
        ({"created_utc": "yesterday"}, "bad_created_utc", "abc12: created_utc is not a number"),
        ({"created_utc": float("inf")}, "bad_created_utc", "not finite"),
        ({"subreddit": None}, "missing_subreddit", "abc12 has no subreddit"),
        ({"score": "abc"}, "bad_score", "abc12: score is not a number: 'abc'"),
        ({"num_comments": {"n": 1}}, "bad_num_comments", "num_comments"),
        ({"over_18": "maybe"}, "bad_over_18", "not a boolean"),
        ({"upvote_ratio": "high"}, "bad_upvote_ratio", "upvote_ratio"),
    ],
)
def test_unusable_records_raise_value_errors_with_a_reason(changes, reason, message):
    with pytest.raises(ValueError, match=message) as info:
        parse(**changes)
    assert isinstance(info.value, InvalidRecord) and info.value.reason == reason


def test_not_a_mapping_is_a_value_error():
    with pytest.raises(ValueError, match="not a mapping"):
        PostRecord.from_reddit_json(["id", "abc"], observed_at=None, source="reddit")  # type: ignore[arg-type]


def test_junk_image_fields_mean_no_images():
    record = parse(preview={"images": [{"source": {"url": 5}}]}, gallery_data=["x"], media_metadata=[1, 2])
    assert record.preview_url is None and record.gallery_urls == ()
    gallery = parse(
        gallery_data={"items": [{"media_id": "m1"}, "junk"]},
        media_metadata={"m1": {"s": {"u": "https://i.redd.it/a.jpg?x=1&amp;y=2"}}, "m2": None},
    )
    assert gallery.gallery_urls == ("https://i.redd.it/a.jpg?x=1&y=2",)


def test_removal_and_deleted_authors():
    assert parse(author="[deleted]", removed_by_category=None).removed  # account deleted: purged too
    assert parse(author="[deleted]", removed_by_category="deleted", title="[deleted]").removed
    assert parse(removed_by_category="moderator").removed
    assert parse(author="[deleted]").removed  # no removal field at all: the author marker decides
    assert PostRecord.from_reddit_json({**GOOD, "author": "[deleted]"}, None, "archive").removed is False


def test_fast_record_construction_equals_the_dataclass_init():
    record = PostRecord.from_reddit_json({**GOOD, "preview": {"images": [{"source": {"url": "u"}}]}}, 17, "archive")
    values = {f.name: getattr(record, f.name) for f in fields(PostRecord)}
    assert record.__dict__ == values  # every field set, nothing else
    rebuilt = PostRecord(**values)
    assert rebuilt == record and hash(rebuilt) == hash(record) and repr(rebuilt) == repr(record)
    with pytest.raises(AttributeError):
        record.score = 5  # type: ignore[misc]  # still frozen


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"score": 10**30}, "score 1000000000000000000000000000000 is outside"),
        ({"score": -(2**31) - 1}, "score"),
        ({"score": "1e30"}, "score '1e30'"),
        ({"num_comments": 2**31}, "num_comments"),  # INTEGER: SQLite would take it, Postgres not
        ({"selftext_len": 2**40}, "selftext_len"),
        ({"subreddit_subscribers": 2**63}, "subreddit_subscribers"),
        ({"created_utc": 10**15}, "created_utc"),  # past year 9999: no day names it
    ],
)
def test_integers_outside_the_warehouse_columns_are_refused(changes, message):
    with pytest.raises(InvalidRecord, match=message) as info:
        parse(**changes)
    assert info.value.reason == "out_of_range"


def test_integers_at_the_column_edges_are_kept():
    record = parse(score=-(2**31), num_comments=2**31 - 1, subreddit_subscribers=2**63 - 1, selftext_len=2**31 - 1)
    assert (record.score, record.num_comments, record.subreddit_subscribers) == (-(2**31), 2**31 - 1, 2**63 - 1)
    with pytest.raises(InvalidRecord, match="observed at") as info:
        PostRecord.from_reddit_json(GOOD, observed_at=2**63, source="archive")
    assert info.value.reason == "out_of_range"


@pytest.mark.parametrize("field", ["title", "author", "url", "link_flair_text"])
def test_nul_in_stored_text_is_refused(field):
    with pytest.raises(InvalidRecord, match="NUL") as info:
        parse(**{field: "a\x00b"})
    assert info.value.reason == "nul_in_text"
    assert parse(selftext="a\x00b").selftext_len == 3  # only its length is stored
