"""ACF and Ljung-Box against statsmodels on seeded data (1e-12), NumPy and PyTorch; edges."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.diagnostic import acorr_ljungbox
from statsmodels.tsa.stattools import acf as sm_acf

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries.diagnostics import acf, ljung_box, white_noise_band


def test_acf_and_ljung_box_match_statsmodels(rng, to_xp):
    y = rng.standard_normal((4, 150)).cumsum(axis=1) * 0.1 + rng.standard_normal((4, 150))
    r = to_numpy(acf(to_xp(y), 20))
    q, p = (to_numpy(a) for a in ljung_box(to_xp(y), 10, dof=2))
    for b in range(4):
        np.testing.assert_allclose(r[b], sm_acf(y[b], nlags=20, fft=False), rtol=1e-12, atol=1e-14)
        lb = acorr_ljungbox(y[b], lags=[10], model_df=2)
        assert q[b] == pytest.approx(float(lb["lb_stat"].iloc[0]), rel=1e-12)
        assert p[b] == pytest.approx(float(lb["lb_pvalue"].iloc[0]), rel=1e-9)


def test_edges():
    assert np.isnan(to_numpy(acf(np.ones(10), 3))).all()
    with pytest.raises(InvalidInput) as e:
        acf(np.ones(10), 10)
    assert e.value.field == "nlags"
    with pytest.raises(InvalidInput) as e:
        acf([1.0, np.nan, 2.0], 1)
    assert e.value.field == "residuals"
    with pytest.raises(InvalidInput):
        acf([], 1)
    with pytest.raises(InvalidInput) as e:
        ljung_box(np.arange(10.0), 2, dof=2)
    assert e.value.field == "dof"


def test_white_noise_band_is_bartletts():
    assert white_noise_band(100) == pytest.approx(1.959963984540054 / 10, rel=1e-12)
    assert white_noise_band(400, level=0.99) == pytest.approx(2.5758293035489 / 20, rel=1e-12)
    with pytest.raises(InvalidInput) as e:
        white_noise_band(0)
    assert e.value.field == "n"
