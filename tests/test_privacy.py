"""The per-record membership test: exactly calibrated on models drawn like the shadows, sharp on memorisation."""

from __future__ import annotations

import numpy as np
import pytest

from bayesunlearn.experiments import privacy


@pytest.mark.parametrize("k", [2, 4, 16])
def test_a_model_drawn_like_the_shadows_is_told_apart_at_the_rate_alpha(k):
    """With Gaussian losses the prediction bound holds with probability exactly α, whatever K and each record's
    own mean and spread."""
    rng = np.random.default_rng(k)
    n, alpha = 200_000, 0.05
    mean, sd = rng.normal(2.0, 1.0, n), rng.uniform(0.1, 3.0, n)
    shadows = mean + sd * rng.standard_normal((k, n))
    fresh = mean + sd * rng.standard_normal(n)
    share = privacy.told_apart(shadows, fresh, alpha).mean()
    assert abs(share - alpha) < 4 * np.sqrt(alpha * (1 - alpha) / n)  # 4 binomial standard errors


def test_a_model_that_still_fits_the_records_is_told_apart_and_one_that_fits_them_worse_is_not():
    rng = np.random.default_rng(0)
    shadows = 3.0 + 0.2 * rng.standard_normal((8, 1000))
    assert privacy.told_apart(shadows, np.full(1000, 1.0), 0.05).all()  # memorised: far lower loss
    assert not privacy.told_apart(shadows, np.full(1000, 5.0), 0.05).any()
    with pytest.raises(ValueError, match="at least 2 shadow"):
        privacy.told_apart(shadows[:1], np.zeros(1000), 0.05)
