"""Threat prioritisation: a documented risk score, a ranking and a recommended action.

For each threat ``i``, four components in [0, 1]:

* ``urgency u = tau / (tau + t_i)``, ``t_i`` the time to impact (s) and ``tau`` the
  strategy's time scale (``u = 1`` at impact, ``1/2`` at ``t = tau``; 0 when the threat has
  no impact time, e.g. an aircraft). Strictly decreasing in time to impact.
* ``confidence c``: the classifier's (or caller's) probability that the type is right.
* ``type weight w``: :data:`TYPE_WEIGHTS` (1 for ballistic and glide vehicles, 0.8 cruise,
  0.3 aircraft, 0.5 unknown, 0.1 decoy, 0 clutter...).
* ``asset proximity a = max_k (v_k / v_max) exp(-max(d_k - r_k, 0)^2 / (2 L_k^2))`` over
  defended assets ``k`` (position, radius ``r_k`` default 0, value ``v_k`` default 1),
  ``d_k`` the horizontal distance from the predicted impact point to the asset and
  ``L_k^2 = L^2 + sigma_impact^2`` (``L`` the strategy's length scale, ``sigma_impact`` the
  RMS impact uncertainty when known). Without assets, or without an impact point, the term
  is absent (not zero): its weight is dropped and the others renormalised.

``risk_score = c * w * (W_u u + W_a a) / (W_u + W_a)`` with strategy weights ``W``
(:data:`STRATEGIES`). A threat must both be believed (``c``) and be of a dangerous kind
(``w``); the strategy decides how much time pressure versus asset exposure matters.

``recommended_action``: ``"engage"`` when ``risk >= engage_threshold`` (0.6) and the threat
is engageable (interceptors left in rank order, inside ``max_engagement_range`` of an
asset when both are known, time to impact at least ``min_engagement_time``); ``"track"``
when ``risk >= track_threshold`` (0.3) or engage was ruled out; else ``"monitor"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from prism_kernels.errors import InvalidInput
from prism_kernels.pwsa.detection import normalize_type
from prism_kernels.pwsa.trajectory import G0

TYPE_WEIGHTS: dict[str, float] = {
    "ballistic_missile": 1.0,
    "hypersonic_glide_vehicle": 1.0,
    "cruise_missile": 0.8,
    "aircraft": 0.3,
    "unknown": 0.5,
    "decoy": 0.1,
    "satellite": 0.05,
    "space_debris": 0.05,
    "clutter": 0.0,
    "none": 0.0,
}

#: Strategy parameters: component weights ``w_urgency``, ``w_asset``, time scale ``tau``
#: (s) and impact-distance scale ``length`` (m).
STRATEGIES: dict[str, dict[str, float]] = {
    "balanced": {"w_urgency": 0.5, "w_asset": 0.5, "tau": 120.0, "length": 50_000.0},
    "time_critical": {"w_urgency": 0.8, "w_asset": 0.2, "tau": 60.0, "length": 50_000.0},
    "asset_value": {"w_urgency": 0.2, "w_asset": 0.8, "tau": 180.0, "length": 30_000.0},
    "time_weighted_risk": {"w_urgency": 0.7, "w_asset": 0.3, "tau": 120.0, "length": 50_000.0},
}


def _strategy_name(name: Any) -> str:
    if not isinstance(name, str):
        raise InvalidInput("strategy", f"expected one of {', '.join(STRATEGIES)}")
    s = (
        "".join("_" + c.lower() if c.isupper() else c for c in name.strip())
        .lstrip("_")
        .replace("-", "_")
    )
    if s not in STRATEGIES:
        raise InvalidInput(
            "strategy", f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}"
        )
    return s


def _vec(val: Any, field: str, n: int = 3) -> np.ndarray:
    try:
        a = np.asarray(val, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, f"expected {n} numbers") from exc
    if a.size == 2 and n == 3:
        a = np.array([a[0], a[1], 0.0])
    if a.size != n or not np.all(np.isfinite(a)):
        raise InvalidInput(field, f"expected {n} finite numbers")
    return a


def _num(val: Any, field: str, lo: float | None = None, hi: float | None = None) -> float:
    try:
        x = float(val)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, "expected a number") from exc
    if not math.isfinite(x) or (lo is not None and x < lo) or (hi is not None and x > hi):
        rng = (
            f" in [{lo}, {hi}]"
            if lo is not None and hi is not None
            else (f" >= {lo}" if lo is not None else "")
        )
        raise InvalidInput(field, f"expected a finite number{rng}")
    return x


def _impact_of(th: Mapping[str, Any], i: int) -> tuple[np.ndarray | None, float | None, float]:
    """Impact point, time to impact and RMS impact sigma from the threat's fields."""
    pt = None
    tti = None
    sig = 0.0
    imp = th.get("impact_point")
    if isinstance(imp, Mapping):
        if imp.get("position") is not None:
            pt = _vec(imp["position"], f"threats.{i}.impact_point.position")
        cov = imp.get("covariance")
        if cov is not None:
            c = np.asarray(cov, dtype=np.float64)
            if c.shape != (2, 2) or not np.all(np.isfinite(c)):
                raise InvalidInput(
                    f"threats.{i}.impact_point.covariance", "expected a finite 2x2 covariance"
                )
            sig = math.sqrt(max(float(np.trace(c)) / 2.0, 0.0))
    elif imp is not None:
        pt = _vec(imp, f"threats.{i}.impact_point")
    if th.get("time_to_impact") is not None:
        tti = _num(th["time_to_impact"], f"threats.{i}.time_to_impact", lo=0.0)
    pos, vel = th.get("position"), th.get("velocity")
    if (pt is None or tti is None) and pos is not None and vel is not None and np.size(vel) == 3:
        p = _vec(pos, f"threats.{i}.position")
        v = _vec(vel, f"threats.{i}.velocity")
        if p[2] >= 0:
            # Drag-free ballistic impact (closed form, as trajectory.impact).
            t_hit = (v[2] + math.sqrt(v[2] * v[2] + 2.0 * G0 * p[2])) / G0
            if pt is None:
                pt = np.array([p[0] + v[0] * t_hit, p[1] + v[1] * t_hit, 0.0])
            if tti is None:
                tti = t_hit
    return pt, tti, sig


def prioritize(
    threats: Sequence[Mapping[str, Any]],
    assets: Sequence[Mapping[str, Any]] | None = None,
    strategy: str = "balanced",
    *,
    engage_threshold: float = 0.6,
    track_threshold: float = 0.3,
    interceptors_available: int | None = None,
    max_engagement_range: float | None = None,
    min_engagement_time: float = 0.0,
    weights: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Rank ``threats`` by risk (see the module docstring for the formula).

    Parameters
    ----------
    threats : list of dict
        ``threat_id`` (or ``id``), ``threat_type`` (or ``type``; snake_case, PascalCase or an
        alias), ``confidence`` in [0, 1] (default 1), and any of ``time_to_impact`` (s),
        ``impact_point`` (``[x, y, z]`` or ``{position, covariance}``), ``position`` and a
        3-vector ``velocity`` (used for a drag-free ballistic impact when the impact is not
        given). A scalar ``velocity`` is carried through untouched.
    assets : list of dict, optional
        ``name``, ``position`` ([x, y] or [x, y, z], m), ``radius`` (m, default 0),
        ``value`` (> 0, default 1).
    strategy : str
        One of :data:`STRATEGIES`; ``weights`` overrides its entries.
    interceptors_available, max_engagement_range, min_engagement_time
        Engagement limits for ``"engage"`` (see the module docstring).

    Returns
    -------
    list of dict
        Ranked (``rank`` 1 first, ties broken by shorter time to impact then input order):
        ``threat_id``, ``threat_type``, ``risk_score``, ``components``, ``time_to_impact``,
        ``impact_point``, ``nearest_asset``, ``nearest_asset_distance``, ``engageable``,
        ``recommended_action``, ``strategy``.
    """
    name = _strategy_name(strategy)
    par = dict(STRATEGIES[name])
    if weights:
        for k, v in weights.items():
            if k not in par:
                raise InvalidInput(
                    f"weights.{k}", f"unknown weight; expected one of {', '.join(par)}"
                )
            par[k] = _num(v, f"weights.{k}", lo=0.0)
    if par["tau"] <= 0 or par["length"] <= 0:
        raise InvalidInput("weights", "tau and length must be positive")
    if par["w_urgency"] + par["w_asset"] <= 0:
        raise InvalidInput("weights", "w_urgency + w_asset must be positive")
    engage_threshold = _num(engage_threshold, "engage_threshold", 0.0, 1.0)
    track_threshold = _num(track_threshold, "track_threshold", 0.0, 1.0)
    if track_threshold > engage_threshold:
        raise InvalidInput("track_threshold", "track_threshold must not exceed engage_threshold")
    if interceptors_available is not None:
        interceptors_available = int(_num(interceptors_available, "interceptors_available", lo=0.0))
    if max_engagement_range is not None:
        max_engagement_range = _num(max_engagement_range, "max_engagement_range", lo=0.0)
    min_engagement_time = _num(min_engagement_time, "min_engagement_time", lo=0.0)
    if threats is None:
        raise InvalidInput("threats", "expected a list of threats")

    parsed_assets = []
    for k, a in enumerate(assets or []):
        if not isinstance(a, Mapping) or a.get("position") is None:
            raise InvalidInput(f"assets.{k}", "each asset needs a position")
        parsed_assets.append(
            {
                "name": str(a.get("name", f"asset-{k}")),
                "position": _vec(a["position"], f"assets.{k}.position"),
                "radius": _num(a.get("radius", 0.0), f"assets.{k}.radius", lo=0.0),
                "value": _num(a.get("value", 1.0), f"assets.{k}.value", lo=0.0),
            }
        )
    vmax = max([a["value"] for a in parsed_assets], default=0.0)
    if parsed_assets and vmax <= 0:
        raise InvalidInput("assets", "at least one asset needs a positive value")

    rows = []
    for i, th in enumerate(threats):
        if not isinstance(th, Mapping):
            raise InvalidInput(f"threats.{i}", "each threat must be an object")
        tid = th.get("threat_id", th.get("id", f"threat-{i}"))
        typ = normalize_type(
            th.get("threat_type", th.get("type", "unknown")), f"threats.{i}.threat_type"
        )
        conf = _num(th.get("confidence", 1.0), f"threats.{i}.confidence", 0.0, 1.0)
        pt, tti, sig = _impact_of(th, i)
        urg = par["tau"] / (par["tau"] + tti) if tti is not None else 0.0
        prox = None
        nearest, nearest_d = None, None
        if parsed_assets and pt is not None:
            best = -1.0
            for a in parsed_assets:
                d = float(np.hypot(*(pt[:2] - a["position"][:2])))
                ell2 = par["length"] ** 2 + sig**2
                p = (a["value"] / vmax) * math.exp(-(max(d - a["radius"], 0.0) ** 2) / (2 * ell2))
                if nearest_d is None or d < nearest_d:
                    nearest, nearest_d = a["name"], d
                best = max(best, p)
            prox = best
        tw = TYPE_WEIGHTS[typ]
        if prox is None:
            mix = urg
        else:
            mix = (par["w_urgency"] * urg + par["w_asset"] * prox) / (
                par["w_urgency"] + par["w_asset"]
            )
        risk = conf * tw * mix
        engageable = tti is not None and tti >= min_engagement_time and tw > 0
        if (
            engageable
            and max_engagement_range is not None
            and parsed_assets
            and th.get("position") is not None
        ):
            pos = _vec(th["position"], f"threats.{i}.position")
            rng_min = min(float(np.linalg.norm(pos - a["position"])) for a in parsed_assets)
            engageable = rng_min <= max_engagement_range
        row = {
            "threat_id": tid,
            "threat_type": typ,
            "risk_score": float(risk),
            "components": {
                "urgency": float(urg),
                "confidence": conf,
                "type_weight": tw,
                "asset_proximity": None if prox is None else float(prox),
            },
            "time_to_impact": tti,
            "impact_point": None if pt is None else [float(v) for v in pt],
            "nearest_asset": nearest,
            "nearest_asset_distance": nearest_d,
            "engageable": bool(engageable),
            "strategy": name,
            "_order": i,
        }
        if "velocity" in th and np.size(th["velocity"]) == 1:
            row["velocity"] = th["velocity"]
        rows.append(row)

    rows.sort(
        key=lambda r: (
            -r["risk_score"],
            r["time_to_impact"] if r["time_to_impact"] is not None else math.inf,
            r["_order"],
        )
    )
    left = interceptors_available
    for rank, r in enumerate(rows, start=1):
        r.pop("_order")
        r["rank"] = rank
        action = "monitor"
        if r["risk_score"] >= engage_threshold and r["engageable"] and (left is None or left > 0):
            action = "engage"
            if left is not None:
                left -= 1
        elif r["risk_score"] >= track_threshold:
            action = "track"
        r["recommended_action"] = action
    return rows


def prioritization_report(
    threats: Sequence[Mapping[str, Any]],
    assets: Sequence[Mapping[str, Any]] | None = None,
    strategy: str = "balanced",
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`prioritize` wrapped as the original notebook's response: ``prioritized_threats``,
    ``strategy_used``, ``total_threats``, ``engageable_threats`` (count engageable) and
    ``engage_count`` (count recommended ``engage``)."""
    ranked = prioritize(threats, assets, strategy, **kwargs)
    return {
        "prioritized_threats": ranked,
        "strategy_used": _strategy_name(strategy),
        "total_threats": len(ranked),
        "engageable_threats": sum(1 for r in ranked if r["engageable"]),
        "engage_count": sum(1 for r in ranked if r["recommended_action"] == "engage"),
    }
