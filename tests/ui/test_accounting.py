"""The per-day post accounting and the day's label coverage, from stage metrics shaped as smpp.tasks writes them."""

from __future__ import annotations

import re
from datetime import date
from html import escape

from smpp.storage import write_run_metrics
from smpp.ui import artifacts as ui
from smpp.ui import render
from smpp.ui.accounting import post_accounting
from smpp.warehouse.labels import LABEL_STATUS_MEANING

DAY = "2026-11-20"


def live_day() -> dict[str, dict]:
    """The issue's live day as this code records it: 964 ingested, 598 kept, 232 image URLs that did not resolve."""
    return {
        "scrape_posts": {
            "source": "reddit",
            "posts_in_day": 964,
            "labels": {"labelled_ok": 0, "labelled_late": 719, "pending": 0},
        },
        "filter_posts": {
            "input": 964,
            "kept": 598,
            "dropped_nsfw": 300,
            "dropped_not_image": 66,
            "with_image_url": 232,
            "extra_gallery_images": 0,
        },
        "fetch_images": {
            "posts": {"kept": 598, "without_image_url": 366, "status": {"unresolvable": 232}},
            "requested": 232,
            "extra_gallery_images": 0,
            "ok": 0,
            "failures": {"unresolvable": 232},
        },
        "build_features": {
            "rows": 598,
            "with_image": 0,
            "labels": {"ok": 0, "archive": 0, "late": 0, "not_matured": 598, "missing": 0},
        },
        "train_model": {"version": None, "rows": {"input": 0, "labelled": 0, "in_window": 0}},
    }


def parts(level) -> dict[str, int | None]:
    return {p.name: p.count for p in level.parts}


def test_every_level_sums_to_its_parent():
    filtered, images, labels = post_accounting(live_day())
    assert parts(filtered) == {"kept": 598, "dropped: not_image": 66, "dropped: nsfw": 300}
    assert parts(images) == {"image failed: unresolvable": 232, "image fetched ok": 0, "no image URL": 366}
    assert parts(labels)["not yet matured"] == 598
    assert [level.unaccounted for level in (filtered, images, labels)] == [0, 0, 0]


def test_a_remainder_is_reported_not_hidden():
    stages = live_day()
    stages["filter_posts"]["dropped_nsfw"] = 290  # ten ingested posts no rule explains
    stages["fetch_images"]["posts"]["status"] = {"ok": 200, "unresolvable": 40}  # eight counted twice
    filtered, images, _ = post_accounting(stages)
    assert filtered.unaccounted == 10 and images.unaccounted == -8
    html = render.accounting_table(post_accounting(stages))
    assert re.search(r"<tr class='off'><td class='part'>unaccounted</td><td class='num'>10</td>", html)
    assert re.search(r"<tr class='off'><td class='part'>unaccounted</td><td class='num'>-8</td>", html)


def test_an_older_run_shows_not_recorded():
    stages = live_day()
    del stages["fetch_images"]["posts"]
    stages["fetch_images"]["extra_gallery_images"] = 5  # per-image counts then mix in gallery items
    del stages["build_features"]["labels"]
    _, images, labels = post_accounting(stages)
    assert images.unaccounted is None and parts(images)["image status per post"] is None
    assert labels.unaccounted is None and "not recorded" in labels.note
    html = render.accounting_table([images, labels])
    assert "not computable: a part is not recorded" in html and ">not recorded<" in html


def test_an_older_run_with_one_image_per_post_is_still_accounted():
    stages = live_day()
    del stages["fetch_images"]["posts"]
    _, images, _ = post_accounting(stages)
    assert parts(images) == {"image fetched ok": 0, "image failed: unresolvable": 232, "no image URL": 366}
    assert images.unaccounted == 0


def write_day(settings, stages: dict[str, dict]) -> ui.RunView:
    for stage, metrics in stages.items():
        write_run_metrics(settings, DAY, stage, {"day": DAY, **metrics})
    return ui.run_view(settings, date.fromisoformat(DAY))


def test_label_coverage_counts_the_days_feature_rows_not_0_of_0(settings):
    view = write_day(settings, live_day())
    coverage = dict(view.label_coverage)
    assert coverage["the day's feature rows with a trainable label (ok or archive)"] == "0 of 598 (0.0%)"
    assert "598 not yet matured" in coverage["why none"]
    assert not any(str(value).startswith("0 of 0") for value in coverage.values())


def test_label_coverage_of_a_run_before_per_day_label_counts(settings):
    stages = live_day()
    del stages["build_features"]["labels"]
    coverage = dict(write_day(settings, stages).label_coverage)
    assert coverage["the day's feature rows with a trainable label (ok or archive)"].startswith("not recorded")


def test_the_run_page_explains_late_labels(settings):
    view = write_day(settings, live_day())
    html = render.run_page(
        view,
        dag_id="smpp_pipeline",
        run_id="scheduled__2026-11-20",
        interval=None,
        data_dir=str(settings.data_dir),
        file_url=lambda v, n: f"/{v}/{n}",
        model_url=lambda v: f"/{v}",
        models_url="/models",
    )
    assert "id='post-accounting'" in html and "labelled_late means" in html
    assert escape(LABEL_STATUS_MEANING["late"]) in html
    assert "not a clean score-at-age label" in LABEL_STATUS_MEANING["late"]


def test_fetch_images_counts_each_kept_post_once(settings, monkeypatch):
    import pandas as pd

    from smpp import storage, tasks
    from smpp.settings import get_settings

    gallery = ["https://i.redd.it/a.jpg", "https://i.redd.it/b.jpg"]
    kept = pd.DataFrame(
        {
            "id": ["gallery", "dead", "text"],
            "image_url": [gallery[0], "https://gone.invalid/c.jpg", None],
            "image_urls": [gallery, ["https://gone.invalid/c.jpg"], []],
        }
    )
    storage.write_partition(settings, "filtered", date.fromisoformat(DAY), kept)

    def fake_fetch(_settings, requests_: pd.DataFrame) -> pd.DataFrame:
        status = ["unresolvable" if "gone" in url else "ok" for url in requests_["image_url"]]
        return pd.DataFrame(
            {"post_id": requests_["post_id"], "status": status, "sha256": [f"h{i}" for i in range(len(status))]}
        )

    monkeypatch.setattr("smpp.images.fetch.fetch_images", fake_fetch)
    monkeypatch.setenv("SMPP_IMAGES__ALL_GALLERY_ITEMS", "true")
    get_settings.cache_clear()  # the fixture's settings were cached before the variable was set
    metrics = tasks.fetch_images(f"{DAY}T00:00:00+00:00", "2026-11-21T00:00:00+00:00")
    assert metrics["requested"] == 3 and metrics["ok"] == 2  # per image: the gallery's second item too
    assert metrics["posts"] == {"kept": 3, "without_image_url": 1, "status": {"ok": 1, "unresolvable": 1}}
