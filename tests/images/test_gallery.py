from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smpp.images.fetch import fetch_images
from smpp.images.gallery import add_image_urls, expand_gallery_requests, primary_images
from smpp.images.urls import post_image_urls
from smpp.settings import Settings

GALLERY = [
    "https://i.redd.it/one.jpg",
    "https://preview.redd.it/two.png?width=640&amp;s=x",
    "javascript:alert(1)",
    "https://i.redd.it/one.jpg",
    "https://i.redd.it/three.webp",
]
GALLERY_CLEAN = [
    "https://i.redd.it/one.jpg",
    "https://preview.redd.it/two.png?width=640&s=x",
    "https://i.redd.it/three.webp",
]


def urls(url=None, domain=None, post_hint=None, preview_url=None, gallery_urls=(), is_self=False, **kw):
    return post_image_urls(url, domain, post_hint, preview_url, list(gallery_urls), is_self, **kw)


def test_gallery_gives_the_first_item_unless_all_are_asked_for():
    gallery_post = dict(url="https://www.reddit.com/gallery/abc", domain="reddit.com", gallery_urls=GALLERY)
    assert urls(**gallery_post) == GALLERY_CLEAN[:1]
    assert urls(**gallery_post, all_gallery_items=True) == GALLERY_CLEAN


def test_a_direct_link_and_its_preview_are_one_image():
    post = dict(url="https://i.redd.it/x.jpg", post_hint="image", preview_url="https://preview.redd.it/x.jpg")
    assert urls(**post) == ["https://i.redd.it/x.jpg"]
    assert urls(**post, all_gallery_items=True) == ["https://i.redd.it/x.jpg"]


def test_gallery_items_follow_a_direct_link_and_self_posts_have_none():
    assert urls("https://i.redd.it/cover.jpg", gallery_urls=GALLERY, all_gallery_items=True) == [
        "https://i.redd.it/cover.jpg",
        *GALLERY_CLEAN,
    ]
    assert urls("https://i.redd.it/one.jpg", gallery_urls=GALLERY, all_gallery_items=True) == GALLERY_CLEAN
    assert urls(domain="self.pics", gallery_urls=GALLERY, all_gallery_items=True) == []
    assert urls("https://example.com/page", domain="example.com", all_gallery_items=True) == []


def posts_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["g1", "d1", "s1", "t1"],
            "url": [
                "https://www.reddit.com/gallery/g1",
                "https://i.imgur.com/AbCdE12.png",
                None,
                "https://example.com/a",
            ],
            "domain": ["reddit.com", "i.imgur.com", "self.aww", "example.com"],
            "post_hint": [None, "image", "self", "link"],
            "preview_url": [None, "https://preview.redd.it/d1.jpg", None, np.nan],
            "gallery_urls": [np.array(GALLERY, dtype=object), None, np.array([], dtype=object), []],
            "is_self": [False, False, True, False],
        }
    )


@pytest.mark.parametrize("all_items", [False, True])
def test_add_image_urls(all_items):
    frame = posts_frame()
    out = add_image_urls(frame, all_items)
    assert out["image_urls"].tolist() == [
        GALLERY_CLEAN if all_items else GALLERY_CLEAN[:1],
        ["https://i.imgur.com/AbCdE12.png"],
        [],
        [],
    ]
    assert out["image_url"].tolist() == [GALLERY_CLEAN[0], "https://i.imgur.com/AbCdE12.png", None, None]
    assert "image_urls" not in frame.columns  # the input is left alone


def test_add_image_urls_rejects_bad_cells():
    frame = posts_frame()
    frame.loc[0, "gallery_urls"] = "https://i.redd.it/one.jpg"
    with pytest.raises(TypeError, match="gallery_urls cells must be lists"):
        add_image_urls(frame, True)
    with pytest.raises(ValueError, match="preview_url"):
        add_image_urls(frame.drop(columns=["preview_url"]), True)


def filtered_partition(tmp_path, all_items: bool) -> pd.DataFrame:
    """The filtered frame after a parquet round trip (list cells come back as numpy arrays)."""
    frame = add_image_urls(posts_frame(), all_items).drop(columns=["gallery_urls"])
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "filtered.parquet")
    return pq.read_table(tmp_path / "filtered.parquet").to_pandas()


def test_expand_requests_one_row_per_post_image(tmp_path):
    filtered = filtered_partition(tmp_path, all_items=True)
    requests_ = expand_gallery_requests(filtered, all_items=True)
    assert requests_.to_dict("list") == {
        "post_id": ["g1", "g1", "g1", "d1"],
        "image_index": [0, 1, 2, 0],
        "image_url": [*GALLERY_CLEAN, "https://i.imgur.com/AbCdE12.png"],
    }
    assert dict(requests_.dtypes.astype(str)) == {"post_id": "string", "image_index": "int64", "image_url": "string"}

    first_only = expand_gallery_requests(filtered, all_items=False)
    assert first_only[["post_id", "image_index"]].values.tolist() == [["g1", 0], ["d1", 0]]


def test_expand_requests_on_old_and_empty_partitions():
    old = pd.DataFrame({"id": ["a", "b"], "image_url": ["https://i.redd.it/a.jpg", None]})
    assert expand_gallery_requests(old, all_items=True).values.tolist() == [["a", 0, "https://i.redd.it/a.jpg"]]
    # extra items without an image the models could use are not fetched
    orphan = pd.DataFrame({"id": ["c"], "image_url": [None], "image_urls": [["https://i.redd.it/c.jpg"]]})
    assert expand_gallery_requests(orphan, all_items=True).empty
    empty = expand_gallery_requests(pd.DataFrame({"id": [], "image_url": [], "image_urls": []}), all_items=True)
    assert list(empty.columns) == ["post_id", "image_index", "image_url"] and empty.empty
    with pytest.raises(ValueError, match="image_url"):
        expand_gallery_requests(pd.DataFrame({"id": ["a"]}), all_items=True)


def test_gallery_images_are_fetched_and_only_index_0_is_primary(tmp_path, image_server, make_settings, imaging):
    served = [
        image_server.add_bytes(f"/g{i}.jpg", imaging.encode(imaging.noise(32, 24, seed=i), "JPEG")) for i in range(3)
    ]
    filtered = pd.DataFrame(
        {"id": ["p1", "p2"], "image_url": [served[0], served[2]], "image_urls": [served, [served[2]]]}
    )
    settings = make_settings(all_gallery_items=True)
    assert settings.images.all_gallery_items

    requests_ = expand_gallery_requests(filtered, settings.images.all_gallery_items)
    fetched = fetch_images(settings, requests_)
    fetched.insert(1, "image_index", requests_["image_index"].to_numpy())  # fetch_images keeps row order

    assert fetched[["post_id", "image_index", "status"]].values.tolist() == [
        ["p1", 0, "ok"],
        ["p1", 1, "ok"],
        ["p1", 2, "ok"],
        ["p2", 0, "ok"],
    ]
    assert image_server.hits["/g2.jpg"] == 1  # the same URL under two posts is fetched once
    primary = primary_images(fetched)
    assert primary[["post_id", "image_index"]].values.tolist() == [["p1", 0], ["p2", 0]]
    assert primary_images(fetched.drop(columns=["image_index"])).shape[0] == 4  # older partitions: every row


def test_settings_defaults_and_environment(monkeypatch, tmp_path):
    settings = Settings(data_dir=tmp_path)
    assert settings.images.all_gallery_items is False and settings.encoders.text_sparse is False
    monkeypatch.setenv("SMPP_IMAGES__ALL_GALLERY_ITEMS", "true")
    monkeypatch.setenv("SMPP_ENCODERS__TEXT_SPARSE", "1")
    settings = Settings(data_dir=tmp_path)
    assert settings.images.all_gallery_items is True and settings.encoders.text_sparse is True
