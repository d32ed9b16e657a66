import numpy as np
import pytest

from smpp.training.model import subreddit_balance_weights


def test_balance_weights_equalise_subreddit_variance():
    rng = np.random.default_rng(0)
    subs = np.array(["wide"] * 500 + ["narrow"] * 500).reshape(-1, 1)
    labels = np.concatenate([rng.normal(0, 1.0, 500), rng.normal(0, 0.5, 500)])
    weights = subreddit_balance_weights(subs, labels, (subs, labels))
    assert weights.mean() == pytest.approx(1.0, rel=0.05)
    # weighted variance contribution is about equal across the two subreddits
    wide, narrow = weights[:500].mean(), weights[500:].mean()
    assert wide * 1.0 == pytest.approx(narrow * 0.25, rel=0.2)
    unseen = subreddit_balance_weights(np.array([["new"]]), np.array([1.0]), (subs, labels))
    assert np.isfinite(unseen).all()
