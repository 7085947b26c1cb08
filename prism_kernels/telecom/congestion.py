"""Congestion analysis: utilisation per link and node, hot spots, health, and recommendations
computed from the model.

Loads come either from demands routed by IGP with ECMP (:mod:`~prism_kernels.telecom.routing`)
or, without demands, from the utilisations and node loads the topology reports.

Utilisation: a link's is that of its busier direction (load / capacity); a node's is the
traffic it handles (arriving plus originated) over its switching capacity when it has one,
else the largest utilisation among its links.

Health: each link and each node with a utilisation scores 1 at or below the threshold, falls
linearly to 0 at full utilisation and stays 0 above it; ``overall_health`` is the mean score.
So a network with every element at or below the threshold has health 1, and one element at
100 % among ten otherwise idle ones has 0.9.

Recommendations (only when something is above the threshold), each with the maximum link
utilisation it would give, best first; one that would not lower the maximum by at least
:data:`MIN_GAIN` is left out:

- ``upgrade_link``: multiply a hot link's capacity by ``upgrade_factor``; with routing
  unchanged (IGP metrics do not depend on capacity) the new maximum is exact;
  ``upgrade_links`` does it for every hot link at once;
- ``reroute_demand`` (with demands): move one demand that crosses the hottest link onto
  its best alternative among its k shortest paths that avoid it (an explicit path, as an
  RSVP-TE or SR policy would pin);
- ``rebalance`` (with demands): re-optimise every route for the least maximum utilisation
  (:func:`prism_kernels.telecom.te.required_utilization`): the lowest maximum any routing
  reaches on this topology.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prism_kernels.errors import InvalidInput
from prism_kernels.telecom import te
from prism_kernels.telecom.paths import k_shortest_paths, path_arcs
from prism_kernels.telecom.routing import igp_routing, link_utilization, node_throughput
from prism_kernels.telecom.topology import Demands, Topology

MIN_GAIN = 0.005
"""A recommendation must lower the maximum utilisation by half a percentage point at least."""


@dataclass
class CongestionReport:
    """What :func:`analyse` returns (host values).

    Attributes
    ----------
    link_load, link_utilization : ``(m,)`` the busier direction's load and utilisation.
    arc_load : ``(n_arcs,)`` (None when loads were reported, not routed).
    node_load, node_utilization : ``(n,)`` traffic handled and utilisation (see module).
    congested_links, congested_nodes : indices at or above ``threshold``.
    max_utilization : the largest link utilisation.
    overall_health : 0..1 (module docstring).
    recommendations : dicts ``{action, text, max_utilization_before, max_utilization_after,
        ...}``, best first.
    source : ``"demands"`` (routed) or ``"reported"`` (the topology's own utilisations).
    """

    link_load: np.ndarray
    link_utilization: np.ndarray
    arc_load: np.ndarray | None
    node_load: np.ndarray
    node_utilization: np.ndarray
    congested_links: list[int]
    congested_nodes: list[int]
    max_utilization: float
    overall_health: float
    threshold: float
    source: str
    recommendations: list[dict[str, Any]] = field(default_factory=list)


def health_score(u: np.ndarray, threshold: float) -> np.ndarray:
    """Per element: 1 at or below ``threshold``, linear to 0 at 1, 0 above."""
    u = np.asarray(u, dtype=np.float64)
    return np.where(u <= threshold, 1.0, np.clip((1.0 - u) / (1.0 - threshold), 0.0, 1.0))


def analyse(
    topo: Topology,
    demands: Demands | None = None,
    threshold: float = 0.8,
    metric: str = "latency",
    ecmp: bool = True,
    upgrade_factor: float = 2.0,
    k_alternatives: int = 4,
    max_recommendations: int = 6,
) -> CongestionReport:
    """Utilisation, hot spots, health and recommendations (module docstring)."""
    if not 0 < threshold < 1:
        raise InvalidInput("threshold", f"must be within (0, 1); got {threshold}")
    if not upgrade_factor > 1:
        raise InvalidInput("upgrade_factor", "must be > 1")
    arc_load = None
    if demands is not None and len(demands):
        routing = igp_routing(topo, demands, metric, ecmp=ecmp)
        arc_load = np.asarray(routing.loads(demands.volume))
        link_load, link_u = link_utilization(topo, arc_load)
        handled = node_throughput(topo, arc_load, demands)
        source = "demands"
    else:
        routing = None
        link_u = np.nan_to_num(topo.link_utilization, nan=0.0)
        link_load = link_u * topo.capacity
        handled = topo.node_load.copy()
        source = "reported"
    node_u = node_utilization(topo, link_u, handled)
    thr = threshold
    hot_links = [int(k) for k in np.argsort(-link_u, kind="stable") if link_u[k] >= thr]
    hot_nodes = [int(v) for v in np.argsort(-node_u, kind="stable") if node_u[v] >= thr]
    scores = np.concatenate(
        [health_score(link_u, thr), health_score(node_u[np.isfinite(node_u)], thr)]
    )
    report = CongestionReport(
        link_load=link_load,
        link_utilization=link_u,
        arc_load=arc_load,
        node_load=handled,
        node_utilization=node_u,
        congested_links=hot_links,
        congested_nodes=hot_nodes,
        max_utilization=float(link_u.max()) if link_u.size else 0.0,
        overall_health=float(scores.mean()) if scores.size else 1.0,
        threshold=thr,
        source=source,
    )
    if hot_links:
        recs = _upgrades(topo, link_load, link_u, hot_links, upgrade_factor)
        if routing is not None:
            recs += _reroutes(
                topo, demands, routing, arc_load, hot_links[0], k_alternatives, metric
            )
            recs += _rebalance(topo, demands, report.max_utilization)
        recs.sort(key=lambda r: (r["max_utilization_after"], r["action"]))
        report.recommendations = recs[:max_recommendations]
    return report


def node_utilization(topo: Topology, link_u: np.ndarray, handled: np.ndarray) -> np.ndarray:
    """``(n,)`` traffic handled over switching capacity, or the busiest link's utilisation
    for a node without a capacity (module docstring)."""
    worst_link = np.zeros(topo.n)
    np.maximum.at(worst_link, topo.link_src, link_u)
    np.maximum.at(worst_link, topo.link_dst, link_u)
    cap = topo.node_capacity
    with np.errstate(invalid="ignore", divide="ignore"):
        own = handled / cap
    return np.where(np.isfinite(cap) & (cap > 0), own, worst_link)


def _fmt(u: float) -> str:
    return f"{100 * u:.1f} %"


def _upgrades(
    topo: Topology, load: np.ndarray, u: np.ndarray, hot: list[int], factor: float
) -> list[dict[str, Any]]:
    before = float(u.max())
    unit = str(topo.meta.get("unit", "Gbps"))
    out = []
    if len(hot) > 1:  # every hot link at once
        u_all = u.copy()
        u_all[hot] = load[hot] / (topo.capacity[hot] * factor)
        out.append(
            {
                "action": "upgrade_links",
                "links": [topo.link_ids[k] for k in hot],
                "max_utilization_before": before,
                "max_utilization_after": float(u_all.max()),
                "text": (
                    f"Upgrade all {len(hot)} congested links by x{factor:g}: maximum link "
                    f"utilisation {_fmt(before)} -> {_fmt(float(u_all.max()))}"
                ),
            }
        )
    for k in hot[:4]:
        u_new = u.copy()
        u_new[k] = load[k] / (topo.capacity[k] * factor)
        after = float(u_new.max())
        if after > before - MIN_GAIN:
            continue  # alone it does not lower the maximum
        cap0, cap1 = float(topo.capacity[k]), float(topo.capacity[k] * factor)
        out.append(
            {
                "action": "upgrade_link",
                "link": topo.link_ids[k],
                "capacity_before": cap0,
                "capacity_after": cap1,
                "capacity_for_threshold": float(load[k]),
                "max_utilization_before": before,
                "max_utilization_after": after,
                "text": (
                    f"Upgrade link {topo.link_name(k)} from {cap0:g} to {cap1:g} {unit}: maximum "
                    f"link utilisation {_fmt(before)} -> {_fmt(after)}"
                ),
            }
        )
    return out


def _reroutes(
    topo: Topology,
    demands: Demands,
    routing: Any,
    arc_load: np.ndarray,
    hot: int,
    k_paths: int,
    metric: str,
) -> list[dict[str, Any]]:
    hot_arcs = topo.arcs_of_links([hot])
    cap = topo.arc_capacity
    before = float((arc_load / cap).max())
    R = routing.sparse().tocsc()
    on_hot = R[:, hot_arcs]
    share = np.asarray(on_hot.sum(axis=1)).ravel() * demands.volume
    cands = [int(d) for d in np.argsort(-share, kind="stable")[:8] if share[d] > 0]
    best: list[dict[str, Any]] = []
    Rr = routing.sparse()
    names = topo.node_ids
    for d in cands:
        row = Rr[[d]]
        base = arc_load - demands.volume[d] * np.asarray(row.toarray()).ravel()
        top = None
        for path, length in k_shortest_paths(
            topo, int(demands.src[d]), int(demands.dst[d]), k_paths, metric
        ):
            arcs = path_arcs(topo, path, metric)
            if np.intersect1d(arcs, hot_arcs).size:
                continue
            new = base.copy()
            new[arcs] += demands.volume[d]
            after = float((new / cap).max())
            if top is None or after < top[0]:
                top = (after, path, length)
        if top is not None and top[0] < before - MIN_GAIN:
            after, path, _ = top
            best.append(
                {
                    "action": "reroute_demand",
                    "link": topo.link_ids[hot],
                    "demand": demands.ids[d],
                    "path": [names[v] for v in path],
                    "bandwidth": float(demands.volume[d]),
                    "max_utilization_before": before,
                    "max_utilization_after": after,
                    "text": (
                        f"Move demand {demands.ids[d]} ({names[demands.src[d]]} -> "
                        f"{names[demands.dst[d]]}, {demands.volume[d]:.3g}) off link "
                        f"{topo.link_name(hot)} onto {' - '.join(names[v] for v in path)}: maximum "
                        f"link utilisation {_fmt(before)} -> {_fmt(after)}"
                    ),
                }
            )
    best.sort(key=lambda r: r["max_utilization_after"])
    return best[:3]


def _rebalance(topo: Topology, demands: Demands, before: float) -> list[dict[str, Any]]:
    alpha = te.required_utilization(topo, demands)
    if alpha is None or alpha > before - MIN_GAIN:
        return []
    return [
        {
            "action": "rebalance",
            "max_utilization_before": before,
            "max_utilization_after": float(alpha),
            "text": (
                f"Re-optimise all routes for balanced load (traffic engineering): maximum link "
                f"utilisation {_fmt(before)} -> {_fmt(alpha)}"
            ),
        }
    ]
