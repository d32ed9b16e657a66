"""Training window and retrain cadence (issue 13): which days train, which rows they train on, who scores the rest."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smpp.training.cadence import EPOCH, days_until_training, is_training_day, newest_partitions
from smpp.training.split import within_window
from smpp.training.window import training_partitions, window_start_utc

CHAMPION = "20261121T201500Z-ab12cd"


def test_every_day_trains_by_default():
    assert all(is_training_day(date(2024, 1, 1) + timedelta(days=i), 1) for i in range(30))


def test_which_days_train_follows_from_the_date_alone():
    days = [date(2024, 3, 1) + timedelta(days=i) for i in range(21)]
    trains = [d for d in days if is_training_day(d, 7)]
    assert len(trains) == 3 and all((d - EPOCH).days % 7 == 0 for d in trains)
    # the same answer in any order (a backfill run backwards, a re-run)
    assert [d for d in reversed(days) if is_training_day(d, 7)] == trains[::-1]
    assert [days_until_training(d, 7) for d in trains] == [0, 0, 0]
    assert all(is_training_day(d + timedelta(days=days_until_training(d, 7)), 7) for d in days)
    with pytest.raises(ValueError):
        is_training_day(days[0], 0)


def test_row_window_keeps_the_newest_rows_and_cuts_between_timestamps():
    frame = pd.DataFrame({"post_id": [f"p{i}" for i in range(6)], "created_utc": [10, 20, 30, 30, 40, 50]})
    kept = within_window(frame, None, 3)
    # 30 is shared by p2 and p3: both go, so the window never exceeds its rows
    assert list(kept["post_id"]) == ["p4", "p5"]
    assert list(within_window(frame, None, 4)["post_id"]) == ["p2", "p3", "p4", "p5"]
    assert len(within_window(frame, None, 100)) == 6
    assert len(within_window(frame, None, None)) == 6
    # both bounds: the tighter wins
    days = frame.assign(created_utc=frame["created_utc"] * 86400)
    assert list(within_window(days, 10, 5)["post_id"]) == ["p4", "p5"]
    assert list(within_window(days, 30, 2)["post_id"]) == ["p4", "p5"]


def test_newest_partitions_count_only_matured_days():
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(10)]
    rows = [100] * 10
    asked: list[int] = []

    def count(i):
        asked.append(i)
        return rows[i]

    assert newest_partitions(days, count, 250) == 7  # 3 newest days hold 300 >= 250
    assert asked == [9, 8, 7]  # footers read newest first, only as far as needed
    # the newest day's labels have not matured: it is read but not counted
    assert newest_partitions(days, rows.__getitem__, 250, matured_before=days[9]) == 6
    assert newest_partitions(days, rows.__getitem__, 10_000) == 0
    assert newest_partitions(days, rows.__getitem__, None) == 0


def _write_feature_days(settings, first: date, n_days: int, rows_per_day: int) -> list[date]:
    from smpp import storage

    days = []
    for offset in range(n_days):
        day = first + timedelta(days=offset)
        start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
        table = pa.table(
            {
                "post_id": [f"{day:%m%d}-{i}" for i in range(rows_per_day)],
                "created_utc": np.arange(rows_per_day, dtype=np.int64) * 60 + start,
            }
        )
        path = storage.partition_path(settings, "features", day)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        days.append(day)
    return days


def _with_env(monkeypatch, **training):
    from smpp import settings as settings_module

    for key, value in training.items():
        monkeypatch.setenv(f"SMPP_TRAINING__{key.upper()}", "null" if value is None else str(value))
    settings_module.get_settings.cache_clear()
    return settings_module.get_settings()


def test_training_partitions_take_the_newest_days_that_hold_the_row_window(settings, monkeypatch):
    days = _write_feature_days(settings, date(2024, 1, 1), 20, rows_per_day=100)
    settings = _with_env(monkeypatch, train_window_rows=250)
    run_day = days[15]
    paths = training_partitions(settings, run_day)
    chosen = [p.parent.name[3:] for p in paths]
    # never a day after the run; the run day itself (labels not matured) is read but not counted
    assert chosen == [d.isoformat() for d in days[12:16]]
    start = window_start_utc(settings, paths)
    assert start == int(datetime(2024, 1, 13, tzinfo=UTC).timestamp())
    # no bound: all history, and the label query is not bounded either
    settings = _with_env(monkeypatch, train_window_rows=None)
    paths = training_partitions(settings, run_day)
    assert len(paths) == 16 and window_start_utc(settings, paths) is None
    # a days window still works, alone or with rows
    settings = _with_env(monkeypatch, train_window_rows=None, train_window_days=2)
    assert len(training_partitions(settings, run_day)) == 2


def test_first_pass_window_holds_the_newest_rows_and_tests_on_the_newest_days(tmp_path, make_settings, make_features):
    from smpp.training.first_pass import first_pass
    from smpp.training.train import write_day_partitions

    features = make_features(720)
    paths = write_day_partitions(features, tmp_path / "features")
    settings = make_settings(tmp_path / "data", train_window_rows=300, first_pass_in_child=False)
    passed = first_pass(settings, paths, None)
    assert passed.rows["labelled"] == 720 and 290 <= passed.rows["in_window"] <= 300
    newest = np.sort(features["created_utc"].to_numpy())[-passed.rows["in_window"] :]
    split = passed.split
    assert split.train["created_utc"].min() >= newest.min()
    assert split.train["created_utc"].max() < split.val["created_utc"].min()
    assert split.val["created_utc"].max() < split.test["created_utc"].min()
    assert split.test["created_utc"].max() == features["created_utc"].max()


def _register_champion(settings) -> None:
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    (settings.models_dir / "champion.json").write_text(json.dumps({"version": CHAMPION}))


def _interval(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def test_days_between_retrains_are_scored_by_the_champion(settings, monkeypatch):
    from smpp import storage, tasks
    from smpp.lifecycle import retrain
    from smpp.training import train as train_module
    from smpp.ui.artifacts import run_view

    settings = _with_env(monkeypatch, retrain_every_days=3, train_window_rows=250)
    days = _write_feature_days(settings, date(2024, 1, 1), 10, rows_per_day=100)
    trained_on: list[list] = []
    scored: list[tuple[str, list]] = []

    def fake_train(settings, paths, out, **kwargs):
        trained_on.append([p.parent.name[3:] for p in paths])
        return train_module.TrainReport(out, {}, {"train": 1}, None)

    monkeypatch.setattr(retrain, "train_from_partitions", fake_train)
    monkeypatch.setattr(
        retrain,
        "score_model_on_test",
        lambda settings, model_dir, paths, labels: (
            scored.append((model_dir.name, list(paths))) or {"spearman_within_subreddit": 0.31, "n": 40}
        ),
    )
    between = next(d for d in days if not is_training_day(d, 3))
    # no champion yet: a day between retrains trains anyway (nothing else could score it)
    assert tasks.train_model(*_interval(between))["trained"] is True
    _register_champion(settings)
    result = tasks.train_model(*_interval(between))
    assert result["trained"] is False and result["version"] is None
    assert result["scored_by"] == "champion" and result["champion_version"] == CHAMPION
    assert is_training_day(date.fromisoformat(result["next_training_day"]), 3)
    assert len(trained_on) == 1  # nothing trained on the second call
    published = tasks.evaluate_and_publish(*_interval(between), None)
    assert published["scored_by"] == "champion" and published["promoted"] is False
    assert published["champion_metrics"]["spearman_within_subreddit"] == 0.31
    # the champion scored the test slice of the window a training this day would read
    assert scored[0][0] == CHAMPION and scored[0][1] == training_partitions(settings, between)
    assert not (settings.models_dir / "promotions.jsonl").exists()  # no decision: nothing to promote
    stored = storage.read_run_metrics(settings, between)
    assert stored["train_model"]["trained"] is False and stored["evaluate_and_publish"]["scored_by"] == "champion"
    view = run_view(settings, between)
    assert view.model is None and "scored by the champion" in view.no_model_reason and "0.310" in view.no_model_reason
    # a training day trains even with a champion
    training_day = next(d for d in days if is_training_day(d, 3))
    assert tasks.train_model(*_interval(training_day))["trained"] is True
    assert len(trained_on) == 2
