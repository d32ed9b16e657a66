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
    coef, intercept, alpha = ridge_gcv(lambda rows: x[rows], y, RIDGE_ALPHAS)
    assert alpha == reference.alpha_
    np.testing.assert_allclose(x @ coef + intercept, reference.predict(x), rtol=1e-5, atol=1e-5)
