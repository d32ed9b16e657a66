import numpy as np
import pandas as pd
import pytest

from smpp.training.split import chronological_split, labelled_rows, within_window


def _frame(times, labels=None):
    return pd.DataFrame(
        {
            "post_id": [f"p{i}" for i in range(len(times))],
            "created_utc": np.asarray(times, dtype="int64"),
            "label": labels if labels is not None else np.arange(len(times), dtype=float),
        }
    )


def test_split_is_chronological_whatever_the_row_order():
    rng = np.random.default_rng(1)
    frame = _frame(rng.permutation(np.arange(1000, 1100)))
    split = chronological_split(frame, val_fraction=0.15, test_fraction=0.2)
    assert split.rows == {"train": 65, "val": 15, "test": 20}
    assert split.train["created_utc"].max() < split.val["created_utc"].min()
    assert split.val["created_utc"].max() < split.test["created_utc"].min()


def test_posts_sharing_a_timestamp_never_straddle_a_cut():
    times = [1] * 10 + [2] * 10 + [3] * 10  # cut positions fall inside the runs of equal times
    split = chronological_split(_frame(times), val_fraction=0.25, test_fraction=0.25)
    assert set(split.train["created_utc"]) == {1}
    assert set(split.val["created_utc"]) == {2}
    assert set(split.test["created_utc"]) == {3}


def test_all_posts_at_one_time_leave_train_and_val_empty():
    split = chronological_split(_frame([5] * 40), val_fraction=0.15, test_fraction=0.2)
    assert split.rows == {"train": 0, "val": 0, "test": 40}


@pytest.mark.parametrize("val,test", [(0.0, 0.2), (0.5, 0.5), (0.2, 1.0)])
def test_bad_fractions_are_rejected(val, test):
    with pytest.raises(ValueError, match="fractions"):
        chronological_split(_frame(range(10)), val, test)


def test_unlabelled_rows_are_dropped_and_window_keeps_newest_days():
    frame = _frame([0, 86400, 2 * 86400, 3 * 86400], labels=[1.0, np.nan, 2.0, None])
    labelled = labelled_rows(frame)
    assert list(labelled["post_id"]) == ["p0", "p2"]
    assert list(within_window(labelled, 1)["post_id"]) == ["p2"]
    assert len(within_window(labelled, None)) == 2
