"""LSTM and GRU: deterministic for a seed, better than naive on a clean seasonal sine,
split-conformal intervals whose held-out coverage is near nominal, bad input."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from prism_kernels.backend import to_numpy  # noqa: E402
from prism_kernels.errors import InvalidInput  # noqa: E402
from prism_kernels.timeseries.baselines import naive  # noqa: E402
from prism_kernels.timeseries.recurrent import gru, lstm  # noqa: E402


def _sines(seed, B, n, noise=0.3):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.stack(
        [
            10 + 3 * np.sin(2 * np.pi * t / 12 + rng.uniform(0, 6)) + rng.normal(0, noise, n)
            for _ in range(B)
        ]
    )


@pytest.mark.slow
@pytest.mark.parametrize("fn", [lstm, gru])
def test_deterministic_and_beats_naive(fn):
    import torch

    y = _sines(0, 10, 212)
    train, test = y[:, :200], y[:, 200:]
    state = torch.random.get_rng_state()
    a = fn(train, 12, season_length=12, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
    b = fn(train, 12, season_length=12, seed=3)
    for k in ("mean", "lower", "upper", "fitted"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    c = fn(train, 12, season_length=12, seed=4)
    assert not np.array_equal(a.mean, c.mean)
    mae = np.abs(a.mean - test).mean()
    mae_naive = np.abs(naive(train, 12).mean - test).mean()
    assert mae < 0.5 * mae_naive  # observed: ~0.33 vs 2.43
    assert a.models[0]["calibration_errors_per_step"] == 10 * (40 - 12 + 1)
    assert np.all(a.lower < a.mean) and np.all(a.mean < a.upper)


@pytest.mark.slow
def test_conformal_coverage_on_held_out_data():
    """95 % split-conformal GRU intervals on 40 seeded noisy sines (n = 200): the 480
    held-out future values (12 steps x 40 series) are covered 90-99 %."""
    y = _sines(1, 40, 212, noise=0.5)
    f = gru(y[:, :200], 12, season_length=12, epochs=15)
    inside = (y[:, 200:] >= f.lower) & (y[:, 200:] <= f.upper)
    assert 0.90 <= inside.mean() <= 0.99


def test_conformal_quantile_is_the_calibration_order_statistic():
    y = _sines(2, 4, 120)
    f = lstm(y, 5, level=0.8, season_length=12, epochs=3, calibration=30)
    q = np.array(f.models[0]["conformal_quantile_sd_units"])
    sd = np.array([m["scale"]["sd"] for m in f.models])
    np.testing.assert_allclose(f.upper - f.mean, q[None, :] * sd[:, None], rtol=1e-9)
    assert f.models[0]["calibration_errors_per_step"] == 4 * 26


def test_torch_input_gives_torch_output(to_xp, xp_name):
    y = _sines(3, 3, 80)
    a = gru(y, 4, epochs=2, seed=1)
    b = gru(to_xp(y), 4, epochs=2, seed=1)
    np.testing.assert_array_equal(to_numpy(b.mean), a.mean)
    assert type(b.mean) is type(to_xp(y))


def test_bad_input():
    y = _sines(4, 2, 60)
    for kw, field in [
        (dict(hidden=0), "hidden"),
        (dict(epochs=0), "epochs"),
        (dict(lr=2.0), "lr"),
        (dict(lookback=50), "values"),
        (dict(calibration=2), "calibration"),
        (dict(calibration=20, level=0.999), "calibration"),
        (dict(seed=-1), "seed"),
    ]:
        with pytest.raises(InvalidInput) as e:
            lstm(y, 4, **{"epochs": 1, **kw})
        assert e.value.field == field, kw
    with pytest.raises(InvalidInput) as e:
        gru(np.arange(5.0), 2)
    assert e.value.field == "values"
    with pytest.raises(InvalidInput) as e:
        gru(np.r_[np.arange(30.0), np.inf], 2)
    assert e.value.field == "values"
    with pytest.raises(InvalidInput) as e:
        gru(y, 0)
    assert e.value.field == "horizon"
