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


def test_offsets_are_train_means_or_the_recent_level():
    import pandas as pd

    from smpp.training.model import InputSpec, build_model, model_inputs, predict_frame

    train = pd.DataFrame(
        {
            "subreddit": ["a", "a", "b", "b"],
            "title_chars": [1.0, 2.0, 3.0, 4.0],
            "subreddit_recent_mean_label": [np.nan, 1.0, np.nan, 5.0],
            "label": [1.0, 3.0, 5.0, 7.0],
        }
    )
    for level_offset in (False, True):
        spec = InputSpec.for_frame(train, {}, level_offset=level_offset)
        assert spec.level_offset is level_offset
        model = build_model(model_inputs(train, spec), train["label"].to_numpy(np.float32), spec)
        for head in (layer for layer in model.layers if layer.name.startswith("residual")):  # every ensemble member
            head.set_weights([np.zeros_like(w) for w in head.get_weights()])  # isolate the offset
        new = pd.DataFrame(
            {
                "subreddit": ["a", "b", "zzz", "a"],
                "title_chars": [0.0] * 4,
                "subreddit_recent_mean_label": [np.nan, np.nan, np.nan, 9.0],
            }
        )
        got = predict_frame(model, new)
        expected = [2.0, 6.0, 4.0, 9.0 if level_offset else 2.0]  # train means a=2, b=6, unseen: global 4
        np.testing.assert_allclose(got, expected, rtol=1e-5)
