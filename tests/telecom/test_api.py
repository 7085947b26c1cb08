"""``/api/v1/telecom``: every route through the real session server, checked against the
kernels and NetworkX; bad input answered with a JSON 400/404 naming the field (or the
unrouted demand and its reason); NetworkCongestion on the WebSocket; the managed network
across a restart."""

from __future__ import annotations

import copy
import json
import time

import networkx as nx
import pytest
from websockets.sync.client import connect

from prism_kernels.telecom import te
from prism_kernels.telecom import topology as T
from tests.apiutil import assert_error
from tests.apiutil import ok as _ok
from tests.serverutil import KEYS, PrismServer
from widgets.server.routes.telecom import EXAMPLE_DEMANDS, EXAMPLE_TOPOLOGY, ROUTES

API = "/api/v1/telecom"


def _error(r, status: int, field: str | None = None) -> dict:
    return assert_error(r, status, field, named_in_message=False)


def _body(**kw) -> dict:
    return {
        "topology": copy.deepcopy(EXAMPLE_TOPOLOGY),
        "traffic_demands": copy.deepcopy(EXAMPLE_DEMANDS),
        **kw,
    }


# ---------------------------------------------------------------- optimize


@pytest.mark.parametrize(
    "objective", ["balance_load", "BalanceLoad", "minimize_latency", "maximize-throughput", "mlu"]
)
def test_optimize_original_payload_against_the_kernel(api, objective):
    d = _ok(api.post(f"{API}/optimize", json=_body(objective=objective)))
    topo = T.from_dict(EXAMPLE_TOPOLOGY)
    dem = T.demands_from_records(topo, EXAMPLE_DEMANDS)
    assert d["required_utilization"] == pytest.approx(te.required_utilization(topo, dem), rel=1e-9)
    assert d["optimization_time_ms"] == d["computation_time_ms"] >= 0
    assert d["offered"] == 15.0 and d["fits"] is True and d["unrouted"] == []
    assert d["throughput"] == pytest.approx(15.0)
    for r in d["routes"]:
        assert r["path"][0] == r["source"] and r["path"][-1] == r["destination"]
        assert r["split_fraction"] == pytest.approx(r["bandwidth"] / [12.0, 3.0][r["demand_id"]])
    for dem in d["demands"]:
        share = sum(r["split_fraction"] for r in d["routes"] if r["demand_id"] == dem["demand_id"])
        assert share == pytest.approx(1.0)
    util = {x["link"]: x["utilization"] for x in d["link_utilization"]}
    assert max(util.values()) == pytest.approx(d["max_link_utilization"])
    assert d["max_link_utilization"] <= 1 + 1e-6
    if d["objective"] == "balance_load":
        assert d["max_link_utilization"] == pytest.approx(d["required_utilization"], rel=1e-6)


def test_optimize_when_the_demands_do_not_fit(api):
    body = _body(objective="minimize_latency")
    body["traffic_demands"][0]["bandwidth_required"] = 25.0  # router-1 has 2 x 10 out
    d = _ok(api.post(f"{API}/optimize", json=body))
    assert d["fits"] is False and d["max_link_utilization"] <= 1 + 1e-6
    # priority 2 first: 20 of its 25 fill both of router-1's links and router-2 -> gateway-1,
    # which leaves no path for the priority-1 demand router-2 -> switch-1
    assert d["throughput"] == pytest.approx(20.0)
    assert [u["demand_id"] for u in d["unrouted"]] == [0, 1]
    assert [u["carried"] for u in d["unrouted"]] == pytest.approx([20.0, 0.0], abs=1e-6)
    assert "insufficient capacity" in d["unrouted"][0]["reason"]
    assert "priority 1" in d["unrouted"][1]["reason"]
    d = _ok(api.post(f"{API}/optimize", json={**body, "objective": "balance_load"}))
    assert d["fits"] is False and d["throughput"] == 28.0 and d["unrouted"] == []
    assert d["overloaded_links"] and d["max_link_utilization"] == pytest.approx(
        d["required_utilization"], rel=1e-6
    )


def test_optimize_managed_network_and_disconnected_pair(api):
    _ok(api.put(f"{API}/topology", json={"backbone": "abilene"}))
    d = _ok(api.post(f"{API}/optimize", json={"objective": "minimize_latency"}))
    assert len(d["demands"]) == 110 and d["fits"] and d["unrouted"] == []
    assert d["optimization_id"].startswith("opt-")
    assert _ok(api.get(f"{API}/node/NYC"))["routing"] == "optimize:minimize_latency"
    body = _body()
    body["topology"]["nodes"].append({"id": "island"})
    body["traffic_demands"].append(
        {"source": "router-1", "destination": "island", "bandwidth_required": 1.0}
    )
    d = _ok(api.post(f"{API}/optimize", json=body))
    lost = [u for u in d["unrouted"] if u["destination"] == "island"]
    assert (
        lost and lost[0]["reason"] == "no path from router-1 to island" and lost[0]["carried"] == 0
    )


@pytest.mark.parametrize(
    "change,field",
    [
        (
            lambda b: b["traffic_demands"][0].update(destination="nowhere"),
            "traffic_demands.0.destination",
        ),
        (lambda b: b["topology"]["links"][1].update(target="ghost"), "topology.links.1.target"),
        (lambda b: b["topology"]["links"][0].update(bandwidth=-5.0), "topology.links.0.bandwidth"),
        (lambda b: b["topology"].update(nodes=[], links=[]), "topology.nodes"),
        (lambda b: b["topology"]["links"][0].pop("bandwidth"), "topology.links.0.bandwidth"),
        (
            lambda b: b["traffic_demands"][0].update(bandwidth_required=-1),
            "traffic_demands.0.bandwidth_required",
        ),
        (lambda b: b["traffic_demands"][0].update(priority=300), "traffic_demands.0.priority"),
        (lambda b: b.update(objective="fastest"), "objective"),
        (
            lambda b: b["topology"]["nodes"][0].update(node_type="satellite"),
            "topology.nodes.0.node_type",
        ),
        (
            lambda b: b["topology"]["links"][0].update(source="router-1", target="router-1"),
            "topology.links.0.target",
        ),
    ],
)
def test_optimize_bad_input_names_the_field(api, change, field):
    body = _body()
    change(body)
    _error(api.post(f"{API}/optimize", json=body), 400, field)


def test_non_finite_and_malformed_bodies(api):
    raw = json.dumps(_body()).replace('"bandwidth": 10.0', '"bandwidth": NaN', 1)
    _error(
        api.post(f"{API}/optimize", content=raw, headers={"Content-Type": "application/json"}), 400
    )
    _error(api.post(f"{API}/optimize", json={"topology": {"links": []}}), 400, "topology.nodes")
    _error(api.post(f"{API}/optimize", json={"topology": EXAMPLE_TOPOLOGY}), 400, "traffic_demands")


# ---------------------------------------------------------------- congestion


def test_congestion_bare_network_topology_as_the_original(api):
    d = _ok(api.post(f"{API}/congestion", json=EXAMPLE_TOPOLOGY))
    assert d["load_source"] == "reported" and d["threshold"] == 0.8
    assert d["congested_links"] == [["switch-1", "gateway-1"]]
    assert d["congested_nodes"] == []  # reported loads: 20/100, 35/100, 10/40, 5/40
    assert 0 < d["overall_health"] < 1
    assert d["recommendations"] and "switch-1-gateway-1" in d["recommendations"][0]
    assert d["recommendation_details"][0]["max_utilization_after"] < 0.9
    _error(
        api.post(
            f"{API}/congestion",
            json={
                **EXAMPLE_TOPOLOGY,
                "links": [{"source": "router-1", "target": "x", "bandwidth": 1, "latency_ms": 1}],
            },
        ),
        400,
        "links.0.target",
    )
    _error(api.post(f"{API}/congestion", json={"nodes": []}), 400, "nodes")
    _error(
        api.post(f"{API}/congestion", json={**EXAMPLE_TOPOLOGY, "topology": EXAMPLE_TOPOLOGY}),
        400,
        "topology",
    )


def test_congestion_with_demands_routes_them(api):
    d = _ok(api.post(f"{API}/congestion", json=_body(threshold=0.5)))
    assert d["load_source"] == "demands"
    util = {x["link"]: x["utilization"] for x in d["link_utilization"]}
    assert util["router-1-switch-1"] == pytest.approx(1.2)  # 12 on the 4 ms path, 10 capacity
    actions = {r["action"] for r in d["recommendation_details"]}
    # two links at 1.2: upgrading one alone would not lower the maximum, so it is not offered
    assert actions == {"rebalance", "upgrade_links"}


# ---------------------------------------------------------------- failures


def test_failures_n_minus_1_and_given_scenarios(api):
    body = _body(
        scope=["links", "node"],
        scenarios=[{"id": "both", "links": ["router-1-router-2", "router-1-switch-1"]}],
    )
    d = _ok(api.post(f"{API}/failures", json=body))
    assert d["scenario_count"] == 4 + 4 + 1 and d["demands"] == 2
    by = {s["id"]: s for s in d["scenarios"]}
    assert by["both"]["demands_cut"] == ["0"] and "no path" in by["both"]["cut_reasons"]["0"]
    assert by["node:router-1"]["demands_cut"] == ["0"]
    assert by["link:router-1-switch-1"]["rerouted"] == 1
    # router-1 -> gateway-1 (12) moves onto router-2 -> gateway-1, which also carries the 3
    assert by["link:router-1-switch-1"]["max_link_utilization"] == pytest.approx(1.5)
    assert by["link:router-1-switch-1"]["worst_direction"] == ["router-2", "gateway-1"]
    assert d["critical"][0]["cut_volume"] == 12.0 and d["critical"][0]["rank"] == 1
    _error(
        api.post(f"{API}/failures", json=_body(scenarios=[{"links": ["nope"]}])),
        400,
        "scenarios.0.links.0",
    )
    _error(api.post(f"{API}/failures", json=_body(scope=["routers"])), 400, "scope.0")


# ---------------------------------------------------------------- max flow


def test_maxflow_against_networkx(api):
    d = _ok(
        api.post(
            f"{API}/maxflow",
            json={"source": "router-1", "target": "gateway-1", "topology": EXAMPLE_TOPOLOGY},
        )
    )
    G = nx.Graph()
    for link in EXAMPLE_TOPOLOGY["links"]:
        G.add_edge(link["source"], link["target"], capacity=link["bandwidth"])
    value, (S, _) = nx.minimum_cut(G, "router-1", "gateway-1")
    assert d["value"] == d["max_flow"] == pytest.approx(value) == d["min_cut_capacity"]
    assert set(d["source_side"]) == S and d["method"] == "dinic"
    _ok(api.put(f"{API}/topology", json={"backbone": "geant"}))
    d = _ok(api.post(f"{API}/maxflow", json={"source": "UK", "target": "DE"}))
    assert d["value"] > 0 and all(c["capacity"] > 0 for c in d["min_cut"])
    _error(api.post(f"{API}/maxflow", json={"source": "XX", "target": "DE"}), 400, "source")
    _error(api.post(f"{API}/maxflow", json={"source": "DE", "target": "DE"}), 400, "target")
    _error(api.post(f"{API}/maxflow", json={"source": "DE"}), 400, "target")


# ---------------------------------------------------------------- the managed network


def test_topology_get_put_post_node_and_metrics(server, api):
    d = _ok(
        api.put(f"{API}/topology", json={**EXAMPLE_TOPOLOGY, "traffic_demands": EXAMPLE_DEMANDS})
    )
    assert [n["id"] for n in d["nodes"]] == ["router-1", "router-2", "switch-1", "gateway-1"]
    assert d["demand_source"] == "given" and len(d["traffic_demands"]) == 2
    got = _ok(api.get(f"{API}/topology"))
    assert got["links"] == d["links"] and got["routing"] == "igp"
    node = _ok(api.get(f"{API}/node/switch-1"))
    assert {"id", "status", "load", "packet_loss", "latency_ms"} <= set(node)
    # switch-1 has a capacity (40): it handles 12 arriving from router-1 and 3 from gateway-1
    assert node["status"] == "online" and node["utilization"] == pytest.approx(15 / 40)
    assert node["packet_loss"] == 0.0
    link = _ok(api.get(f"{API}/topology"))["link_state"]["router-1-switch-1"]
    assert link["utilization"] == pytest.approx(1.2) and link["congested"] is True
    _error(api.get(f"{API}/node/router-99"), 404)
    m = _ok(api.get(f"{API}/topology/metrics"))
    assert m["node_connectivity"] == 2 and m["bridges"] == [] and m["components"] == 1
    d = _ok(api.post(f"{API}/topology", json={"backbone": "GEANT"}))
    assert d["backbone"] == "geant" and len(d["links"]) == 61 and d["licence"] and d["set_here"]
    assert "gravity model" in d["demand_source"]
    _error(api.put(f"{API}/topology", json={}), 400)
    _error(api.put(f"{API}/topology", json={"backbone": "arpanet"}), 400, "backbone")
    _error(
        api.put(
            f"{API}/topology",
            json={
                "nodes": [{"id": "a"}],
                "links": [{"source": "a", "target": "b", "bandwidth": 1}],
            },
        ),
        400,
        "topology.links.0.target",
    )
    assert _ok(api.get(f"{API}/topology"))["backbone"] == "geant"  # rejected: unchanged
    with server.client("readonly") as ro:
        assert ro.put(f"{API}/topology", json={"backbone": "abilene"}).status_code == 403
        assert ro.get(f"{API}/topology").status_code == 200


def test_health_reports_the_managed_network(api):
    _ok(api.put(f"{API}/topology", json={"backbone": "abilene"}))
    before = _ok(api.get(f"{API}/health"))
    _ok(api.post(f"{API}/optimize", json={}))
    h = _ok(api.get(f"{API}/health"))
    assert h["status"] == "healthy" and h["domain"] == "telecom"
    assert h["nodes_monitored"] == 11 and h["links_monitored"] == 14
    assert h["optimizations_run"] == before["optimizations_run"] + 1
    assert h["avg_optimization_time_ms"] == h["optimization_latency_ms"] > 0
    assert h["last_optimization"]["objective"] == "balance_load"


def test_network_congestion_event_on_websocket(server, api):
    with connect(
        server.ws_url,
        additional_headers={"Authorization": f"Bearer {KEYS['user']}"},
        open_timeout=10,
    ) as ws:
        ws.send(json.dumps({"type": "Subscribe", "event_type": "NetworkCongestion"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "Subscribed"
        _ok(
            api.put(
                f"{API}/topology", json={**EXAMPLE_TOPOLOGY, "traffic_demands": EXAMPLE_DEMANDS}
            )
        )
        deadline, msg = time.time() + 10, {}
        while time.time() < deadline:
            msg = json.loads(ws.recv(timeout=10))
            if msg["type"] == "NetworkCongestion" and msg.get("link") == "router-1-switch-1":
                break
        assert msg["node_id"] == "router-1" and msg["utilization"] == pytest.approx(1.2)
        assert msg["packet_loss"] == pytest.approx(1 - 1 / 1.2) and isinstance(
            msg["timestamp"], int
        )


def test_every_example_answers_200(api):
    """The request examples in the OpenAPI document work as written."""
    bodies = [r for r in ROUTES.routes if r.method in ("POST", "PUT")]
    assert {f"{r.method} {r.path.removeprefix(API)}" for r in bodies} == {
        "POST /optimize",
        "POST /congestion",
        "POST /failures",
        "POST /maxflow",
        "PUT /topology",
        "POST /topology",
    }
    for route in bodies:
        d = _ok(api.request(route.method, route.path, json=route.example))
        assert d, route.path
    doc = api.get("/api/v1/openapi.json").json()
    assert doc["paths"][f"{API}/topology"]["put"]["requestBody"]["content"]["application/json"][
        "example"
    ]


@pytest.mark.slow
def test_managed_network_survives_a_server_restart(tmp_path):
    with PrismServer(data_dir=tmp_path, dashboards=False) as srv, srv.client("user") as c:
        _ok(c.put(f"{API}/topology", json={**EXAMPLE_TOPOLOGY, "traffic_demands": EXAMPLE_DEMANDS}))
        _ok(c.post(f"{API}/optimize", json={"objective": "balance_load"}))
    with PrismServer(data_dir=tmp_path, dashboards=False) as srv, srv.client("user") as c:
        t = _ok(c.get(f"{API}/topology"))
        assert [n["id"] for n in t["nodes"]] == ["router-1", "router-2", "switch-1", "gateway-1"]
        assert t["routing"] == "optimize:balance_load" and len(t["traffic_demands"]) == 2
        assert _ok(c.get(f"{API}/node/gateway-1"))["routing"] == "optimize:balance_load"
        assert _ok(c.get(f"{API}/health"))["stored"]["optimization"] == 1
