from __future__ import annotations

import pytest

from smpp.images.urls import resolve_image_url


def resolve(url=None, domain=None, post_hint=None, preview_url=None, gallery_urls=(), is_self=False, **kw):
    return resolve_image_url(url, domain, post_hint, preview_url, list(gallery_urls), is_self, **kw)


@pytest.mark.parametrize(
    "url",
    [
        "https://i.redd.it/abc123.jpg",
        "https://i.imgur.com/AbCdE12.png",
        "http://example.com/photos/cat.JPEG?size=large",
        "https://upload.wikimedia.org/x/y/Sunset.webp",
    ],
)
def test_direct_image_links_come_first(url):
    preview = "https://preview.redd.it/xyz.jpg?width=640&amp;s=abc"
    assert resolve(url, post_hint="image", preview_url=preview) == [
        url,
        "https://preview.redd.it/xyz.jpg?width=640&s=abc",
    ]


def test_preview_is_used_for_links_with_a_preview():
    assert resolve(
        "https://www.nytimes.com/2013/article.html",
        domain="nytimes.com",
        post_hint="link",
        preview_url="https://external-preview.redd.it/a.jpg?auto=webp&amp;s=1",
    ) == ["https://external-preview.redd.it/a.jpg?auto=webp&s=1"]


def test_page_link_without_preview_has_no_image():
    assert resolve("https://www.youtube.com/watch?v=x&amp;t=1", domain="youtube.com") == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://imgur.com/AbCdE12", "https://i.imgur.com/AbCdE12.jpg"),
        ("https://www.imgur.com/xYz89", "https://i.imgur.com/xYz89.jpg"),
        ("https://m.imgur.com/AbCdE12.gifv", "https://i.imgur.com/AbCdE12.jpg"),
        ("https://i.imgur.com/AbCdE12.gifv", "https://i.imgur.com/AbCdE12.jpg"),
        ("https://i.imgur.com/AbCdE12", "https://i.imgur.com/AbCdE12.jpg"),
    ],
)
def test_imgur_pages_map_to_direct_images(url, expected):
    assert resolve(url, domain="imgur.com") == [expected]


@pytest.mark.parametrize("url", ["http://imgur.com/a/AbCdE", "https://imgur.com/gallery/AbCdE12"])
def test_imgur_albums_are_not_guessed(url):
    assert resolve(url, domain="imgur.com") == []


def test_self_posts_have_no_image():
    assert resolve("https://www.reddit.com/r/pics/comments/x/y/", domain="self.pics", is_self=True) == []
    assert resolve("https://www.reddit.com/r/pics/comments/x/y/", domain="self.pics") == []
    assert resolve("https://i.redd.it/a.jpg", is_self=True, preview_url="https://p/x.jpg") == []


def test_gallery_first_item_by_default_and_all_on_request():
    gallery = [
        "https://preview.redd.it/one.jpg?width=1&amp;s=1",
        "https://preview.redd.it/two.jpg",
        "https://preview.redd.it/three.jpg",
    ]
    url = "https://www.reddit.com/gallery/abc"
    assert resolve(url, gallery_urls=gallery) == ["https://preview.redd.it/one.jpg?width=1&s=1"]
    assert resolve(url, gallery_urls=gallery, all_gallery_items=True) == [
        "https://preview.redd.it/one.jpg?width=1&s=1",
        "https://preview.redd.it/two.jpg",
        "https://preview.redd.it/three.jpg",
    ]


def test_duplicates_are_dropped_and_non_http_ignored():
    url = "https://i.redd.it/same.jpg"
    assert resolve(url, preview_url=url, gallery_urls=["javascript:alert(1)"]) == [url]
    assert resolve("ftp://example.com/a.jpg") == []
    assert resolve(None, preview_url="  ") == []
    assert resolve("//i.redd.it/x.png") == ["https://i.redd.it/x.png"]
