"""The block-wise ridge baseline chooses the alpha and predicts as sklearn's RidgeCV (GCV) does."""

import numpy as np
import pytest

from smpp.training.baselines import RIDGE_ALPHAS, ridge_gcv


@pytest.mark.parametrize("n, p", [(3000, 40), (500, 120)])
def test_ridge_gcv_matches_sklearn_ridgecv(n, p):
    from sklearn.linear_model import RidgeCV

    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, p)).astype(np.float32)
    x[:, -1] = 1.0  # a constant column (an always-present mask) must not break it
    y = x[:, :5] @ rng.normal(size=5) + rng.normal(scale=2.0, size=n) + 3.0
    reference = RidgeCV(alphas=RIDGE_ALPHAS).fit(x, y)
    blocks = lambda: ((x[i : i + 256], y[i : i + 256]) for i in range(0, n, 256))  # noqa: E731
    coef, intercept, alpha = ridge_gcv(blocks, RIDGE_ALPHAS)
    assert alpha == reference.alpha_
    np.testing.assert_allclose(x @ coef + intercept, reference.predict(x), rtol=1e-5, atol=1e-5)


def test_text_ridge_streamed_in_blocks_matches_ridgecv_on_the_whole_frame():
    """Blocks of a frame (missing vectors, an unseen test subreddit) give RidgeCV's fit on the whole design."""
    import pandas as pd
    from sklearn.linear_model import RidgeCV

    from smpp.training.baselines import fit_text_ridge

    rng = np.random.default_rng(7)
    n, dim = 2000, 16
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    subs = rng.choice(["a", "b", "c"], n)
    cells = [None if i % 10 == 0 else vectors[i] for i in range(n)]
    y = vectors[:, 0] * 2 + (subs == "b") * 1.5 + rng.normal(scale=0.5, size=n)
    frame = pd.DataFrame({"subreddit": subs, "title_emb": cells})
    predict = fit_text_ridge(
        lambda: ((frame.iloc[i : i + 300], y[i : i + 300]) for i in range(0, n, 300)), frame["subreddit"].unique(), dim
    )

    present = np.array([c is not None for c in cells], dtype=np.float32)[:, None]
    onehot = np.stack([(subs == s).astype(np.float32) for s in ["a", "b", "c"]], axis=1)
    design = np.hstack([vectors * present, present, onehot])
    reference = RidgeCV(alphas=RIDGE_ALPHAS).fit(design, y)
    test = pd.DataFrame({"subreddit": ["b", "zzz"], "title_emb": [vectors[1], None]})
    expected = reference.predict(np.array([[*vectors[1], 1.0, 0, 1, 0], [*np.zeros(dim), 0.0, 0, 0, 0]]))
    np.testing.assert_allclose(predict(test), expected, rtol=1e-5, atol=1e-5)
