"""Threat prioritisation: formula, monotonicity, strategies, actions, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prism_kernels.errors import InvalidInput
from prism_kernels.pwsa.prioritize import (
    STRATEGIES,
    TYPE_WEIGHTS,
    prioritization_report,
    prioritize,
)
from prism_kernels.pwsa.trajectory import impact

ASSETS = [
    {"name": "base", "position": [0.0, 0.0, 0.0], "radius": 2000.0, "value": 2.0},
    {"name": "port", "position": [80_000.0, 0.0], "value": 1.0},
]


def test_ranking_monotone_in_time_to_impact():
    rng = np.random.default_rng(1)
    ttis = rng.uniform(5, 900, 25)
    threats = [
        {
            "threat_id": f"t{i}",
            "threat_type": "ballistic_missile",
            "confidence": 0.9,
            "time_to_impact": float(t),
        }
        for i, t in enumerate(ttis)
    ]
    for strategy in STRATEGIES:
        ranked = prioritize(threats, strategy=strategy)
        got = [r["time_to_impact"] for r in ranked]
        assert got == sorted(ttis.tolist())
        scores = [r["risk_score"] for r in ranked]
        assert all(a > b for a, b in zip(scores, scores[1:], strict=False))
        assert [r["rank"] for r in ranked] == list(range(1, 26))
    # Same with assets: identical impact points, so only time differs.
    for t in threats:
        t["impact_point"] = [5000.0, 0.0, 0.0]
    ranked = prioritize(threats, ASSETS, "balanced")
    assert [r["time_to_impact"] for r in ranked] == sorted(ttis.tolist())


def test_score_formula_by_hand():
    th = {
        "threat_id": "a",
        "type": "cruise_missile",
        "confidence": 0.7,
        "time_to_impact": 60.0,
        "impact_point": {"position": [10_000.0, 0.0, 0.0], "covariance": [[9e6, 0], [0, 9e6]]},
    }
    (r,) = prioritize([th], ASSETS, "balanced")
    p = STRATEGIES["balanced"]
    u = p["tau"] / (p["tau"] + 60.0)
    ell2 = p["length"] ** 2 + 9e6
    a_base = 1.0 * math.exp(-((10_000 - 2000) ** 2) / (2 * ell2))
    a_port = 0.5 * math.exp(-(70_000**2) / (2 * ell2))
    a = max(a_base, a_port)
    expect = (
        0.7
        * TYPE_WEIGHTS["cruise_missile"]
        * (p["w_urgency"] * u + p["w_asset"] * a)
        / (p["w_urgency"] + p["w_asset"])
    )
    assert r["risk_score"] == pytest.approx(expect, rel=1e-12)
    assert r["components"] == pytest.approx(
        {"urgency": u, "confidence": 0.7, "type_weight": 0.8, "asset_proximity": a}
    )
    assert r["nearest_asset"] == "base" and r["nearest_asset_distance"] == pytest.approx(10_000.0)


def test_strategies_change_the_order():
    urgent_far = {
        "threat_id": "urgent",
        "type": "ballistic_missile",
        "time_to_impact": 20.0,
        "impact_point": [300_000.0, 0.0, 0.0],
    }
    late_close = {
        "threat_id": "close",
        "type": "ballistic_missile",
        "time_to_impact": 400.0,
        "impact_point": [500.0, 0.0, 0.0],
    }
    tc = prioritize([late_close, urgent_far], ASSETS, "time_critical")
    av = prioritize([urgent_far, late_close], ASSETS, "asset_value")
    assert tc[0]["threat_id"] == "urgent"
    assert av[0]["threat_id"] == "close"
    assert av[0]["strategy"] == "asset_value"


def test_impact_from_position_and_velocity():
    th = {
        "threat_id": "x",
        "type": "BallisticMissile",
        "position": [10_000.0, 5_000.0, 60_000.0],
        "velocity": [-900.0, 100.0, -300.0],
    }
    (r,) = prioritize([th], ASSETS)
    ref = impact(np.array([10_000.0, 5_000.0, 60_000.0, -900.0, 100.0, -300.0]))
    assert r["threat_type"] == "ballistic_missile"
    assert r["time_to_impact"] == pytest.approx(float(ref.time))
    np.testing.assert_allclose(r["impact_point"], ref.position)


def test_actions_thresholds_and_interceptors():
    threats = [
        {"threat_id": f"t{i}", "type": "hypersonic", "confidence": 1.0, "time_to_impact": 1.0 + i}
        for i in range(4)
    ]
    threats.append(
        {"threat_id": "clutter", "type": "clutter", "confidence": 1.0, "time_to_impact": 1.0}
    )
    threats.append({"threat_id": "plane", "type": "aircraft", "confidence": 0.9})
    ranked = prioritize(threats, strategy="time_critical", interceptors_available=2)
    acts = {r["threat_id"]: r["recommended_action"] for r in ranked}
    assert [acts[f"t{i}"] for i in range(4)] == ["engage", "engage", "track", "track"]
    assert acts["clutter"] == "monitor" and acts["plane"] == "monitor"
    by_id = {r["threat_id"]: r for r in ranked}
    assert by_id["clutter"]["risk_score"] == 0.0 and by_id["plane"]["components"]["urgency"] == 0.0
    report = prioritization_report(threats, strategy="TimeCritical", interceptors_available=2)
    assert (
        report["strategy_used"] == "time_critical"
        and report["total_threats"] == 6
        and report["engage_count"] == 2
    )
    assert report["engageable_threats"] == 4


def test_engagement_range_and_time():
    th = [
        {
            "threat_id": "a",
            "type": "ballistic_missile",
            "position": [500_000.0, 0.0, 50_000.0],
            "time_to_impact": 5.0,
            "impact_point": [0, 0, 0],
        }
    ]
    far = prioritize(th, ASSETS, "time_critical", max_engagement_range=100_000.0)
    assert not far[0]["engageable"] and far[0]["recommended_action"] == "track"
    late = prioritize(th, ASSETS, "time_critical", min_engagement_time=30.0)
    assert not late[0]["engageable"]
    ok = prioritize(th, ASSETS, "time_critical", max_engagement_range=600_000.0)
    assert ok[0]["recommended_action"] == "engage"


def test_no_threats_and_invalid_inputs():
    assert prioritize([], ASSETS) == []
    assert prioritization_report([], None)["total_threats"] == 0
    good = {"threat_id": "a", "type": "ballistic_missile", "time_to_impact": 10.0}
    for bad in (
        {**good, "confidence": 1.5},
        {**good, "type": "starship"},
        {**good, "time_to_impact": -1.0},
        {**good, "time_to_impact": float("nan")},
        {**good, "impact_point": [1.0]},
    ):
        with pytest.raises(InvalidInput):
            prioritize([bad])
    with pytest.raises(InvalidInput):
        prioritize([good], strategy="random")
    with pytest.raises(InvalidInput):
        prioritize([good], [{"name": "x"}])
    with pytest.raises(InvalidInput):
        prioritize([good], weights={"w_magic": 1.0})
    with pytest.raises(InvalidInput):
        prioritize([good], engage_threshold=0.2, track_threshold=0.5)
    with pytest.raises(InvalidInput):
        prioritize(["not a dict"])
