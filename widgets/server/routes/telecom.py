"""``/api/v1/telecom``: traffic engineering on real topologies through
:class:`prism_kernels.telecom.service.TelecomService`: optimised routing (three objectives),
congestion with computed recommendations, failure what-ifs (N-1 and given scenarios),
maximum flow and minimum cut, topology metrics, and the managed network (``GET``/``PUT``/
``POST /topology``, ``GET /node/{id}``).

Units: bandwidths, capacities and loads in one unit (Gbps for the shipped Abilene and GEANT
backbones); latencies in ms; utilisation, packet loss and health as fractions.

Payloads: the original API's ``NetworkTopology`` (``nodes`` with ``id``, ``node_type``,
``capacity``, ``current_load``; ``links`` with ``source``, ``target``, ``bandwidth``,
``latency_ms``, ``utilization``) and ``traffic_demands`` (``source``, ``destination``,
``bandwidth_required``, ``priority`` 0..255), plus this API's own fields (link ``capacity``
for ``bandwidth``, ``cost``, ``srlg``, ``id``; node ``site``, ``lat``, ``lon``; a topology's
``directed``). ``/congestion`` takes a bare ``NetworkTopology`` as the original did, or
``{topology, traffic_demands, threshold}``. Without a topology, every analysis uses the
managed network and its demands. Objective names in any spelling (``BalanceLoad``,
``balance-load``) with a few aliases (``latency``, ``throughput``, ``mlu``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import AliasChoices, Field, model_validator

from prism_kernels.errors import InvalidInput
from prism_kernels.telecom.failures import SCOPES
from prism_kernels.telecom.service import TelecomService
from prism_kernels.telecom.te import OBJECTIVES
from prism_kernels.telecom.topology import BACKBONES, METRICS
from widgets.server.models import ApiModel, ApiResponse, DomainHealth, NameChoice, Timed
from widgets.server.routing import Request, RouteGroup

MAX_NODES = 5000
MAX_LINKS = 20_000
MAX_DEMANDS = 20_000
MAX_BANDWIDTH = 1e9  # in the topology's unit
MIN_BANDWIDTH = 1e-6  # a link capacity (so capacities and demands span at most 15 decades)
MAX_LATENCY_MS = 1e5


class TelecomHealth(DomainHealth):
    """``GET /api/v1/telecom/health``: the shared fields and the managed network's."""

    nodes_monitored: int = Field(description="Nodes of the managed network")
    links_monitored: int = Field(description="Links of the managed network")
    topology: str = Field(description="Name of the managed network")
    congested_links: int = Field(description="Links at or above the threshold (last routing)")
    optimization_latency_ms: float | None = Field(
        description="Mean of the recent optimisations' computation times (ms)"
    )
    avg_optimization_time_ms: float | None = Field(
        description="The original API's name for optimization_latency_ms"
    )
    optimizations_run: int
    last_optimization: dict[str, Any] | None = Field(description="Summary of the newest one")
    threshold: float = Field(description="Utilisation at which a link counts as congested")

    @model_validator(mode="before")
    @classmethod
    def _legacy_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and "optimization_latency_ms" in data:
            data = {**data, "avg_optimization_time_ms": data["optimization_latency_ms"]}
        return data


ROUTES = RouteGroup(
    "telecom",
    "Traffic engineering: routing, load balancing, failures, max flow on real topologies",
    service=TelecomService,
    health=TelecomHealth,
)

NodeType = NameChoice(
    "router",
    "switch",
    "gateway",
    "access_point",
    aliases={"ap": "access_point", "accesspoint": "access_point", "pop": "router"},
    description="router, switch, gateway or access_point",
)
Objective = NameChoice(
    *OBJECTIVES,
    aliases={
        "latency": "minimize_latency",
        "min_latency": "minimize_latency",
        "minimise_latency": "minimize_latency",
        "shortest_path": "minimize_latency",
        "throughput": "maximize_throughput",
        "max_throughput": "maximize_throughput",
        "maximise_throughput": "maximize_throughput",
        "max_flow": "maximize_throughput",
        "balance": "balance_load",
        "load_balance": "balance_load",
        "load_balancing": "balance_load",
        "min_max_utilization": "balance_load",
        "mlu": "balance_load",
    },
    description="minimize_latency, maximize_throughput or balance_load",
)
Metric = NameChoice(
    *METRICS,
    aliases={
        "delay": "latency",
        "latency_ms": "latency",
        "igp": "cost",
        "igp_cost": "cost",
        "hop": "hops",
    },
    description="Routing metric: latency (ms), cost (IGP metric) or hops",
)
Scope = NameChoice(
    *SCOPES,
    aliases={"link": "links", "node": "nodes", "srlg": "srlgs", "site": "nodes", "sites": "nodes"},
    description="links, nodes or srlgs",
)
Backbone = NameChoice(
    *BACKBONES,
    aliases={
        "géant": "geant",
        "geant2012": "geant",
        "internet2": "abilene",
        "abilene2005": "abilene",
    },
    description="A shipped backbone: abilene (2005) or geant (2012)",
)


# ---------------------------------------------------------------- topology and demands in


class NodeIn(ApiModel):
    id: str = Field(
        min_length=1,
        max_length=200,
        validation_alias=AliasChoices("id", "name"),
        description="Node id",
    )
    node_type: NodeType = "router"
    capacity: float | None = Field(
        None,
        ge=0,
        le=MAX_BANDWIDTH,
        description="Switching capacity (bandwidth unit); 0/none: none",
    )
    current_load: float | None = Field(None, ge=0, le=MAX_BANDWIDTH, description="Reported load")
    site: str | None = Field(None, max_length=200, validation_alias=AliasChoices("site", "label"))
    lat: float | None = Field(
        None, ge=-90, le=90, validation_alias=AliasChoices("lat", "latitude"), description="Degrees"
    )
    lon: float | None = Field(
        None,
        ge=-180,
        le=180,
        validation_alias=AliasChoices("lon", "longitude"),
        description="Degrees",
    )


class LinkIn(ApiModel):
    source: str = Field(min_length=1, max_length=200)
    target: str = Field(min_length=1, max_length=200)
    bandwidth: float = Field(
        ge=MIN_BANDWIDTH,
        le=MAX_BANDWIDTH,
        validation_alias=AliasChoices("bandwidth", "capacity"),
        description="Capacity per direction (bandwidth unit, Gbps for the shipped backbones)",
    )
    latency_ms: float | None = Field(
        None, ge=0, le=MAX_LATENCY_MS, description="One-way latency (ms); default from coordinates"
    )
    cost: float | None = Field(
        None,
        gt=0,
        le=1e6,
        validation_alias=AliasChoices("cost", "igp_cost", "metric"),
        description="IGP metric (default 1)",
    )
    utilization: float | None = Field(
        None, ge=0, le=100, description="Reported utilisation (fraction)"
    )
    srlg: list[str] = Field(
        default_factory=list,
        max_length=64,
        validation_alias=AliasChoices("srlg", "srlgs"),
        description="Shared-risk link groups",
    )
    id: str | None = Field(None, max_length=200, description="Link id (default 'A-B')")

    def to_kernel(self) -> dict[str, Any]:
        d = self.model_dump(exclude_none=True)
        d["capacity"] = d.pop("bandwidth")
        return d


class TopologyIn(ApiModel):
    """The original ``NetworkTopology``: nodes and links."""

    nodes: list[NodeIn] = Field(max_length=MAX_NODES)
    links: list[LinkIn] = Field(default_factory=list, max_length=MAX_LINKS)
    directed: bool = Field(False, description="One arc per link (default: full duplex)")
    name: str | None = Field(None, max_length=200)

    def to_kernel(self) -> dict[str, Any]:
        """The document :func:`prism_kernels.telecom.topology.from_dict` reads."""
        return {
            "nodes": [n.model_dump(exclude_none=True) for n in self.nodes],
            "links": [lk.to_kernel() for lk in self.links],
            "directed": self.directed,
            "name": self.name or "",
        }


class DemandIn(ApiModel):
    source: str = Field(
        min_length=1, max_length=200, validation_alias=AliasChoices("source", "src")
    )
    destination: str = Field(
        min_length=1, max_length=200, validation_alias=AliasChoices("destination", "target", "dst")
    )
    bandwidth_required: float = Field(
        ge=0,
        le=MAX_BANDWIDTH,
        validation_alias=AliasChoices("bandwidth_required", "bandwidth", "volume", "demand"),
        description="Offered traffic (bandwidth unit)",
    )
    priority: int = Field(0, ge=0, le=255, description="0..255, higher first")
    id: str | None = Field(None, max_length=200)

    def to_kernel(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class NetworkRequest(ApiModel):
    """A topology (or none: the managed network) and its demands."""

    topology: TopologyIn | None = Field(None, description="Default: the managed network")
    traffic_demands: list[DemandIn] | None = Field(
        None,
        max_length=MAX_DEMANDS,
        validation_alias=AliasChoices("traffic_demands", "demands"),
        description="Default: the managed network's demands",
    )

    def network(self) -> dict[str, Any]:
        return {
            "topology": None if self.topology is None else self.topology.to_kernel(),
            "demands": None
            if self.traffic_demands is None
            else [d.to_kernel() for d in self.traffic_demands],
        }


EXAMPLE_TOPOLOGY = {
    "nodes": [
        {"id": "router-1", "node_type": "router", "capacity": 100.0, "current_load": 20.0},
        {"id": "router-2", "node_type": "router", "capacity": 100.0, "current_load": 35.0},
        {"id": "switch-1", "node_type": "switch", "capacity": 40.0, "current_load": 10.0},
        {"id": "gateway-1", "node_type": "gateway", "capacity": 40.0, "current_load": 5.0},
    ],
    "links": [
        {
            "source": "router-1",
            "target": "router-2",
            "bandwidth": 10.0,
            "latency_ms": 5.0,
            "utilization": 0.3,
        },
        {
            "source": "router-1",
            "target": "switch-1",
            "bandwidth": 10.0,
            "latency_ms": 2.0,
            "utilization": 0.5,
        },
        {
            "source": "switch-1",
            "target": "gateway-1",
            "bandwidth": 10.0,
            "latency_ms": 2.0,
            "utilization": 0.9,
        },
        {
            "source": "router-2",
            "target": "gateway-1",
            "bandwidth": 10.0,
            "latency_ms": 4.0,
            "utilization": 0.2,
        },
    ],
}
EXAMPLE_DEMANDS = [
    {"source": "router-1", "destination": "gateway-1", "bandwidth_required": 12.0, "priority": 2},
    {"source": "router-2", "destination": "switch-1", "bandwidth_required": 3.0, "priority": 1},
]


# ---------------------------------------------------------------- optimize


class OptimizeRequest(NetworkRequest):
    objective: Objective = "balance_load"
    max_utilization: float = Field(
        1.0,
        gt=0,
        le=10,
        description="Fraction of capacity the latency and throughput objectives may fill",
    )
    save: bool = Field(True, description="Keep the result in the service (optimization_id)")

    def args(self) -> dict[str, Any]:
        """:meth:`TelecomService.optimize`'s arguments."""
        return {
            **self.network(),
            "objective": self.objective,
            "max_utilization": self.max_utilization,
            "save": self.save,
        }


class RouteOut(ApiResponse):
    demand_id: int = Field(description="Index of the demand in the request")
    demand: str = Field(description="The demand's id")
    source: str
    destination: str
    path: list[str] = Field(description="Node ids, source first")
    bandwidth: float = Field(description="Traffic on this path")
    latency_ms: float = Field(description="Latency of this path (ms)")
    split_fraction: float = Field(description="Share of the demand on this path")


class DemandOut(ApiResponse):
    demand_id: int
    demand: str
    source: str
    destination: str
    bandwidth_required: float
    carried: float
    priority: int
    latency_ms: float | None = Field(description="Traffic-weighted mean path latency (ms)")
    paths: int


class UnroutedOut(ApiResponse):
    demand_id: int
    demand: str
    source: str
    destination: str
    bandwidth_required: float
    carried: float = Field(description="What was carried (0: nothing)")
    reason: str


class LinkLoadOut(ApiResponse):
    link: str
    source: str
    target: str
    capacity: float
    load: float = Field(description="Busier direction's load")
    load_forward: float | None = Field(None, description="source -> target")
    load_reverse: float | None = Field(None, description="target -> source")
    utilization: float = Field(description="Busier direction's load / capacity")


class OptimizeResult(Timed):
    timing_aliases: ClassVar[tuple[str, ...]] = ("optimization_time_ms",)

    objective: str
    routes: list[RouteOut] = Field(description="One entry per demand and path")
    demands: list[DemandOut]
    unrouted: list[UnroutedOut] = Field(description="Demands not (fully) carried, with the reason")
    total_latency_ms: float = Field(
        description="Sum over routed demands of their mean path latency"
    )
    mean_latency_ms: float | None = Field(description="Traffic-weighted mean latency (ms)")
    max_link_utilization: float
    required_utilization: float | None = Field(
        description="Least maximum utilisation that carries every routable demand"
    )
    fits: bool = Field(description="Every routable demand fits within capacity x max_utilization")
    concurrent_scale: float | None = Field(
        description="Factor by which all demands could grow together"
    )
    throughput: float = Field(description="Traffic carried")
    offered: float = Field(description="Traffic offered")
    link_utilization: list[LinkLoadOut]
    overloaded_links: list[str] = Field(
        description="Links above capacity (balance_load when it does not fit)"
    )
    lp_solves: int
    notes: list[str]
    optimization_id: str | None = None
    optimization_time_ms: float = Field(description="The original API's name for the time (ms)")


@ROUTES.post(
    "/optimize",
    request=OptimizeRequest,
    response=OptimizeResult,
    example={
        "topology": EXAMPLE_TOPOLOGY,
        "traffic_demands": EXAMPLE_DEMANDS,
        "objective": "balance_load",
    },
    summary="Route demands: minimize_latency, maximize_throughput or balance_load (LP, HiGHS)",
)
def optimize(req: Request) -> dict:
    return req.service(TelecomService).optimize(**req.body.args())


# ---------------------------------------------------------------- congestion


class CongestionRequest(NetworkRequest):
    """A bare ``NetworkTopology`` (the original request) or ``{topology, traffic_demands}``."""

    nodes: list[NodeIn] | None = Field(
        None, max_length=MAX_NODES, description="Bare NetworkTopology"
    )
    links: list[LinkIn] | None = Field(
        None, max_length=MAX_LINKS, description="Bare NetworkTopology"
    )
    directed: bool = False
    threshold: float | None = Field(
        None, gt=0, lt=1, description="Congestion threshold (default 0.8)"
    )
    metric: Metric = "latency"
    upgrade_factor: float = Field(2.0, gt=1, le=100, description="Capacity multiple of an upgrade")

    def args(self) -> dict[str, Any]:
        """:meth:`TelecomService.congestion`'s arguments."""
        bare = self.nodes is not None or self.links is not None
        if bare and self.topology is not None:
            raise InvalidInput("topology", "give a topology or bare nodes and links, not both")
        net = self.network()
        if bare:
            net["topology"] = TopologyIn(
                nodes=self.nodes or [], links=self.links or [], directed=self.directed
            ).to_kernel()
        return {
            **net,
            "threshold": self.threshold,
            "metric": self.metric,
            "upgrade_factor": self.upgrade_factor,
            "topology_field": "" if bare else "topology",
        }


class Recommendation(ApiResponse):
    action: str = Field(description="upgrade_link, upgrade_links, reroute_demand or rebalance")
    text: str
    max_utilization_before: float
    max_utilization_after: float
    link: str | None = None
    links: list[str] | None = None
    capacity_before: float | None = None
    capacity_after: float | None = None
    capacity_for_threshold: float | None = Field(
        None, description="Capacity that puts the link at the threshold"
    )
    demand: str | None = None
    path: list[str] | None = None
    bandwidth: float | None = None


class NodeLoadOut(ApiResponse):
    node: str
    load: float = Field(description="Traffic handled (arriving plus originated)")
    utilization: float


class CongestionResult(Timed):
    congested_nodes: list[str]
    congested_links: list[list[str]] = Field(description="[source, target] pairs (original shape)")
    congested_link_ids: list[str]
    overall_health: float = Field(
        description="Mean per-element score: 1 at or below the threshold, 0 at full"
    )
    recommendations: list[str] = Field(description="Computed from the model, best first")
    recommendation_details: list[Recommendation]
    max_link_utilization: float
    threshold: float
    load_source: str = Field(
        description="demands (routed) or reported (the topology's utilisations)"
    )
    link_utilization: list[LinkLoadOut]
    node_utilization: list[NodeLoadOut]


@ROUTES.post(
    "/congestion",
    request=CongestionRequest,
    response=CongestionResult,
    example=EXAMPLE_TOPOLOGY,
    summary="Congested nodes and links, overall health, computed recommendations",
)
def congestion(req: Request) -> dict:
    return req.service(TelecomService).congestion(**req.body.args())


# ---------------------------------------------------------------- failures


class ScenarioIn(ApiModel):
    id: str | None = Field(None, max_length=200)
    links: list[str] = Field(default_factory=list, max_length=MAX_LINKS, description="Link ids")
    nodes: list[str] = Field(default_factory=list, max_length=MAX_NODES, description="Node ids")
    srlgs: list[str] = Field(default_factory=list, max_length=1000, description="SRLG names")


class FailuresRequest(NetworkRequest):
    scope: list[Scope] = Field(
        default_factory=lambda: ["links"],
        max_length=3,
        description="Element kinds failed one at a time (N-1): links, nodes, srlgs",
    )
    scenarios: list[ScenarioIn] = Field(
        default_factory=list, max_length=5000, description="Given sets of elements failed together"
    )
    metric: Metric = "latency"
    ecmp: bool = Field(True, description="Equal-cost multipath splits")
    top: int = Field(10, ge=0, le=10_000, description="Most critical scenarios listed")

    def args(self) -> dict[str, Any]:
        """:meth:`TelecomService.failures`'s arguments."""
        return {
            **self.network(),
            "scope": list(dict.fromkeys(self.scope)),
            "scenarios": [s.model_dump(exclude_none=True) for s in self.scenarios],
            "metric": self.metric,
            "ecmp": self.ecmp,
            "top": self.top,
        }


class ScenarioOut(ApiResponse):
    id: str
    kind: str = Field(description="link, node, srlg or scenario")
    elements: list[str]
    failed_links: list[str]
    max_link_utilization: float = Field(description="Busiest surviving link")
    worst_link: str | None
    worst_direction: list[str] | None
    overloaded_links: int
    demands_cut: list[str] = Field(description="Demand ids that lose connectivity")
    cut_reasons: dict[str, str]
    cut_volume: float
    rerouted: int = Field(description="Affected demands that still reach their destination")


class CriticalOut(ApiResponse):
    rank: int
    id: str
    kind: str
    elements: list[str]
    cut_volume: float
    demands_cut: int
    max_link_utilization: float


class FailuresResult(Timed):
    scenarios: list[ScenarioOut]
    critical: list[CriticalOut] = Field(
        description="Most traffic cut first, then highest utilisation"
    )
    baseline_max_link_utilization: float
    demands: int
    scenario_count: int
    metric: str


@ROUTES.post(
    "/failures",
    request=FailuresRequest,
    response=FailuresResult,
    example={
        "topology": EXAMPLE_TOPOLOGY,
        "traffic_demands": EXAMPLE_DEMANDS,
        "scope": ["links", "nodes"],
        "scenarios": [{"id": "both-uplinks", "links": ["router-1-router-2", "router-1-switch-1"]}],
    },
    summary="N-1 over links, nodes or SRLGs and given scenarios, re-routed as one batch",
)
def failures(req: Request) -> dict:
    return req.service(TelecomService).failures(**req.body.args())


# ---------------------------------------------------------------- max flow


class MaxFlowRequest(ApiModel):
    source: str = Field(
        min_length=1, max_length=200, validation_alias=AliasChoices("source", "src")
    )
    target: str = Field(
        min_length=1,
        max_length=200,
        validation_alias=AliasChoices("target", "sink", "destination", "dst"),
    )
    topology: TopologyIn | None = Field(None, description="Default: the managed network")

    def args(self) -> dict[str, Any]:
        """:meth:`TelecomService.max_flow`'s arguments."""
        return {
            "source": self.source,
            "target": self.target,
            "topology": None if self.topology is None else self.topology.to_kernel(),
        }


class CutLinkOut(ApiResponse):
    link: str
    source: str
    target: str
    capacity: float


class FlowOut(ApiResponse):
    link: str
    source: str
    target: str
    flow: float
    capacity: float


class MaxFlowResult(Timed):
    source: str
    target: str
    value: float = Field(description="Maximum flow (bandwidth unit)")
    max_flow: float = Field(description="= value")
    min_cut: list[CutLinkOut] = Field(
        description="Saturated arcs from the source side to the sink side"
    )
    min_cut_capacity: float = Field(description="= value (max-flow min-cut)")
    source_side: list[str]
    sink_side: list[str]
    flows: list[FlowOut] = Field(description="Flow on every arc that carries some")
    method: str = Field(description="dinic (SciPy, integer-scaled) or highs (LP)")


@ROUTES.post(
    "/maxflow",
    request=MaxFlowRequest,
    response=MaxFlowResult,
    example={"source": "router-1", "target": "gateway-1", "topology": EXAMPLE_TOPOLOGY},
    summary="Maximum flow and minimum cut between two sites",
)
def maxflow(req: Request) -> dict:
    return req.service(TelecomService).max_flow(**req.body.args())


# ---------------------------------------------------------------- the managed network


class TopologyPut(ApiModel):
    """The new managed network: a ``NetworkTopology`` (top level or under ``topology``) or a
    shipped ``backbone``, with optional ``traffic_demands`` (default: a gravity matrix)."""

    nodes: list[NodeIn] | None = Field(None, max_length=MAX_NODES)
    links: list[LinkIn] | None = Field(None, max_length=MAX_LINKS)
    directed: bool = False
    name: str | None = Field(None, max_length=200)
    topology: TopologyIn | None = None
    backbone: Backbone | None = None
    traffic_demands: list[DemandIn] | None = Field(
        None, max_length=MAX_DEMANDS, validation_alias=AliasChoices("traffic_demands", "demands")
    )

    @model_validator(mode="after")
    def _one_source(self) -> TopologyPut:
        given = [self.nodes is not None, self.topology is not None, self.backbone is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one of: nodes and links, topology, backbone")
        return self

    def args(self) -> dict[str, Any]:
        """:meth:`TelecomService.replace_topology`'s arguments."""
        topo = self.topology
        if self.nodes is not None:
            topo = TopologyIn(
                nodes=self.nodes, links=self.links or [], directed=self.directed, name=self.name
            )
        return {
            "topology": None if topo is None else topo.to_kernel(),
            "backbone": self.backbone,
            "demands": None
            if self.traffic_demands is None
            else [d.to_kernel() for d in self.traffic_demands],
        }


class NodeOut(ApiResponse):
    id: str
    node_type: str
    site: str
    capacity: float | None
    current_load: float
    lat: float | None
    lon: float | None


class LinkOut(ApiResponse):
    id: str
    source: str
    target: str
    bandwidth: float
    capacity: float
    latency_ms: float
    cost: float
    srlg: list[str]
    utilization: float | None


class DemandRecord(ApiResponse):
    id: str
    source: str
    destination: str
    bandwidth_required: float
    priority: int


class LinkState(ApiResponse):
    utilization: float
    load: float
    congested: bool


class TopologyDoc(ApiResponse):
    name: str
    directed: bool
    unit: str
    nodes: list[NodeOut]
    links: list[LinkOut]
    traffic_demands: list[DemandRecord]
    demand_source: str = Field(description="given, or how the default matrix was made")
    backbone: str | None = Field(description="The shipped backbone it came from, if any")
    source: dict[str, Any] | None = Field(None, description="Provenance of a shipped backbone")
    licence: str | None = None
    set_here: list[str] | None = Field(
        None, description="Figures not in the source, and how they were set"
    )
    link_state: dict[str, LinkState] = Field(description="Per link, from the last routing")
    routing: str = Field(description="igp, or optimize:<objective>: the last routing computed")
    updated: int = Field(description="Unix seconds")


@ROUTES.get("/topology", response=TopologyDoc, summary="The managed network")
def topology(req: Request) -> dict:
    return req.service(TelecomService).topology()


PUT_EXAMPLE = {**EXAMPLE_TOPOLOGY, "traffic_demands": EXAMPLE_DEMANDS}


def replace_topology(req: Request) -> dict:
    """Replace the managed network (a NetworkTopology or a shipped backbone)."""
    return req.service(TelecomService).replace_topology(**req.body.args())


ROUTES.add("PUT", "/topology", request=TopologyPut, response=TopologyDoc, example=PUT_EXAMPLE)(
    replace_topology
)
ROUTES.post(
    "/topology",
    request=TopologyPut,
    response=TopologyDoc,
    example={"backbone": "abilene"},
    summary="Replace the managed network (as PUT)",
)(replace_topology)


class NodeMetric(ApiResponse):
    node: str
    degree: int = Field(description="Links at the node")
    betweenness: float = Field(description="Normalised, by hop count")


class MetricsResult(Timed):
    nodes: list[NodeMetric]
    articulation_points: list[str]
    bridges: list[str]
    node_connectivity: int
    edge_connectivity: int
    diameter_hops: float | None
    diameter_ms: float | None
    components: int


@ROUTES.get(
    "/topology/metrics",
    response=MetricsResult,
    summary="Degree, betweenness, articulation points, bridges, connectivity, diameter",
)
def topology_metrics(req: Request) -> dict:
    return req.service(TelecomService).metrics()


class NodeState(ApiResponse):
    id: str
    status: str = Field(description="online, congested (>= threshold) or overloaded (> 1)")
    load: float = Field(description="Traffic handled (bandwidth unit)")
    utilization: float
    packet_loss: float = Field(description="Fluid estimate: the excess over capacity (fraction)")
    latency_ms: float | None = Field(description="Mean latency of the demands it originates (ms)")
    capacity: float | None
    site: str
    node_type: str
    degree: int
    lat: float | None
    lon: float | None
    routing: str
    updated: int


@ROUTES.get(
    "/node/{node_id}",
    response=NodeState,
    summary="One node of the managed network (404 when unknown)",
)
def node(req: Request) -> dict:
    return req.service(TelecomService).node(req.path["node_id"])
