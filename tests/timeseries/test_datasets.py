"""Shipped real series: known values, shapes, dates, and no network access while loading."""

from __future__ import annotations

import datetime as dt
import socket

import numpy as np
import pytest

from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries import datasets as D


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a dataset tried to open a network connection")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("name", list(D.DATASETS))
def test_every_dataset_loads_offline_and_is_consistent(name, no_network):
    d = D.load(name)
    assert d["name"] == name
    v = np.asarray(d["values"], dtype=float)
    assert v.ndim == 1 and len(v) > 50 and np.all(np.isfinite(v))
    assert len(d["dates"]) == len(v)
    dates = [dt.date.fromisoformat(s) for s in d["dates"]]
    step = {"MS": 1, "QS": 3, "YS": 12}[d["frequency"]]
    months = [x.year * 12 + x.month for x in dates]
    assert all(x.day == 1 for x in dates)
    assert np.all(np.diff(months) == step)
    assert d["season_length"] == {"MS": 12, "QS": 4, "YS": 1}[d["frequency"]]
    assert d["source"] and d["description"] and d["units"]


def test_airpassengers_known_values():
    d = D.load("AirPassengers")
    v = d["values"]
    assert len(v) == 144 and v[0] == 112 and v[-1] == 432 and sum(v) == 40363
    assert max(v) == 622 and d["dates"][0] == "1949-01-01" and d["dates"][-1] == "1960-12-01"
    assert "Box" in d["source"] and "1976" in d["source"]
    # an independent copy: StatsForecast ships the same series
    from statsforecast.utils import AirPassengers

    np.testing.assert_array_equal(np.asarray(v), AirPassengers)


def test_nile_sunspots_macro_known_values():
    nile = D.load("nile")
    assert nile["values"][0] == 1120 and nile["values"][-1] == 740 and len(nile["values"]) == 100
    assert nile["dates"][0] == "1871-01-01"
    sun = D.load("sunspots")
    assert sun["values"][:2] == [5.0, 11.0] and sun["dates"][-1] == "2008-01-01"
    gdp = D.load("macrodata_realgdp")
    assert gdp["values"][0] == 2710.349 and gdp["dates"][:2] == ["1959-01-01", "1959-04-01"]
    assert gdp["dates"][-1] == "2009-07-01" and len(gdp["values"]) == 203
    assert D.load("macrodata_unemp")["values"][0] == 5.8


def test_co2_monthly_means_against_a_numpy_recomputation():
    """Independent of pandas resampling: interpolate on day numbers, average per month."""
    import statsmodels.datasets.co2 as co2

    w = co2.load_pandas().data["co2"]
    days = np.array([x.toordinal() for x in w.index], dtype=float)
    vals = w.to_numpy(dtype=float)
    ok = np.isfinite(vals)
    filled = np.interp(days, days[ok], vals[ok])
    keys = np.array([x.year * 12 + x.month - 1 for x in w.index])
    uniq = np.unique(keys)
    ref = np.array([filled[keys == k].mean() for k in uniq])
    d = D.load("co2")
    assert len(d["values"]) == len(uniq) == 526
    np.testing.assert_allclose(d["values"], ref, rtol=0, atol=1e-9)
    assert d["dates"][0] == "1958-03-01" and d["dates"][-1] == "2001-12-01"
    assert "59 missing" in d["description"]


def test_unknown_dataset_names_field():
    with pytest.raises(InvalidInput) as e:
        D.load("m4")
    assert e.value.field == "name" and "airpassengers" in e.value.message
