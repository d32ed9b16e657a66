from datetime import date

import numpy as np
import pandas as pd
import pytest

from smpp.features import schema
from smpp.features.author_history import HISTORY_COLUMNS
from smpp.features.table import FeatureValidationError, build_feature_table, metadata_features, vectors_by_post

DIMS = {"title_emb": 4, "caption_emb": 4, "image_emb": 3, "joint_emb": 5}


def inputs():
    posts = pd.DataFrame(
        {
            "id": ["a", "b"],
            "subreddit": ["pics", "aww"],
            "author": ["alice", None],
            "created_utc": [1375142400, 1375142400 + 6 * 3600],
            "title": ["Hello world", "x y z"],
            "is_self": [False, True],
            "over_18": [False, False],
        }
    )
    authors = pd.DataFrame(
        {"name": ["alice"], "created_utc": [1375142400 - 86400 * 10], "link_karma": [100], "comment_karma": [5]}
    )
    images = pd.DataFrame({"post_id": ["a"], "status": ["ok"]})
    image_feats = pd.DataFrame({"post_id": ["a"], **{c: [1.0] for c in schema.IMAGE_FEATURE_COLUMNS}})
    emb = {
        "title_emb": pd.DataFrame({"post_id": ["a", "b"], "title_emb": [np.ones(4), np.zeros(4)]}),
        "caption_emb": pd.DataFrame({"post_id": ["a", "b"], "caption_emb": [np.ones(4), None]}),
        "image_emb": pd.DataFrame({"post_id": ["a"], "image_emb": [np.ones(3)]}),
        "joint_emb": pd.DataFrame({"post_id": ["a"], "joint_emb": [np.ones(5)]}),
    }
    return posts, authors, images, image_feats, emb


def build(day, posts, authors, images, image_feats, emb, dims, history=None):
    """The DAG's call: stored (post_id, vector) partitions, the ok images, history per post."""
    ids = posts["id"].astype(str).tolist()
    if history is None:
        history = pd.DataFrame(0.0, index=range(len(posts)), columns=HISTORY_COLUMNS)
    return build_feature_table(
        posts,
        authors,
        day=day,
        history=history,
        dims=dims,
        embeddings={col: vectors_by_post(ids, frame, col) for col, frame in emb.items()},
        image_ok=images.loc[images["status"] == "ok", "post_id"].tolist() if not images.empty else [],
        image_features=image_feats,
    )


def test_table_shape_masks_and_types():
    table = build(date(2013, 7, 30), *inputs(), DIMS)
    frame = table.to_pandas()
    assert frame["post_id"].tolist() == ["a", "b"]
    assert frame["has_image"].tolist() == [1.0, 0.0]
    assert frame["image_emb"][1] is None and frame["caption_emb"][1] is None
    assert np.isnan(frame["img_brightness"][1]) and frame["img_brightness"][0] == 1.0
    assert table.schema.field("joint_emb").type.list_size == 5
    assert set(schema.META_COLUMNS) <= set(frame.columns)


def test_author_features_use_known_author_only():
    posts, authors, *_ = inputs()
    meta = metadata_features(posts, authors)
    assert meta["author_known"].tolist() == [1.0, 0.0]
    assert meta["author_link_karma_log"][0] == pytest.approx(np.log1p(100))
    assert meta["author_account_age_days_log"][0] == pytest.approx(np.log1p(10))
    assert meta["hour_cos"][0] == pytest.approx(1.0) and meta["hour_sin"][1] == pytest.approx(1.0)


def test_validation_rejects_bad_vectors_and_writes_nothing():
    posts, authors, images, feats, emb = inputs()
    emb["title_emb"].at[0, "title_emb"] = np.array([np.nan, 0, 0, 0])
    with pytest.raises(FeatureValidationError, match="title_emb has NaN"):
        build(date(2013, 7, 30), posts, authors, images, feats, emb, DIMS)
    emb["title_emb"].at[0, "title_emb"] = np.ones(7)
    with pytest.raises(ValueError, match="expected"):
        build(date(2013, 7, 30), posts, authors, images, feats, emb, DIMS)


def test_empty_day_gives_an_empty_table_with_the_full_schema():
    posts, authors, images, feats, emb = inputs()
    empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in posts.columns})
    no_images = images.iloc[0:0]
    no_feats = pd.DataFrame({c: pd.Series(dtype="float64") for c in feats.columns})
    no_emb = {k: v.iloc[0:0] for k, v in emb.items()}
    table = build(date(2013, 7, 29), empty, authors, no_images, no_feats, no_emb, DIMS)
    assert table.num_rows == 0 and table.schema.field("title_emb").type.list_size == 4
    assert set(schema.META_COLUMNS + schema.IMAGE_FEATURE_COLUMNS) <= set(table.column_names)


def test_history_must_match_the_posts_and_be_finite():
    posts, authors, images, feats, emb = inputs()
    with pytest.raises(FeatureValidationError, match="history has 1 rows for 2 posts"):
        build(
            date(2013, 7, 30),
            posts,
            authors,
            images,
            feats,
            emb,
            DIMS,
            history=pd.DataFrame(0.0, index=[0], columns=HISTORY_COLUMNS),
        )
    bad = pd.DataFrame(0.0, index=range(2), columns=HISTORY_COLUMNS)
    bad.loc[1, "author_prior_mean_label"] = np.inf
    with pytest.raises(FeatureValidationError, match="author_prior_mean_label has inf"):
        build(date(2013, 7, 30), posts, authors, images, feats, emb, DIMS, history=bad)


def test_without_a_day_each_post_gets_its_creation_day_and_frames_round_trip():
    from smpp.features.table import feature_frame_of

    posts, authors, images, feats, emb = inputs()
    posts.loc[1, "created_utc"] = 1375142400 + 86400  # the next UTC day
    table = build(None, posts, authors, images, feats, emb, DIMS)
    assert table.column("ds").to_pylist() == ["2013-07-30", "2013-07-31"]
    frame = feature_frame_of(table)
    assert list(frame.columns) == table.column_names
    assert frame["caption_emb"][1] is None and frame["title_emb"][0].dtype == np.float32
    np.testing.assert_array_equal(frame["joint_emb"][0], np.ones(5, np.float32))
