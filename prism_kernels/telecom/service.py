"""The telecom service: the managed network (the state) and thin calls into the kernels.

State, in :class:`~prism_kernels.service.Collection` s (so it survives a restart):

- ``network``: the managed topology (one document: the topology, its traffic demands, where
  they come from, and the state of each link from the last routing computed on it);
- ``node``: per-node state (load, utilisation, packet loss, latency, status), from the last
  routing on the managed topology;
- ``optimization``: the last optimisations (newest first).

At first start the managed network is the shipped Abilene backbone with a gravity traffic
matrix (:mod:`~prism_kernels.telecom.traffic`, no noise) scaled so that IGP routing runs its
busiest link at :data:`DEFAULT_PEAK` utilisation; ``demand_source`` says so.

Every analysis (``optimize``, ``congestion``, ``failures``, ``max_flow``, ``metrics``) takes an
explicit topology (a ``NetworkTopology``-shaped document, see
:func:`~prism_kernels.telecom.topology.from_dict`) or works on the managed one. A computation
on the managed network updates its link and node state; a link whose utilisation reaches the
threshold (it was below) publishes ``NetworkCongestion``.

Units: bandwidths and volumes in the topology's unit (Gbps for the shipped backbones),
latencies in ms, utilisations and packet loss as fractions.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from prism_kernels.errors import InvalidInput
from prism_kernels.service import TIMING_KEY, DomainService
from prism_kernels.telecom import congestion as _congestion
from prism_kernels.telecom import failures as _failures
from prism_kernels.telecom import flow as _flow
from prism_kernels.telecom import metrics as _metrics
from prism_kernels.telecom import te as _te
from prism_kernels.telecom import topology as _topo
from prism_kernels.telecom import traffic as _traffic
from prism_kernels.telecom.paths import path_latency, shortest_path
from prism_kernels.telecom.routing import (
    demand_paths,
    igp_routing,
    link_utilization,
    node_throughput,
)
from prism_kernels.telecom.topology import Demands, Topology

MANAGED = "managed"
DEFAULT_BACKBONE = "abilene"
DEFAULT_PEAK = 0.5  # IGP utilisation of the busiest link under the default traffic matrix
DEFAULT_THRESHOLD = 0.8
MAX_PATHS_PER_DEMAND = 16


def _now() -> int:
    return int(time.time())


class TelecomService(DomainService):
    """The managed network, with routing, traffic engineering, failures and max flow.

    Parameters
    ----------
    store, bus : see :class:`~prism_kernels.service.DomainService`.
    threshold : link utilisation at which a link counts as congested (and an event fires).
    max_optimizations : optimisations kept (the oldest dropped first).
    """

    domain = "telecom"
    events = ("NetworkCongestion",)

    def __init__(
        self,
        store: Any = None,
        bus: Any = None,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        max_optimizations: int = 200,
    ) -> None:
        super().__init__(store, bus)
        self.threshold = float(threshold)
        self.network = self.collection("network", max_items=4, label="topology")
        self.nodes = self.collection("node", max_items=100_000, label="node")
        self.optimizations = self.collection(
            "optimization", max_items=int(max_optimizations), label="optimization"
        )
        self._cache: tuple[float, Topology, Demands] | None = None

    # ------------------------------------------------------------------ the managed network

    def _managed_doc(self) -> dict[str, Any]:
        with self.lock:
            if not self.network.exists(MANAGED):
                self._install(_topo.load_backbone(DEFAULT_BACKBONE), None, "default")
            return self.network.get(MANAGED)

    def managed(self) -> tuple[Topology, Demands]:
        """The managed topology and its demands (built once per stored version)."""
        doc = self._managed_doc()
        if self._cache is not None and self._cache[0] == doc["version"]:
            return self._cache[1], self._cache[2]
        topo = _topo.from_dict(doc["topology"], field="topology")
        dem = _topo.demands_from_records(topo, doc["demands"], field="traffic_demands")
        self._cache = (doc["version"], topo, dem)
        return topo, dem

    def _install(self, topo: Topology, demands: Demands | None, how: str) -> None:
        """Store ``topo`` as the managed network (validated already), with ``demands`` or the
        default gravity matrix, and its IGP state."""
        if demands is None:
            M = _traffic.scale_to_utilization(
                topo, _traffic.gravity_matrix(topo, 1.0), DEFAULT_PEAK
            )
            demands = _topo.demands_from_matrix(topo, M)
            source = (
                f"gravity model (node mass = attached capacity, no noise), scaled so IGP routing "
                f"runs the busiest link at {DEFAULT_PEAK:.0%}"
            )
        else:
            source = "given"
        doc = {
            "topology": topo.to_dict() | {k: v for k, v in topo.meta.items() if k != "backbone"},
            "backbone": topo.meta.get("backbone"),
            "demands": self._demand_records(topo, demands),
            "demand_source": source,
            "version": time.time(),
            "updated": _now(),
            "how": how,
            "link_state": {},
            "routing": "igp",
        }
        for nid in self.nodes.ids():
            self.nodes.delete(nid)
        self.network.put(MANAGED, doc)
        self._cache = None
        routing = igp_routing(topo, demands)
        load = np.asarray(routing.loads(demands.volume))
        lat = np.asarray(routing.latency_ms)
        self._record_state(topo, demands, load, lat, "igp")

    @staticmethod
    def _demand_records(topo: Topology, d: Demands) -> list[dict[str, Any]]:
        names = topo.node_ids
        return [
            {
                "id": d.ids[i],
                "source": names[d.src[i]],
                "destination": names[d.dst[i]],
                "bandwidth_required": float(d.volume[i]),
                "priority": int(d.priority[i]),
            }
            for i in range(len(d))
        ]

    def topology(self) -> dict[str, Any]:
        """The managed topology: ``{name, directed, unit, nodes, links, traffic_demands,
        demand_source, backbone, source, licence, set_here, link_state, routing, updated}``."""
        doc = self._managed_doc()
        t = dict(doc["topology"])
        t.update(
            traffic_demands=doc["demands"],
            demand_source=doc["demand_source"],
            backbone=doc.get("backbone"),
            link_state=doc.get("link_state", {}),
            routing=doc.get("routing", "igp"),
            updated=doc["updated"],
        )
        return t

    def replace_topology(
        self,
        topology: Mapping[str, Any] | Topology | None = None,
        demands: Sequence[Mapping[str, Any]] | None = None,
        backbone: str | None = None,
    ) -> dict[str, Any]:
        """Replace the managed network by ``topology`` (a document or a Topology) or a shipped
        ``backbone``, with ``demands`` (records) or the default gravity matrix. Validates
        everything before storing; returns :meth:`topology`."""
        if (topology is None) == (backbone is None):
            raise InvalidInput("topology", "give a topology or a backbone (abilene, geant)")
        topo = (
            _topo.load_backbone(backbone) if backbone is not None else self._as_topology(topology)
        )
        dem = None if demands is None else _topo.demands_from_records(topo, demands)
        with self.timed("replace_topology"), self.lock:
            self._install(topo, dem, "replaced")
        return self.topology()

    def node(self, node_id: str) -> dict[str, Any]:
        """Per-node state of the managed network; :class:`NotFound` for an unknown node."""
        self._managed_doc()
        return self.nodes.get(str(node_id))

    def node_ids(self) -> list[str]:
        """Node ids of the managed network."""
        topo, _ = self.managed()
        return list(topo.node_ids)

    def _record_state(
        self,
        topo: Topology,
        demands: Demands,
        arc_load: np.ndarray,
        latency: np.ndarray,
        routing: str,
    ) -> None:
        """Link and node state of the managed network from one routing; events for links
        that reach the threshold."""
        load, util = link_utilization(topo, arc_load)
        doc = self.network.get(MANAGED)
        before = doc.get("link_state", {})
        now = _now()
        state, crossed = {}, []
        for k, lid in enumerate(topo.link_ids):
            u = float(util[k])
            hot = u >= self.threshold
            state[lid] = {"utilization": u, "load": float(load[k]), "congested": hot}
            if hot and not before.get(lid, {}).get("congested", False):
                crossed.append(k)
        doc.update(link_state=state, routing=routing, updated=now)
        self.network.put(MANAGED, doc)
        handled = node_throughput(topo, arc_load, demands)
        node_u = _congestion.node_utilization(topo, util, handled)
        lat_sum = np.bincount(demands.src, weights=np.nan_to_num(latency), minlength=topo.n)
        count = np.bincount(demands.src[np.isfinite(latency)], minlength=topo.n)
        degree = np.bincount(np.concatenate([topo.link_src, topo.link_dst]), minlength=topo.n)
        for v, nid in enumerate(topo.node_ids):
            u = float(node_u[v])
            self.nodes.put(
                nid,
                {
                    "id": nid,
                    "status": "overloaded"
                    if u > 1
                    else "congested"
                    if u >= self.threshold
                    else "online",
                    "load": float(handled[v]),
                    "utilization": u,
                    "packet_loss": self._loss(u),
                    "latency_ms": float(lat_sum[v] / count[v]) if count[v] else None,
                    "capacity": None
                    if not np.isfinite(topo.node_capacity[v])
                    else float(topo.node_capacity[v]),
                    "site": topo.site[v],
                    "node_type": topo.node_type[v],
                    "degree": int(degree[v]),
                    "lat": None if not np.isfinite(topo.lat[v]) else float(topo.lat[v]),
                    "lon": None if not np.isfinite(topo.lon[v]) else float(topo.lon[v]),
                    "routing": routing,
                    "updated": now,
                },
            )
        for k in crossed:
            self.publish(
                "NetworkCongestion",
                {
                    "node_id": topo.node_ids[topo.link_src[k]],
                    "link": topo.link_ids[k],
                    "source": topo.node_ids[topo.link_src[k]],
                    "target": topo.node_ids[topo.link_dst[k]],
                    "utilization": float(util[k]),
                    "packet_loss": self._loss(float(util[k])),
                    "threshold": self.threshold,
                    "timestamp": now,
                },
            )

    @staticmethod
    def _loss(u: float) -> float:
        """Fluid estimate of the traffic dropped at utilisation ``u``: the excess over capacity."""
        return float(max(0.0, 1.0 - 1.0 / u)) if u > 1 else 0.0

    # ------------------------------------------------------------------ inputs

    @staticmethod
    def _as_topology(topology: Mapping[str, Any] | Topology, field: str = "topology") -> Topology:
        if isinstance(topology, Topology):
            return topology
        return _topo.from_dict(topology, field=field)

    def _inputs(
        self,
        topology: Mapping[str, Any] | Topology | None,
        demands: Sequence[Mapping[str, Any]] | Demands | None,
        field: str = "topology",
        need_demands: bool = True,
    ) -> tuple[Topology, Demands | None, bool]:
        """(topology, demands, is_managed): the given ones, else the managed network's."""
        if topology is None:
            topo, own = self.managed()
            managed = True
        else:
            topo, own, managed = self._as_topology(topology, field), None, False
        if isinstance(demands, Demands):
            dem = demands
        elif demands is not None:
            dem = _topo.demands_from_records(topo, demands)
        else:
            dem = own
        if dem is None and need_demands:
            raise InvalidInput("traffic_demands", "is required with a topology")
        return topo, dem, managed

    # ------------------------------------------------------------------ traffic engineering

    def optimize(
        self,
        topology: Mapping[str, Any] | Topology | None = None,
        demands: Sequence[Mapping[str, Any]] | Demands | None = None,
        objective: str = "balance_load",
        max_utilization: float = 1.0,
        topology_field: str = "topology",
        save: bool = True,
    ) -> dict[str, Any]:
        """Route the demands for ``objective`` (:func:`prism_kernels.telecom.te.optimize`).

        Without ``topology``, the managed network (and its demands unless given); its link
        and node state then follow the optimised routing. Returns routes (one per demand and
        path: ``demand_id``, ``demand``, ``source``, ``destination``, ``path``, ``bandwidth``,
        ``latency_ms``, ``split_fraction``), per-demand summaries, ``unrouted`` with reasons,
        latency and utilisation figures, per-link utilisation, ``optimization_id`` (when
        saved) and ``computation_time_ms``.
        """
        topo, dem, managed = self._inputs(topology, demands, topology_field)
        with self.timed("optimize") as t:
            res = _te.optimize(topo, dem, objective, max_utilization=max_utilization)
        out = self._te_answer(topo, dem, res, max_utilization)
        out[TIMING_KEY] = t.ms
        if save:
            oid = f"opt-{uuid.uuid4().hex[:12]}"
            summary = {
                k: out[k]
                for k in (
                    "objective",
                    "max_link_utilization",
                    "required_utilization",
                    "fits",
                    "total_latency_ms",
                    "throughput",
                    "offered",
                )
            }
            with self.lock:
                self.optimizations.put(
                    oid,
                    {
                        "id": oid,
                        "topology": topo.name or "(given)",
                        "managed": managed,
                        "demands": len(dem),
                        "unrouted": len(out["unrouted"]),
                        TIMING_KEY: t.ms,
                        "created": _now(),
                        **summary,
                    },
                )
                if managed:
                    self._record_state(
                        topo, dem, res.arc_load, res.latency_ms, f"optimize:{objective}"
                    )
            out["optimization_id"] = oid
        return out

    def _te_answer(
        self, topo: Topology, dem: Demands, res: _te.TEResult, max_utilization: float
    ) -> dict[str, Any]:
        names = topo.node_ids
        routes, summaries, unrouted = [], [], []
        for d in range(len(dem)):
            s, t = names[dem.src[d]], names[dem.dst[d]]
            vol = float(dem.volume[d])
            paths = list(res.paths[d])
            if vol == 0 and res.routable[d]:  # no traffic: its shortest path, carrying nothing
                paths = [(shortest_path(topo, int(dem.src[d]), int(dem.dst[d]))[0], 0.0)]
            for nodes, amount in paths:
                routes.append(
                    {
                        "demand_id": d,
                        "demand": dem.ids[d],
                        "source": s,
                        "destination": t,
                        "path": [names[v] for v in nodes],
                        "bandwidth": float(amount),
                        "latency_ms": path_latency(topo, nodes),
                        "split_fraction": float(amount / vol) if vol > 0 else 1.0,
                    }
                )
            carried = float(res.carried[d])
            summaries.append(
                {
                    "demand_id": d,
                    "demand": dem.ids[d],
                    "source": s,
                    "destination": t,
                    "bandwidth_required": vol,
                    "carried": carried,
                    "priority": int(dem.priority[d]),
                    "latency_ms": None
                    if not np.isfinite(res.latency_ms[d])
                    else float(res.latency_ms[d]),
                    "paths": len(paths),
                }
            )
            if not res.routable[d]:
                reason = f"no path from {s} to {t}"
            elif carried < vol * (1 - 1e-6):
                reason = (
                    f"insufficient capacity: {carried:.4g} of {vol:.4g} carried within "
                    f"{max_utilization:g} x capacity (priority {int(dem.priority[d])}; higher "
                    f"priorities admitted first)"
                )
            else:
                continue
            unrouted.append(
                {
                    "demand_id": d,
                    "demand": dem.ids[d],
                    "source": s,
                    "destination": t,
                    "bandwidth_required": vol,
                    "carried": carried,
                    "reason": reason,
                }
            )
        load, util = link_utilization(topo, res.arc_load)
        lat = res.latency_ms
        ok = np.isfinite(lat)
        carried_ok = res.carried[ok]
        return {
            "objective": res.objective,
            "routes": routes,
            "demands": summaries,
            "unrouted": unrouted,
            "total_latency_ms": float(lat[ok].sum()),
            "mean_latency_ms": float((lat[ok] * carried_ok).sum() / carried_ok.sum())
            if carried_ok.sum() > 0
            else None,
            "max_link_utilization": float(util.max()) if util.size else 0.0,
            "required_utilization": res.required_utilization,
            "fits": res.fits,
            "concurrent_scale": res.concurrent_scale,
            "throughput": float(res.carried.sum()),
            "offered": float(dem.volume.sum()),
            "link_utilization": self._link_rows(topo, res.arc_load),
            "overloaded_links": [topo.link_ids[k] for k in np.flatnonzero(util > 1 + 1e-7)],
            "lp_solves": res.lp_solves,
            "notes": res.notes,
        }

    @staticmethod
    def _link_rows(topo: Topology, arc_load: np.ndarray) -> list[dict[str, Any]]:
        load, util = link_utilization(topo, arc_load)
        fwd = arc_load[: topo.m]
        rev = arc_load[topo.m :] if not topo.directed else np.zeros(topo.m)
        return [
            {
                "link": topo.link_ids[k],
                "source": topo.node_ids[topo.link_src[k]],
                "target": topo.node_ids[topo.link_dst[k]],
                "capacity": float(topo.capacity[k]),
                "load": float(load[k]),
                "load_forward": float(fwd[k]),
                "load_reverse": float(rev[k]),
                "utilization": float(util[k]),
            }
            for k in range(topo.m)
        ]

    # ------------------------------------------------------------------ routing

    def route(
        self,
        topology: Mapping[str, Any] | Topology | None = None,
        demands: Sequence[Mapping[str, Any]] | Demands | None = None,
        metric: str = "latency",
        ecmp: bool = True,
        volumes: Any = None,
    ) -> dict[str, Any]:
        """IGP routing (shortest paths by ``metric``, ECMP splits) of the demands: per-demand
        paths and latency, per-link utilisation; ``volumes`` ``(T, k)`` gives the link loads
        ``(T, n_arcs)`` of many traffic matrices in one product (``loads``)."""
        topo, dem, _ = self._inputs(topology, demands)
        with self.timed("route") as t:
            routing = igp_routing(topo, dem, metric, ecmp=ecmp)
            arc_load = np.asarray(routing.loads(dem.volume))
            many = None if volumes is None else np.asarray(routing.loads(volumes))
        names = topo.node_ids
        rows = []
        for d in range(len(dem)):
            for nodes, f in demand_paths(
                topo, routing, d, int(dem.src[d]), int(dem.dst[d]), MAX_PATHS_PER_DEMAND
            ):
                rows.append(
                    {
                        "demand_id": d,
                        "demand": dem.ids[d],
                        "path": [names[v] for v in nodes],
                        "split_fraction": float(f),
                        "bandwidth": float(f * dem.volume[d]),
                    }
                )
        out = {
            "metric": metric,
            "routes": rows,
            "latency_ms": [
                None if not np.isfinite(x) else float(x) for x in np.asarray(routing.latency_ms)
            ],
            "reachable": np.asarray(routing.reachable).tolist(),
            "link_utilization": self._link_rows(topo, arc_load),
            "arc_load": arc_load,
            TIMING_KEY: t.ms,
        }
        if many is not None:
            out["loads"] = many
        return out

    # ------------------------------------------------------------------ congestion

    def congestion(
        self,
        topology: Mapping[str, Any] | Topology | None = None,
        demands: Sequence[Mapping[str, Any]] | Demands | None = None,
        threshold: float | None = None,
        metric: str = "latency",
        upgrade_factor: float = 2.0,
        topology_field: str = "topology",
    ) -> dict[str, Any]:
        """Congested nodes and links, overall health and computed recommendations
        (:func:`prism_kernels.telecom.congestion.analyse`). A topology without demands uses
        the utilisations it reports; the managed network uses its demands."""
        thr = self.threshold if threshold is None else float(threshold)
        topo, dem, managed = self._inputs(topology, demands, topology_field, need_demands=False)
        with self.timed("congestion") as t:
            rep = _congestion.analyse(topo, dem, thr, metric=metric, upgrade_factor=upgrade_factor)
        if managed and rep.arc_load is not None:
            routing = igp_routing(topo, dem, metric)
            with self.lock:
                self._record_state(topo, dem, rep.arc_load, np.asarray(routing.latency_ms), "igp")
        names = topo.node_ids
        return {
            "congested_nodes": [names[v] for v in rep.congested_nodes],
            "congested_links": [
                [names[topo.link_src[k]], names[topo.link_dst[k]]] for k in rep.congested_links
            ],
            "congested_link_ids": [topo.link_ids[k] for k in rep.congested_links],
            "overall_health": rep.overall_health,
            "recommendations": [r["text"] for r in rep.recommendations],
            "recommendation_details": rep.recommendations,
            "max_link_utilization": rep.max_utilization,
            "threshold": thr,
            "load_source": rep.source,
            "link_utilization": [
                {
                    "link": topo.link_ids[k],
                    "source": names[topo.link_src[k]],
                    "target": names[topo.link_dst[k]],
                    "capacity": float(topo.capacity[k]),
                    "load": float(rep.link_load[k]),
                    "utilization": float(rep.link_utilization[k]),
                }
                for k in range(topo.m)
            ],
            "node_utilization": [
                {
                    "node": names[v],
                    "load": float(rep.node_load[v]),
                    "utilization": float(rep.node_utilization[v]),
                }
                for v in range(topo.n)
            ],
            TIMING_KEY: t.ms,
        }

    # ------------------------------------------------------------------ failures

    def failures(
        self,
        topology: Mapping[str, Any] | Topology | None = None,
        demands: Sequence[Mapping[str, Any]] | Demands | None = None,
        scope: Sequence[str] = ("links",),
        scenarios: Sequence[Mapping[str, Any]] | None = None,
        metric: str = "latency",
        ecmp: bool = True,
        top: int = 10,
        xp: Any = None,
    ) -> dict[str, Any]:
        """N-1 over ``scope`` (links, nodes, srlgs) and the given ``scenarios``
        (``{id?, links, nodes, srlgs}``), as one batch
        (:func:`prism_kernels.telecom.failures.what_if`): per scenario the worst surviving
        utilisation and link, the demands cut with their reasons, the demands re-routed;
        the ``top`` most critical scenarios ranked."""
        topo, dem, _ = self._inputs(topology, demands)
        specs = list(scenarios or [])
        sc = _failures.n_minus_1(topo, scope)
        sc += [_failures.scenario(topo, s, i) for i, s in enumerate(specs)]
        if not sc:
            raise InvalidInput("scope", "no scenario to run: give a scope or scenarios")
        with self.timed("failures") as t:
            rep = _failures.what_if(topo, dem, sc, metric=metric, ecmp=ecmp, xp=xp)
        names = topo.node_ids
        base_u = link_utilization(topo, rep.baseline_loads)[1]
        rows = []
        for i, s in enumerate(rep.scenarios):
            w = int(rep.worst_arc[i])
            rows.append(
                {
                    "id": s.id,
                    "kind": s.kind,
                    "elements": list(s.elements),
                    "failed_links": [topo.link_ids[k] for k in s.links],
                    "max_link_utilization": float(rep.max_utilization[i]),
                    "worst_link": topo.link_ids[int(topo.arc_link[w])] if w >= 0 else None,
                    "worst_direction": [names[topo.arc_src[w]], names[topo.arc_dst[w]]]
                    if w >= 0
                    else None,
                    "overloaded_links": int(rep.overloaded[i]),
                    "demands_cut": [dem.ids[d] for d in rep.cut[i]],
                    "cut_reasons": {dem.ids[d]: r for d, r in rep.cut_reason[i].items()},
                    "cut_volume": float(rep.cut_volume[i]),
                    "rerouted": int(rep.rerouted[i]),
                }
            )
        order = rep.ranking()[: max(0, int(top))]
        critical = [
            {
                "rank": j + 1,
                "id": rows[i]["id"],
                "kind": rows[i]["kind"],
                "elements": rows[i]["elements"],
                "cut_volume": rows[i]["cut_volume"],
                "demands_cut": len(rows[i]["demands_cut"]),
                "max_link_utilization": rows[i]["max_link_utilization"],
            }
            for j, i in enumerate(order)
        ]
        return {
            "scenarios": rows,
            "critical": critical,
            "baseline_max_link_utilization": float(base_u.max()) if base_u.size else 0.0,
            "demands": len(dem),
            "scenario_count": len(rows),
            "metric": metric,
            TIMING_KEY: t.ms,
        }

    # ------------------------------------------------------------------ max flow, metrics

    def max_flow(
        self,
        source: str,
        target: str,
        topology: Mapping[str, Any] | Topology | None = None,
    ) -> dict[str, Any]:
        """Maximum flow from ``source`` to ``target`` (node ids) with the minimum cut and the
        flow on each link (:func:`prism_kernels.telecom.flow.max_flow`)."""
        topo, _, _ = self._inputs(topology, None, need_demands=False)
        s = topo.node(source, "source")
        t_ = topo.node(target, "target")
        if s == t_:
            raise InvalidInput("target", f"equals the source {source!r}")
        with self.timed("max_flow") as t:
            mf = _flow.max_flow(topo, s, t_)
        names = topo.node_ids
        flows = []
        for a in np.flatnonzero(mf.arc_flow > 0):
            k = int(topo.arc_link[a])
            flows.append(
                {
                    "link": topo.link_ids[k],
                    "source": names[topo.arc_src[a]],
                    "target": names[topo.arc_dst[a]],
                    "flow": float(mf.arc_flow[a]),
                    "capacity": float(topo.capacity[k]),
                }
            )
        return {
            "source": names[s],
            "target": names[t_],
            "value": mf.value,
            "max_flow": mf.value,
            "min_cut": [
                {
                    "link": topo.link_ids[int(topo.arc_link[a])],
                    "source": names[topo.arc_src[a]],
                    "target": names[topo.arc_dst[a]],
                    "capacity": float(topo.arc_capacity[a]),
                }
                for a in mf.cut_arcs
            ],
            "min_cut_capacity": float(topo.arc_capacity[mf.cut_arcs].sum()),
            "source_side": [names[v] for v in np.flatnonzero(mf.source_side)],
            "sink_side": [names[v] for v in np.flatnonzero(~mf.source_side)],
            "flows": flows,
            "method": mf.method,
            TIMING_KEY: t.ms,
        }

    def metrics(self, topology: Mapping[str, Any] | Topology | None = None) -> dict[str, Any]:
        """Degree, betweenness, articulation points, bridges, connectivity and diameter
        (:func:`prism_kernels.telecom.metrics.topology_metrics`)."""
        topo, _, _ = self._inputs(topology, None, need_demands=False)
        with self.timed("metrics") as t:
            m = _metrics.topology_metrics(topo)
        names = topo.node_ids
        return {
            "nodes": [
                {
                    "node": names[v],
                    "degree": int(m.degree[v]),
                    "betweenness": float(m.betweenness[v]),
                }
                for v in range(topo.n)
            ],
            "articulation_points": [names[v] for v in m.articulation_points],
            "bridges": [topo.link_ids[k] for k in m.bridges],
            "node_connectivity": m.node_connectivity,
            "edge_connectivity": m.edge_connectivity,
            "diameter_hops": m.diameter_hops if np.isfinite(m.diameter_hops) else None,
            "diameter_ms": m.diameter_ms if np.isfinite(m.diameter_ms) else None,
            "components": m.components,
            TIMING_KEY: t.ms,
        }

    # ------------------------------------------------------------------ the store

    def list_optimizations(self, limit: int | None = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Summaries of the stored optimisations, newest first."""
        return [d for _, d in self.optimizations.page(limit, offset)]

    def get_optimization(self, optimization_id: str) -> dict[str, Any]:
        """One stored optimisation summary; :class:`NotFound` when unknown."""
        return self.optimizations.get(optimization_id)

    def health_details(self) -> dict[str, Any]:
        try:
            doc = self._managed_doc()
        except Exception:  # a broken store must not break /health
            doc = {"topology": {"nodes": [], "links": []}, "link_state": {}}
        ops = self.latency().get("optimize", {})
        last = self.optimizations.page(1)
        return {
            "nodes_monitored": len(doc["topology"]["nodes"]),
            "links_monitored": len(doc["topology"]["links"]),
            "topology": doc["topology"].get("name", ""),
            "congested_links": sum(
                1 for s in doc.get("link_state", {}).values() if s.get("congested")
            ),
            "optimization_latency_ms": ops.get("mean_ms"),
            "optimizations_run": int(ops.get("count", 0) or 0),
            "last_optimization": last[0][1] if last else None,
            "threshold": self.threshold,
        }
