"""Ensemble sub-networks inside one model and the within-subreddit ranking loss."""

from __future__ import annotations

import numpy as np
import pytest

from smpp.training.model import (
    InputSpec,
    MemberLoss,
    _dataset,
    build_model,
    embedding_dims,
    fit_model,
    load_model,
    model_inputs,
    predict_frame,
    save_model,
)


def _loss(rank_weight, labels, groups, predictions):
    y_true = (
        np.stack([labels, groups], axis=1).astype(np.float32) if groups is not None else np.asarray(labels, np.float32)
    )
    return np.asarray(MemberLoss(rank_weight).call(y_true, np.asarray(predictions, np.float32)))


def test_member_loss_is_mean_member_squared_error_without_rank():
    got = _loss(0.0, [1.0, 2.0], None, [[1.0, 3.0], [2.0, 2.0]])
    np.testing.assert_allclose(got, [2.0, 0.0])  # (0 + 4) / 2 and 0


def test_rank_term_only_pairs_posts_of_the_same_subreddit():
    labels, groups = [1.0, 2.0, 5.0], [7.0, 7.0, 9.0]
    right = [[1.0], [2.0], [5.0]]  # MSE 0, and the same-subreddit pair (0, 1) is ordered right
    # row 2 is ranked "wrong" against rows 0 and 1, but it is alone in its subreddit: no pair
    cross_wrong = [[1.0], [2.0], [-100.0]]
    pair_wrong = [[2.0], [1.0], [5.0]]
    base = _loss(1.0, labels, groups, right)
    assert base[2] == pytest.approx(0.0)
    np.testing.assert_allclose(_loss(1.0, labels, groups, cross_wrong)[:2], base[:2], rtol=1e-6)
    wrong = _loss(1.0, labels, groups, pair_wrong) - _loss(0.0, labels, None, pair_wrong)
    ordered = _loss(1.0, labels, groups, right)[:2]
    assert (wrong[:2] > ordered[:2]).all()
    np.testing.assert_allclose(wrong[:2], np.log1p(np.e), rtol=1e-5)  # softplus(1) for the one mis-ordered pair


def test_ensemble_with_rank_loss_trains_saves_reloads_and_scores_raw_features(
    tmp_path, features, make_settings, caplog
):
    settings = make_settings(
        tmp_path / "data", epochs=3, batch_size=64, ensemble_size=3, rank_loss_weight=0.5, rank_group_size=8
    )
    train, val = features.iloc[:500].reset_index(drop=True), features.iloc[500:].reset_index(drop=True)
    spec = InputSpec.for_frame(train, embedding_dims(train))
    y_train, y_val = train["label"].to_numpy(np.float32), val["label"].to_numpy(np.float32)
    train_inputs = model_inputs(train, spec)
    model = build_model(train_inputs, y_train, spec, training=settings.training)
    residual_heads = [layer.name for layer in model.layers if layer.name.startswith("residual")]
    assert sorted(residual_heads) == ["residual", "residual_m1", "residual_m2"]
    before = predict_frame(model, val)
    caplog.set_level("INFO", logger="smpp.progress")
    fit = fit_model(model, train_inputs, y_train, model_inputs(val, spec), y_val, settings.training)
    assert fit["epochs_run"] == 3 and np.isfinite(fit["history"]["val_loss"]).all()
    epochs = [r.getMessage() for r in caplog.records if r.name == "smpp.progress"]  # one line an epoch, in the task log
    assert len(epochs) == 3 and epochs[-1].startswith("training (ETA without early stopping): 3/3 epochs")
    assert "; loss " in epochs[0] and "val_loss " in epochs[0]
    after = predict_frame(model, val)
    assert not np.allclose(before, after)  # the served model shares the fitted members' weights

    save_model(model, spec, tmp_path / "v1")
    loaded = load_model(tmp_path / "v1")
    raw = val.drop(columns=["label"])
    np.testing.assert_allclose(predict_frame(loaded, raw), after, rtol=1e-5, atol=1e-5)
    # the served output is the offset plus the members' mean residual
    members = model.smpp_train_model.predict(_dataset(model_inputs(raw, spec), None, 256), verbose=0)
    assert members.shape == (len(raw), 3)
    np.testing.assert_allclose(members.mean(axis=1), after, rtol=1e-5, atol=1e-5)
