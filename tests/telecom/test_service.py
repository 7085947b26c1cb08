"""TelecomService: the managed network in Collections (survives a restart), validate first and
mutate after, per-node state, NetworkCongestion events when a link crosses the threshold."""

from __future__ import annotations

import pytest

from prism_kernels.errors import InvalidInput, NotFound
from prism_kernels.service import TIMING_KEY
from prism_kernels.store import Store
from prism_kernels.telecom import te
from prism_kernels.telecom.service import DEFAULT_PEAK, TelecomService

TOPO = {
    "nodes": [{"id": "a"}, {"id": "b"}, {"id": "c"}],
    "links": [
        {"source": "a", "target": "b", "capacity": 10.0, "latency_ms": 1.0},
        {"source": "b", "target": "c", "capacity": 10.0, "latency_ms": 1.0},
        {"source": "a", "target": "c", "capacity": 10.0, "latency_ms": 5.0},
    ],
}


def _demands(v: float) -> list[dict]:
    return [{"source": "a", "destination": "c", "bandwidth_required": v, "id": "ac"}]


def test_default_network_is_abilene_with_a_stated_gravity_matrix():
    svc = TelecomService()
    t = svc.topology()
    assert t["backbone"] == "abilene" and len(t["nodes"]) == 11 and len(t["traffic_demands"]) == 110
    assert "gravity model" in t["demand_source"] and "Topology Zoo" in t["source"]["dataset"]
    worst = max(s["utilization"] for s in t["link_state"].values())
    assert worst == pytest.approx(DEFAULT_PEAK)
    n = svc.node("NYC")
    assert n["status"] == "online" and n["degree"] == 2 and n["latency_ms"] > 0
    with pytest.raises(NotFound):
        svc.node("ZZZ")
    h = svc.health()
    assert h["nodes_monitored"] == 11 and h["links_monitored"] == 14 and h["stored"]["node"] == 11


def test_a_rejected_replace_changes_nothing():
    svc = TelecomService()
    before = svc.topology()
    bad = {
        **TOPO,
        "links": TOPO["links"]
        + [{"source": "a", "target": "zz", "capacity": 1.0, "latency_ms": 1}],
    }
    with pytest.raises(InvalidInput) as e:
        svc.replace_topology(bad)
    assert e.value.field == "topology.links.3.target"
    with pytest.raises(InvalidInput) as e:
        svc.replace_topology(
            TOPO, demands=[{"source": "a", "destination": "q", "bandwidth_required": 1}]
        )
    assert e.value.field == "traffic_demands.0.destination"
    with pytest.raises(InvalidInput):
        svc.replace_topology(TOPO, backbone="geant")
    assert svc.topology() == before


def test_events_when_a_link_crosses_the_threshold_and_state_follows_routing():
    svc = TelecomService(threshold=0.8)
    events = []
    svc.bus.subscribe(events.append)
    svc.replace_topology(TOPO, _demands(9.0))  # a-b-c carries 9 of 10
    crossed = [e for e in events if e.type == "NetworkCongestion"]
    assert {e.data["link"] for e in crossed} == {"a-b", "b-c"}
    assert (
        crossed[0].data["utilization"] == pytest.approx(0.9)
        and crossed[0].data["packet_loss"] == 0.0
    )
    assert svc.node("b")["status"] == "congested"
    svc.replace_topology(TOPO, _demands(9.0))  # replacing resets the state: they cross again
    events.clear()
    svc.congestion()  # same state: nothing crosses
    assert not [e for e in events if e.type == "NetworkCongestion"]
    out = svc.optimize(objective="balance_load")  # the managed network follows the optimum
    assert out["max_link_utilization"] == pytest.approx(
        te.required_utilization(*svc.managed()), rel=1e-6
    )
    assert svc.node("b")["routing"] == "optimize:balance_load"
    assert svc.node("b")["status"] == "online"
    assert svc.topology()["link_state"]["a-c"]["utilization"] > 0
    assert svc.get_optimization(out["optimization_id"])["objective"] == "balance_load"
    svc.replace_topology(TOPO, _demands(25.0))
    over = [e for e in events if e.type == "NetworkCongestion" and e.data["link"] == "a-b"][-1]
    assert over.data["utilization"] == pytest.approx(2.5)
    assert over.data["packet_loss"] == pytest.approx(1 - 1 / 2.5)
    assert svc.node("b")["status"] == "overloaded"


def test_analyses_on_given_topologies_leave_the_managed_one_alone():
    svc = TelecomService()
    before = svc.topology()
    out = svc.optimize(TOPO, _demands(12.0), "minimize_latency", save=False)
    assert out["throughput"] == pytest.approx(12.0) and "optimization_id" not in out
    assert {tuple(r["path"]) for r in out["routes"]} == {("a", "b", "c"), ("a", "c")}
    assert out[TIMING_KEY] >= 0
    f = svc.failures(TOPO, _demands(1.0), scope=["links", "nodes"])
    assert f["scenario_count"] == 6 and f["critical"][0]["cut_volume"] == 1.0
    assert svc.max_flow("a", "c", TOPO)["value"] == pytest.approx(20.0)
    assert svc.metrics(TOPO)["node_connectivity"] == 2
    assert svc.topology() == before
    with pytest.raises(InvalidInput) as e:
        svc.optimize(TOPO, None)
    assert e.value.field == "traffic_demands"
    with pytest.raises(InvalidInput) as e:
        svc.max_flow("a", "a", TOPO)
    assert e.value.field == "target"


def test_managed_network_survives_a_restart(tmp_path):
    path = tmp_path / "prism.sqlite"
    store = Store(path)
    svc = TelecomService(store=store)
    svc.replace_topology(backbone="geant")
    svc.optimize(objective="balance_load")
    store.close()
    store = Store(path)
    again = TelecomService(store=store)
    t = again.topology()
    assert t["backbone"] == "geant" and len(t["nodes"]) == 40
    assert again.node("DE")["routing"] == "optimize:balance_load"
    assert len(again.list_optimizations()) == 1
    topo, dem = again.managed()
    assert topo.m == 61 and len(dem) == 40 * 39
    store.close()
