"""The topology model: nodes, links and traffic demands, validated, with the arcs routing uses.

A :class:`Topology` holds ``n`` nodes and ``m`` links. A link has a capacity (the topology's
bandwidth unit, Gbps in the shipped backbones), a latency (ms), an IGP cost (dimensionless,
1 = hop count) and the shared-risk link groups (SRLGs) it belongs to. An undirected topology
(the default, as backbones are full duplex) gives every link two arcs, one per direction,
each with the link's full capacity; a directed one gives one arc per link. Routing works on
the arcs: arc ``k < m`` is link ``k`` from ``source`` to ``target``; in an undirected
topology arc ``m + k`` is link ``k`` in the other direction.

Builders:

- :func:`from_dict`: the original API's ``NetworkTopology`` (``nodes`` with ``id``,
  ``node_type``, ``capacity``, ``current_load``; ``links`` with ``source``, ``target``,
  ``bandwidth``, ``latency_ms``, ``utilization``) plus this model's own fields (``capacity``
  for ``bandwidth``, ``cost``, ``srlg``, ``id``, node ``site``, ``lat``, ``lon``);
- :func:`from_networkx`: a NetworkX graph (directed or not, multigraphs included);
- :func:`load_backbone`: the shipped Abilene (2005) and GEANT (2012) backbones, transcribed
  from the Internet Topology Zoo (see the JSON files' ``source``, ``licence`` and
  ``set_here``: which figures the source gives and which were set here, and how);
- :func:`random_topology`: a seeded, connected geometric topology for tests and benchmarks.

Every builder validates and raises :class:`~prism_kernels.errors.InvalidInput` naming the
field (``topology.links.3.target``): an empty topology, a link to an unknown node, a
negative, zero or non-finite capacity, a negative latency.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial import cKDTree

from prism_kernels.errors import InvalidInput

KM_PER_MS = 200.0
"""Light in fibre covers about 200 km per millisecond (2/3 of c): latency from distance."""

EARTH_RADIUS_KM = 6371.0
BACKBONES = ("abilene", "geant")
"""The shipped backbones (:func:`load_backbone`)."""

METRICS = ("latency", "cost", "hops")
"""Routing metrics: link latency (ms), IGP cost, or one per link."""

_DATA = Path(__file__).parent


# ---------------------------------------------------------------- the model


@dataclass(frozen=True, eq=False)
class Topology:
    """Nodes and links of a network (see the module docstring for units and arcs).

    Attributes
    ----------
    node_ids : tuple of str, ``(n,)``, distinct.
    link_src, link_dst : int arrays ``(m,)``, node indices.
    capacity : ``(m,)`` link capacity (> 0), per direction.
    latency_ms : ``(m,)`` one-way latency (>= 0, ms).
    cost : ``(m,)`` IGP cost (> 0).
    srlg : per link, the names of its shared-risk link groups.
    link_ids : ``(m,)`` distinct link names.
    directed : one arc per link when True, two (one each way) when False.
    node_type, site : per node (``router``... and a place name).
    node_capacity : ``(n,)`` switching capacity, NaN when not given.
    node_load : ``(n,)`` the load a caller reported (original ``current_load``), 0 when none.
    lat, lon : ``(n,)`` degrees, NaN when unknown.
    link_utilization : ``(m,)`` a measured utilisation a caller reported (fraction), NaN when none.
    name : str
    meta : provenance (``source``, ``licence``, ``unit``, ``set_here``).
    """

    node_ids: tuple[str, ...]
    link_src: np.ndarray
    link_dst: np.ndarray
    capacity: np.ndarray
    latency_ms: np.ndarray
    cost: np.ndarray
    srlg: tuple[tuple[str, ...], ...]
    link_ids: tuple[str, ...]
    directed: bool = False
    node_type: tuple[str, ...] = ()
    site: tuple[str, ...] = ()
    node_capacity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    node_load: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lat: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lon: np.ndarray = field(default_factory=lambda: np.zeros(0))
    link_utilization: np.ndarray = field(default_factory=lambda: np.zeros(0))
    name: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, m = len(self.node_ids), len(self.link_ids)
        fill = {
            "node_type": ("router",) * n,
            "site": tuple(self.node_ids),
            "node_capacity": np.full(n, np.nan),
            "node_load": np.zeros(n),
            "lat": np.full(n, np.nan),
            "lon": np.full(n, np.nan),
            "link_utilization": np.full(m, np.nan),
        }
        for name, default in fill.items():
            if len(getattr(self, name)) == 0 and len(default) > 0:
                object.__setattr__(self, name, default)

    # ------------------------------------------------------------ sizes and lookups

    @property
    def n(self) -> int:
        """Number of nodes."""
        return len(self.node_ids)

    @property
    def m(self) -> int:
        """Number of links."""
        return len(self.link_ids)

    @property
    def n_arcs(self) -> int:
        """Number of arcs (``m`` when directed, ``2 m`` otherwise)."""
        return self.m if self.directed else 2 * self.m

    @cached_property
    def index(self) -> dict[str, int]:
        """Node id -> node index."""
        return {v: i for i, v in enumerate(self.node_ids)}

    @cached_property
    def link_index(self) -> dict[str, int]:
        """Link id -> link index."""
        return {v: i for i, v in enumerate(self.link_ids)}

    def node(self, node_id: str, field: str = "node") -> int:
        """Index of ``node_id``; :class:`InvalidInput` naming ``field`` when unknown."""
        i = self.index.get(str(node_id))
        if i is None:
            raise InvalidInput(field, f"unknown node {node_id!r}", known=list(self.node_ids[:20]))
        return i

    # ------------------------------------------------------------ arcs

    @cached_property
    def arc_link(self) -> np.ndarray:
        """``(n_arcs,)`` the link of each arc."""
        k = np.arange(self.m, dtype=np.int64)
        return k if self.directed else np.concatenate([k, k])

    @cached_property
    def arc_src(self) -> np.ndarray:
        """``(n_arcs,)`` tail node of each arc."""
        if self.directed:
            return self.link_src
        return np.concatenate([self.link_src, self.link_dst])

    @cached_property
    def arc_dst(self) -> np.ndarray:
        """``(n_arcs,)`` head node of each arc."""
        if self.directed:
            return self.link_dst
        return np.concatenate([self.link_dst, self.link_src])

    @property
    def arc_capacity(self) -> np.ndarray:
        """``(n_arcs,)`` capacity of each arc (its link's, per direction)."""
        return self.capacity[self.arc_link]

    def arc_weights(self, metric: str = "latency") -> np.ndarray:
        """``(n_arcs,)`` the routing metric of each arc: ``latency`` (ms), ``cost`` or ``hops``."""
        if metric == "latency":
            w = self.latency_ms
        elif metric == "cost":
            w = self.cost
        elif metric == "hops":
            w = np.ones(self.m)
        else:
            raise InvalidInput("metric", f"unknown metric {metric!r}; choose {', '.join(METRICS)}")
        return np.asarray(w, dtype=np.float64)[self.arc_link]

    def arcs_of_links(self, links: Iterable[int]) -> np.ndarray:
        """Arc indices of the given links (both directions when undirected)."""
        k = np.asarray(list(links), dtype=np.int64)
        return k if self.directed else np.concatenate([k, k + self.m])

    def links_of_nodes(self, nodes: Iterable[int]) -> np.ndarray:
        """Indices of the links incident to any of ``nodes``."""
        nodes = np.asarray(list(nodes), dtype=np.int64)
        hit = np.isin(self.link_src, nodes) | np.isin(self.link_dst, nodes)
        return np.flatnonzero(hit)

    @cached_property
    def srlg_groups(self) -> dict[str, np.ndarray]:
        """SRLG name -> indices of its links, in order of first appearance."""
        out: dict[str, list[int]] = {}
        for k, groups in enumerate(self.srlg):
            for g in groups:
                out.setdefault(g, []).append(k)
        return {g: np.asarray(ks, dtype=np.int64) for g, ks in out.items()}

    def link_name(self, k: int) -> str:
        """``"A-B"`` (undirected) or ``"A->B"`` (directed) for link ``k``."""
        a, b = self.node_ids[self.link_src[k]], self.node_ids[self.link_dst[k]]
        return f"{a}->{b}" if self.directed else f"{a}-{b}"

    def arc_name(self, a: int) -> str:
        """``"A->B"`` for arc ``a``."""
        return f"{self.node_ids[self.arc_src[a]]}->{self.node_ids[self.arc_dst[a]]}"

    # ------------------------------------------------------------ copies

    def with_capacity(self, capacity: np.ndarray) -> Topology:
        """The same topology with new link capacities ``(m,)``."""
        cap = _positive(np.asarray(capacity, dtype=np.float64), "capacity")
        if cap.shape != (self.m,):
            raise InvalidInput("capacity", f"needs {self.m} values, got shape {cap.shape}")
        return replace(self, capacity=cap)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready document: ``{name, directed, unit, nodes: [...], links: [...]}`` in the
        original ``NetworkTopology`` shape (``bandwidth``, ``latency_ms``, ``utilization``)
        plus this model's fields (``capacity``, ``cost``, ``srlg``, ``site``, ``lat``, ``lon``)."""
        nodes = []
        for i, v in enumerate(self.node_ids):
            d: dict[str, Any] = {
                "id": v,
                "node_type": self.node_type[i],
                "site": self.site[i],
                "capacity": _num(self.node_capacity[i]),
                "current_load": float(self.node_load[i]),
                "lat": _num(self.lat[i]),
                "lon": _num(self.lon[i]),
            }
            nodes.append(d)
        links = []
        for k in range(self.m):
            links.append(
                {
                    "id": self.link_ids[k],
                    "source": self.node_ids[self.link_src[k]],
                    "target": self.node_ids[self.link_dst[k]],
                    "bandwidth": float(self.capacity[k]),
                    "capacity": float(self.capacity[k]),
                    "latency_ms": float(self.latency_ms[k]),
                    "cost": float(self.cost[k]),
                    "srlg": list(self.srlg[k]),
                    "utilization": _num(self.link_utilization[k]),
                }
            )
        return {
            "name": self.name,
            "directed": self.directed,
            "unit": str(self.meta.get("unit", "Gbps")),
            "nodes": nodes,
            "links": links,
        }


def _num(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


# ---------------------------------------------------------------- demands


@dataclass(frozen=True, eq=False)
class Demands:
    """Traffic demands between nodes of a topology.

    Attributes
    ----------
    src, dst : int arrays ``(k,)`` node indices (``src != dst``).
    volume : ``(k,)`` offered traffic, the topology's bandwidth unit (>= 0).
    priority : int ``(k,)`` 0..255, higher is more important.
    ids : ``(k,)`` names (``"0"``, ``"1"``... unless given).
    """

    src: np.ndarray
    dst: np.ndarray
    volume: np.ndarray
    priority: np.ndarray
    ids: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.src.shape[0])

    def subset(self, keep: np.ndarray) -> Demands:
        """The demands at indices (or mask) ``keep``."""
        idx = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep)
        return Demands(
            self.src[idx],
            self.dst[idx],
            self.volume[idx],
            self.priority[idx],
            tuple(self.ids[i] for i in idx),
        )

    def with_volume(self, volume: np.ndarray) -> Demands:
        """The same demands with other volumes ``(k,)``."""
        return replace(self, volume=np.asarray(volume, dtype=np.float64))


def demands_from_records(
    topo: Topology, records: Sequence[Mapping[str, Any]], field: str = "traffic_demands"
) -> Demands:
    """Demands from ``[{source, destination, bandwidth_required, priority?, id?}]``.

    ``volume`` is accepted for ``bandwidth_required`` and ``target`` for ``destination``.
    Raises :class:`InvalidInput` naming the entry: an unknown node, a source equal to its
    destination, a negative or non-finite volume, a priority outside 0..255.
    """
    src, dst, vol, pri, ids = [], [], [], [], []
    for i, r in enumerate(records):
        f = f"{field}.{i}"
        if not isinstance(r, Mapping):
            raise InvalidInput(f, "must be an object {source, destination, bandwidth_required}")
        s = _get(r, f, "source")
        t = _get(r, f, "destination", "target")
        si = topo.node(s, f"{f}.source")
        ti = topo.node(t, f"{f}.destination")
        if si == ti:
            raise InvalidInput(f"{f}.destination", f"equals the source {s!r}")
        v = _finite(
            _get(r, f, "bandwidth_required", "volume", "bandwidth"), f"{f}.bandwidth_required"
        )
        if v < 0:
            raise InvalidInput(f"{f}.bandwidth_required", f"must be >= 0; got {v}")
        p = r.get("priority", 0)
        if p is None:
            p = 0
        if (
            isinstance(p, bool)
            or not isinstance(p, (int, float))
            or p != int(p)
            or not 0 <= p <= 255
        ):
            raise InvalidInput(f"{f}.priority", f"must be an integer 0..255; got {p!r}")
        src.append(si)
        dst.append(ti)
        vol.append(v)
        pri.append(int(p))
        ids.append(str(r.get("id", i)))
    if len(set(ids)) != len(ids):
        raise InvalidInput(field, "demand ids must be distinct")
    return Demands(
        np.asarray(src, dtype=np.int64),
        np.asarray(dst, dtype=np.int64),
        np.asarray(vol, dtype=np.float64),
        np.asarray(pri, dtype=np.int64),
        tuple(ids),
    )


def demands_from_matrix(topo: Topology, matrix: Any, priority: int = 0) -> Demands:
    """One demand per positive off-diagonal entry of an ``(n, n)`` traffic matrix (row =
    source, column = destination), in row-major order; ids ``"A->B"``."""
    T = np.asarray(matrix, dtype=np.float64)
    if T.shape != (topo.n, topo.n):
        raise InvalidInput("traffic_matrix", f"needs shape ({topo.n}, {topo.n}); got {T.shape}")
    if not np.all(np.isfinite(T)) or np.any(T < 0):
        raise InvalidInput("traffic_matrix", "entries must be finite and >= 0")
    T = T.copy()
    np.fill_diagonal(T, 0.0)
    s, t = np.nonzero(T > 0)
    names = topo.node_ids
    return Demands(
        s.astype(np.int64),
        t.astype(np.int64),
        T[s, t],
        np.full(s.size, int(priority), dtype=np.int64),
        tuple(f"{names[a]}->{names[b]}" for a, b in zip(s, t, strict=True)),
    )


# ---------------------------------------------------------------- builders


def _get(d: Mapping[str, Any], f: str, *names: str) -> Any:
    for k in names:
        if k in d and d[k] is not None:
            return d[k]
    raise InvalidInput(f"{f}.{names[0]}", "is required")


def _finite(x: Any, f: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise InvalidInput(f, f"must be a number; got {x!r}")
    x = float(x)
    if not math.isfinite(x):
        raise InvalidInput(f, "must be finite (NaN and infinity are not capacities or latencies)")
    return x


def _positive(a: np.ndarray, f: str) -> np.ndarray:
    bad = np.flatnonzero(~np.isfinite(a) | (a <= 0))
    if bad.size:
        raise InvalidInput(f"{f}.{bad[0]}", f"must be a positive finite number; got {a[bad[0]]}")
    return a


def great_circle_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> np.ndarray:
    """Great-circle distance (km) between points given in degrees (haversine)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def from_dict(
    doc: Mapping[str, Any],
    field: str = "topology",
    default_latency_ms: float | None = None,
    directed: bool | None = None,
) -> Topology:
    """A :class:`Topology` from a ``NetworkTopology``-shaped document (module docstring).

    Parameters
    ----------
    doc : ``{nodes: [...], links: [...], directed?, name?}``.
    field : the document's name in error messages (``"topology"`` -> ``topology.links.3``).
    default_latency_ms : latency of a link that gives none when its nodes have no
        coordinates; without it such a link is an error. Links between nodes with
        coordinates get the great-circle distance at :data:`KM_PER_MS`.
    directed : overrides ``doc["directed"]`` (default False: full-duplex links).

    Raises
    ------
    InvalidInput
        Naming the field: no nodes, a repeated node id, a link to an unknown node or to
        itself, a non-positive or non-finite capacity, a negative latency or cost.
    """
    pre = f"{field}." if field else ""
    if not isinstance(doc, Mapping):
        raise InvalidInput(field or "topology", "must be an object {nodes, links}")
    raw_nodes = doc.get("nodes")
    raw_links = doc.get("links", [])
    if raw_nodes is None or (isinstance(raw_nodes, Sequence) and len(raw_nodes) == 0):
        raise InvalidInput(f"{pre}nodes", "is empty: a topology needs at least one node")
    if not isinstance(raw_nodes, Sequence) or isinstance(raw_nodes, str):
        raise InvalidInput(f"{pre}nodes", "must be a list of nodes")
    if raw_links is None:
        raw_links = []
    if not isinstance(raw_links, Sequence) or isinstance(raw_links, str):
        raise InvalidInput(f"{pre}links", "must be a list of links")
    ids: list[str] = []
    ntype, site, ncap, nload, lat, lon = [], [], [], [], [], []
    for i, nd in enumerate(raw_nodes):
        f = f"{pre}nodes.{i}"
        if isinstance(nd, str):
            nd = {"id": nd}
        if not isinstance(nd, Mapping):
            raise InvalidInput(f, "must be an object {id, node_type, capacity, current_load}")
        nid = str(_get(nd, f, "id", "name")).strip()
        if not nid:
            raise InvalidInput(f"{f}.id", "must be a non-empty string")
        if nid in ids:
            raise InvalidInput(f"{f}.id", f"repeats node {nid!r}")
        ids.append(nid)
        ntype.append(str(nd.get("node_type") or "router"))
        site.append(str(nd.get("site") or nd.get("label") or nid))
        c = nd.get("capacity")
        c = np.nan if c is None else _finite(c, f"{f}.capacity")
        if c == c and c < 0:
            raise InvalidInput(f"{f}.capacity", f"must be >= 0; got {c}")
        ncap.append(c if c == c and c > 0 else np.nan)
        load = nd.get("current_load")
        load = 0.0 if load is None else _finite(load, f"{f}.current_load")
        if load < 0:
            raise InvalidInput(f"{f}.current_load", f"must be >= 0; got {load}")
        nload.append(load)
        la = nd.get("lat", nd.get("latitude", nd.get("Latitude")))
        lo = nd.get("lon", nd.get("longitude", nd.get("Longitude")))
        la = np.nan if la is None else _finite(la, f"{f}.lat")
        lo = np.nan if lo is None else _finite(lo, f"{f}.lon")
        if la == la and not -90 <= la <= 90:
            raise InvalidInput(f"{f}.lat", f"must be within -90..90 degrees; got {la}")
        if lo == lo and not -180 <= lo <= 180:
            raise InvalidInput(f"{f}.lon", f"must be within -180..180 degrees; got {lo}")
        lat.append(la)
        lon.append(lo)
    index = {v: i for i, v in enumerate(ids)}
    lat_a, lon_a = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    src, dst, cap, latency, cost, srlg, lids, util = [], [], [], [], [], [], [], []
    for k, ln in enumerate(raw_links):
        f = f"{pre}links.{k}"
        if not isinstance(ln, Mapping):
            raise InvalidInput(f, "must be an object {source, target, bandwidth, latency_ms}")
        s, t = str(_get(ln, f, "source")), str(_get(ln, f, "target"))
        if s not in index:
            raise InvalidInput(f"{f}.source", f"unknown node {s!r}", known=ids[:20])
        if t not in index:
            raise InvalidInput(f"{f}.target", f"unknown node {t!r}", known=ids[:20])
        if s == t:
            raise InvalidInput(f"{f}.target", f"a link from {s!r} to itself")
        c = _finite(_get(ln, f, "capacity", "bandwidth"), f"{f}.capacity")
        if c <= 0:
            raise InvalidInput(f"{f}.capacity", f"must be positive; got {c}")
        a, b = index[s], index[t]
        lt = ln.get("latency_ms")
        if lt is None:
            if (
                lat_a[a] == lat_a[a]
                and lat_a[b] == lat_a[b]
                and lon_a[a] == lon_a[a]
                and lon_a[b] == lon_a[b]
            ):
                lt = float(great_circle_km(lat_a[a], lon_a[a], lat_a[b], lon_a[b])) / KM_PER_MS
            elif default_latency_ms is not None:
                lt = float(default_latency_ms)
            else:
                raise InvalidInput(
                    f"{f}.latency_ms", "is required when the link's nodes have no coordinates"
                )
        lt = _finite(lt, f"{f}.latency_ms")
        if lt < 0:
            raise InvalidInput(f"{f}.latency_ms", f"must be >= 0; got {lt}")
        w = ln.get("cost", ln.get("igp_cost", ln.get("metric")))
        w = 1.0 if w is None else _finite(w, f"{f}.cost")
        if w <= 0:
            raise InvalidInput(f"{f}.cost", f"must be positive; got {w}")
        groups = ln.get("srlg", ln.get("srlgs")) or []
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, Sequence):
            raise InvalidInput(f"{f}.srlg", "must be a list of group names")
        u = ln.get("utilization")
        u = np.nan if u is None else _finite(u, f"{f}.utilization")
        if u == u and u < 0:
            raise InvalidInput(f"{f}.utilization", f"must be >= 0; got {u}")
        src.append(a)
        dst.append(b)
        cap.append(c)
        latency.append(lt)
        cost.append(w)
        srlg.append(tuple(dict.fromkeys(str(g) for g in groups)))
        lids.append(str(ln.get("id") or ""))
        util.append(u)
    is_directed = bool(doc.get("directed", False)) if directed is None else bool(directed)
    link_ids = _link_ids(ids, src, dst, lids, is_directed)
    if len(set(link_ids)) != len(link_ids):
        dup = next(i for i, v in enumerate(link_ids) if link_ids.index(v) != i)
        raise InvalidInput(f"{pre}links.{dup}.id", f"repeats link id {link_ids[dup]!r}")
    meta = {k: doc[k] for k in ("source", "licence", "unit", "set_here") if k in doc}
    return Topology(
        node_ids=tuple(ids),
        link_src=np.asarray(src, dtype=np.int64),
        link_dst=np.asarray(dst, dtype=np.int64),
        capacity=np.asarray(cap, dtype=np.float64),
        latency_ms=np.asarray(latency, dtype=np.float64),
        cost=np.asarray(cost, dtype=np.float64),
        srlg=tuple(srlg),
        link_ids=tuple(link_ids),
        directed=is_directed,
        node_type=tuple(ntype),
        site=tuple(site),
        node_capacity=np.asarray(ncap, dtype=np.float64),
        node_load=np.asarray(nload, dtype=np.float64),
        lat=lat_a,
        lon=lon_a,
        link_utilization=np.asarray(util, dtype=np.float64),
        name=str(doc.get("name") or ""),
        meta=meta,
    )


def _link_ids(
    ids: list[str], src: list[int], dst: list[int], given: list[str], directed: bool
) -> list[str]:
    """Given ids, else ``A-B`` (``A->B`` directed), ``#2``, ``#3``... for parallel links."""
    out, seen = [], {}
    sep = "->" if directed else "-"
    for a, b, g in zip(src, dst, given, strict=True):
        if g:
            out.append(g)
            continue
        base = f"{ids[a]}{sep}{ids[b]}"
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return out


def from_networkx(
    G: Any,
    capacity: str = "capacity",
    latency: str = "latency_ms",
    cost: str = "cost",
    srlg: str = "srlg",
    default_capacity: float | None = None,
    default_latency_ms: float | None = None,
) -> Topology:
    """A :class:`Topology` from a NetworkX graph (``Graph``, ``DiGraph`` or multigraphs).

    Node ids are ``str(node)``; node attributes ``lat``/``Latitude``, ``lon``/``Longitude``,
    ``site``/``label``, ``node_type``, ``capacity`` are read when present. Edge attributes
    ``capacity`` (or ``default_capacity``), ``latency`` (or the great-circle rule of
    :func:`from_dict`, or ``default_latency_ms``), ``cost`` (default 1) and ``srlg`` name the
    link's figures. A directed graph gives a directed topology.
    """
    nodes = []
    for v, d in G.nodes(data=True):
        nodes.append(
            {
                "id": str(v),
                "node_type": d.get("node_type"),
                "site": d.get("site", d.get("label")),
                "capacity": d.get("capacity"),
                "lat": d.get("lat", d.get("Latitude")),
                "lon": d.get("lon", d.get("Longitude")),
            }
        )
    links = []
    edges = G.edges(keys=True, data=True) if G.is_multigraph() else G.edges(data=True)
    for e in edges:
        u, v, d = e[0], e[1], e[-1]
        links.append(
            {
                "source": str(u),
                "target": str(v),
                "capacity": d.get(capacity, default_capacity),
                "latency_ms": d.get(latency),
                "cost": d.get(cost),
                "srlg": d.get(srlg),
                "id": d.get("id"),
            }
        )
    return from_dict(
        {"nodes": nodes, "links": links, "name": str(G.graph.get("name", ""))},
        field="graph",
        default_latency_ms=default_latency_ms,
        directed=G.is_directed(),
    )


def load_backbone(name: str) -> Topology:
    """One of the shipped backbones (:data:`BACKBONES`): ``"abilene"`` or ``"geant"``.

    The files (``prism_kernels/telecom/<name>.json``) state their source, licence, unit
    (Gbps) and, under ``set_here``, every figure that the source does not give and how it was
    set (capacities of links without a speed, three coordinates, latencies from distance).
    """
    key = str(name).strip().lower().replace("é", "e").replace("_", "").replace(" ", "")
    if key not in BACKBONES:
        raise InvalidInput("backbone", f"unknown backbone {name!r}; choose {', '.join(BACKBONES)}")
    doc = json.loads((_DATA / f"{key}.json").read_text())
    topo = from_dict(doc, field=f"backbone.{key}")
    return replace(topo, meta={**topo.meta, "backbone": key})


def random_topology(
    n: int,
    m: int | None = None,
    seed: int = 0,
    capacities: Sequence[float] = (10.0, 40.0, 100.0),
    region: tuple[float, float, float, float] = (35.0, 60.0, -10.0, 30.0),
) -> Topology:
    """A seeded, connected geometric backbone of ``n`` nodes and ``m`` undirected links.

    Nodes are placed uniformly in ``region`` (lat min, lat max, lon min, lon max, degrees); the
    links are the Euclidean minimum spanning tree (so the graph is connected) plus the shortest
    remaining node pairs until ``m`` (default ``2 n``) links. Capacities are drawn from
    ``capacities``; latency is the great-circle distance at :data:`KM_PER_MS`; the IGP cost is
    the latency rounded up to a whole millisecond (IGP metrics are integers). For tests and benchmarks, never a stand-in for
    a real network.
    """
    n = int(n)
    if n < 1:
        raise InvalidInput("n", "needs at least one node")
    m = 2 * n if m is None else int(m)
    m = max(n - 1, min(m, n * (n - 1) // 2))
    rng = np.random.default_rng(seed)
    lat = rng.uniform(region[0], region[1], n)
    lon = rng.uniform(region[2], region[3], n)
    xy = np.column_stack([lat, lon * np.cos(np.radians(np.mean(lat))) if n else lon])
    pairs: set[tuple[int, int]] = set()
    if n > 1:
        k = min(n - 1, max(8, int(4 * m / n) + 2))
        dist, nb = cKDTree(xy).query(xy, k=k + 1)
        rows = np.repeat(np.arange(n), k)
        cols = nb[:, 1:].ravel()
        d = dist[:, 1:].ravel()
        W = sp.coo_matrix((d + 1e-12, (rows, cols)), shape=(n, n)).tocsr()
        W = W.maximum(W.T)
        tree = minimum_spanning_tree(W).tocoo()
        if tree.nnz < n - 1:  # the kNN graph is disconnected: use the full distance matrix
            full = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)) + 1e-12
            tree = minimum_spanning_tree(full).tocoo()
        pairs = {(min(a, b), max(a, b)) for a, b in zip(tree.row, tree.col, strict=True)}
        order = np.argsort(d, kind="stable")
        for i in order:
            if len(pairs) >= m:
                break
            a, b = int(rows[i]), int(cols[i])
            pairs.add((min(a, b), max(a, b)))
    src = np.asarray([p[0] for p in sorted(pairs)], dtype=np.int64)
    dst = np.asarray([p[1] for p in sorted(pairs)], dtype=np.int64)
    km = great_circle_km(lat[src], lon[src], lat[dst], lon[dst])
    latency = np.maximum(km / KM_PER_MS, 1e-3)
    ids = tuple(f"n{i}" for i in range(n))
    return Topology(
        node_ids=ids,
        link_src=src,
        link_dst=dst,
        capacity=rng.choice(np.asarray(capacities, dtype=np.float64), size=src.size),
        latency_ms=latency,
        cost=np.ceil(latency),
        srlg=tuple(() for _ in range(src.size)),
        link_ids=tuple(_link_ids(list(ids), list(src), list(dst), [""] * src.size, False)),
        lat=lat,
        lon=lon,
        name=f"random geometric n={n} m={src.size} seed={seed}",
        meta={"unit": "Gbps", "source": "prism_kernels.telecom.topology.random_topology"},
    )
