"""Progress lines: rate-limited, with done/total, rate and ETA, readable in an Airflow log."""

import logging

from smpp import progress as progress_module
from smpp.progress import Progress


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_logs_at_most_every_interval_with_rate_and_eta(monkeypatch, caplog):
    clock = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    caplog.set_level(logging.INFO, logger="smpp.progress")
    work = Progress("title embeddings", 1000, "inputs", every_s=30)
    clock.now += 10
    work.advance(100)  # 10 s in: too soon for a line
    assert caplog.messages == []
    clock.now += 20
    work.advance(200)  # 30 s in, 300 done: 10/s, 700 left
    assert caplog.messages == ["title embeddings: 300/1,000 inputs (30.0 %), 10.0 inputs/s, ETA 1m10s"]
    clock.now += 5
    work.advance(100)
    assert len(caplog.messages) == 1
    clock.now += 65
    work.advance(600)
    work.finish()
    assert caplog.messages[-1] == "title embeddings: 1,000 inputs done in 1m40s (10.0 inputs/s)"


def test_without_a_total_it_reports_the_count_and_time_so_far(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    work = Progress("ingest", None, "posts")
    clock.now += 7200
    work.advance(7200)
    assert work.line() == "ingest: 7,200 posts, 1.0 posts/s, 2h00m so far"


def test_counted_passes_results_through():
    work = Progress("x", 4, every_s=3600)
    assert [work.counted(v, 2) for v in ("a", "b")] == ["a", "b"] and work.done == 4
