"""Accuracy metrics against scikit-learn and the closed forms, batched, NaN-safe as
documented, on NumPy and PyTorch, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
)

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries import metrics as M


@pytest.fixture
def data(rng):
    t = rng.uniform(1.0, 10.0, (6, 15))
    p = t + rng.normal(0, 1.0, t.shape)
    train = rng.normal(5.0, 2.0, (6, 40)).cumsum(axis=1)
    return t, p, train


def test_against_sklearn_and_closed_forms(data, to_xp):
    t, p, train = data
    mae = to_numpy(M.mae(to_xp(t), to_xp(p)))
    rmse = to_numpy(M.rmse(to_xp(t), to_xp(p)))
    mape = to_numpy(M.mape(to_xp(t), to_xp(p)))
    smape = to_numpy(M.smape(to_xp(t), to_xp(p)))
    mase1 = to_numpy(M.mase(to_xp(t), to_xp(p), to_xp(train), 1))
    mase4 = to_numpy(M.mase(to_xp(t), to_xp(p), to_xp(train), 4))
    for i in range(t.shape[0]):
        assert mae[i] == pytest.approx(mean_absolute_error(t[i], p[i]), rel=1e-12)
        assert rmse[i] == pytest.approx(np.sqrt(mean_squared_error(t[i], p[i])), rel=1e-12)
        assert mape[i] == pytest.approx(100 * mean_absolute_percentage_error(t[i], p[i]), rel=1e-12)
        ref = 200 * np.mean(np.abs(t[i] - p[i]) / (np.abs(t[i]) + np.abs(p[i])))
        assert smape[i] == pytest.approx(ref, rel=1e-12)
        s1 = np.mean(np.abs(np.diff(train[i])))
        s4 = np.mean(np.abs(train[i, 4:] - train[i, :-4]))
        assert mase1[i] == pytest.approx(mean_absolute_error(t[i], p[i]) / s1, rel=1e-12)
        assert mase4[i] == pytest.approx(mean_absolute_error(t[i], p[i]) / s4, rel=1e-12)


def test_leading_batch_axes(data):
    t, p, train = data
    a = M.mae(t.reshape(2, 3, 15), p.reshape(2, 3, 15))
    np.testing.assert_allclose(a.ravel(), M.mae(t, p), rtol=1e-14)
    b = M.mase(t.reshape(2, 3, 15), p.reshape(2, 3, 15), train.reshape(2, 3, 40))
    np.testing.assert_allclose(b.ravel(), M.mase(t, p, train), rtol=1e-14)
    assert M.mae(t[0], p[0]).shape == ()


def test_nan_handling_as_documented(data):
    t, p, train = data
    t2, p2 = t.copy(), p.copy()
    t2[0, 3] = np.nan
    p2[1, 5] = np.nan
    t2[2, :] = np.nan
    out = M.all_metrics(t2, p2, train)
    keep0 = np.ones(15, bool)
    keep0[3] = False
    assert out["mae"][0] == pytest.approx(mean_absolute_error(t[0, keep0], p[0, keep0]))
    keep1 = np.ones(15, bool)
    keep1[5] = False
    assert out["rmse"][1] == pytest.approx(np.sqrt(mean_squared_error(t[1, keep1], p[1, keep1])))
    for k in M.METRICS:
        assert np.isnan(out[k][2])
        assert np.all(np.isfinite(np.delete(out[k], 2)))


def test_zero_actuals_and_constant_training():
    t = np.array([[0.0, 2.0, 4.0], [0.0, 0.0, 1.0]])
    p = np.array([[1.0, 1.0, 5.0], [0.0, 1.0, 1.0]])
    mape = M.mape(t, p)
    assert mape[0] == pytest.approx(100 * np.mean([1 / 2, 1 / 4]))  # the zero is left out
    assert mape[1] == pytest.approx(0.0)
    smape = M.smape(t, p)
    assert smape[1] == pytest.approx(200 * np.mean([0.0, 1.0, 0.0]))  # 0/0 counts as 0
    assert np.isnan(M.mase(t, p, np.ones((2, 10)))).all()
    assert np.isnan(M.mape(np.zeros((1, 3)), np.ones((1, 3))))[0]


def test_bad_input():
    with pytest.raises(InvalidInput) as e:
        M.mae(np.ones((2, 3)), np.ones((2, 4)))
    assert e.value.field == "y_pred"
    with pytest.raises(InvalidInput) as e:
        M.rmse(np.ones((2, 0)), np.ones((2, 0)))
    assert e.value.field == "y_true"
    with pytest.raises(InvalidInput) as e:
        M.mae(1.0, 2.0)
    assert e.value.field == "y_true"
    with pytest.raises(InvalidInput) as e:
        M.mase(np.ones((2, 3)), np.ones((2, 3)), np.ones((3, 10)))
    assert e.value.field == "y_train"
    with pytest.raises(InvalidInput) as e:
        M.mase(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 4)), season_length=4)
    assert e.value.field == "y_train"
    with pytest.raises(InvalidInput) as e:
        M.mase_scale(np.ones((2, 8)), season_length=0)
    assert e.value.field == "season_length"


def test_huge_batch(rng):
    t = rng.normal(size=(200_000, 12))
    p = t + 0.5
    np.testing.assert_allclose(M.mae(t, p), 0.5, rtol=1e-12)
    np.testing.assert_allclose(M.rmse(t, p), 0.5, rtol=1e-12)
