"""The streamed trainer's first pass: labels, narrow index, chronological split and slice plan.

By default it runs in a child process (`training.first_pass_in_child`). The pass churns through a
Python object per post id (the label query) and Arrow/pandas buffers per record batch; glibc's heap
and Arrow's mimalloc keep much of that after it is freed (~0.15 GB per million rows measured), so
in the training process memory grew with the window. The child hands back only compact arrays
(~32 B a row) and its churn goes back to the OS when it exits.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from smpp.settings import Settings
from smpp.training.model import InputSpec, subreddit_balance_weights
from smpp.training.split import ChronoSplit, chronological_split, skip_reason, within_window
from smpp.training.stream import SlicePlan, StreamIndex, present_dims, release_freed_memory, scan_index

log = logging.getLogger(__name__)

SPLIT_COLUMNS = ["subreddit", "domain", "created_utc", "label"]  # what training reads after the plan exists
# the child imports this module (not `-m`, which would make it __main__: pickled classes must match)
CHILD_MAIN = "import sys; from smpp.training.first_pass import _main; raise SystemExit(_main(sys.argv[1:]))"


class LabelSource(Protocol):
    """Where the labels come from when the partitions do not carry them (e.g. warehouse.labels.LabelSource).

    Picklable: the first pass calls `fetch` in its child process, so a million post ids never touch the parent.
    """

    def fetch(self, settings: Settings) -> pd.DataFrame: ...


@dataclass
class FirstPass:
    index: StreamIndex  # its rows dropped: the plan locates them
    rows: dict[str, int]
    window_frame: pd.DataFrame  # created_utc of the window's first and last rows (for data_window)
    all_dims: dict[str, int]
    split: ChronoSplit | None  # SPLIT_COLUMNS only
    skip_reason: str | None
    tower_dims: dict[str, int] = field(default_factory=dict)
    spec: InputSpec | None = None
    plan: SlicePlan | None = None
    weighted: bool = False


def first_pass(settings: Settings, paths: list[Path], labels: pd.DataFrame | LabelSource | None) -> FirstPass:
    """Index the partitions, cut the split, decide the towers and locate every slice's rows."""
    training = settings.training
    if labels is not None and not isinstance(labels, pd.DataFrame):  # a LabelSource
        labels = labels.fetch(settings) if paths else None  # no partitions: nothing to join them to
    index = scan_index(paths, labels)
    del labels
    in_window = within_window(index.rows, training.train_window_days, training.train_window_rows)
    split = chronological_split(in_window, training.val_fraction, training.test_fraction) if len(in_window) else None
    rows = {
        "input": index.input_rows,
        "labelled": len(index.rows),
        "in_window": len(in_window),
        **(split.rows if split is not None else {"train": 0, "val": 0, "test": 0}),
    }
    times = in_window["created_utc"]
    window_frame = pd.DataFrame({"created_utc": [int(times.min()), int(times.max())] if len(times) else []})
    all_dims = present_dims(index, in_window)
    reason = skip_reason(len(in_window), split, settings)
    index.rows = index.rows.iloc[:0]  # the split holds its own copies
    del in_window
    result = FirstPass(index, rows, window_frame, all_dims, split, reason)
    if reason is not None or split is None:
        result.split = None if split is None else _narrow(split)
        return result

    result.tower_dims = present_dims(index, split.train)
    result.spec = InputSpec.for_frame(split.train, result.tower_dims, level_offset=training.level_offset)
    weights = None
    if training.balance_subreddits:
        reference = (split.train["subreddit"].to_numpy(), split.train["label"].to_numpy(np.float32))
        weights = {
            name: subreddit_balance_weights(
                getattr(split, name)["subreddit"].to_numpy(),
                getattr(split, name)["label"].to_numpy(np.float32),
                reference,
            )
            for name in ("train", "val")
        }
    result.plan = SlicePlan(index, {"train": split.train, "val": split.val, "test": split.test}, weights)
    result.weighted = weights is not None
    result.split = _narrow(split)
    release_freed_memory()
    return result


def _narrow(split: ChronoSplit) -> ChronoSplit:
    return ChronoSplit(*(getattr(split, name)[SPLIT_COLUMNS].copy() for name in ("train", "val", "test")))


def run_first_pass(settings: Settings, paths: list[Path], labels: pd.DataFrame | LabelSource | None) -> FirstPass:
    """first_pass in a child process (`training.first_pass_in_child`), else here."""
    if not settings.training.first_pass_in_child:
        return first_pass(settings, paths, labels)
    import smpp

    source_root = str(Path(smpp.__file__).resolve().parents[1])  # the child imports the smpp this process runs
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (source_root, os.environ.get("PYTHONPATH")) if p)}
    with tempfile.TemporaryDirectory(prefix="smpp-first-pass-") as tmp:
        request, response = Path(tmp) / "request.pkl", Path(tmp) / "response.pkl"
        request.write_bytes(pickle.dumps((settings, [str(p) for p in paths], labels), protocol=pickle.HIGHEST_PROTOCOL))
        done = subprocess.run(
            [sys.executable, "-c", CHILD_MAIN, str(request), str(response)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if not response.exists():
            raise RuntimeError(
                f"training's first pass failed in its child process (exit {done.returncode}):\n{done.stderr[-3000:]}"
            )
        outcome = pickle.loads(response.read_bytes())
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _main(argv: list[str]) -> int:
    request, response = Path(argv[0]), Path(argv[1])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    settings, paths, labels = pickle.loads(request.read_bytes())
    try:
        outcome: Any = first_pass(settings, [Path(p) for p in paths], labels)
    except Exception as exc:  # noqa: BLE001 - handed to the parent, which raises it
        outcome = exc
    try:
        payload = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - an exception that does not pickle still reaches the parent
        payload = pickle.dumps(RuntimeError(f"{type(outcome).__name__}: {outcome}"))
    partial = response.with_suffix(".part")
    partial.write_bytes(payload)
    partial.rename(response)  # the parent never reads half a result
    return 0
