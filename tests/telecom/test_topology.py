"""The topology model: builders (original NetworkTopology, NetworkX, shipped backbones,
random), validation naming the field, demands."""

from __future__ import annotations

import json
import math

import networkx as nx
import numpy as np
import pytest

from prism_kernels.errors import InvalidInput
from prism_kernels.telecom import topology as T

SMALL = {
    "nodes": [
        {"id": "a", "node_type": "router", "capacity": 100.0, "current_load": 20.0},
        {"id": "b", "node_type": "switch", "capacity": 40.0, "current_load": 5.0},
        {"id": "c"},
    ],
    "links": [
        {"source": "a", "target": "b", "bandwidth": 10.0, "latency_ms": 5.0, "utilization": 0.3},
        {"source": "b", "target": "c", "capacity": 2.5, "latency_ms": 1.0, "srlg": ["duct-1"]},
        {
            "source": "a",
            "target": "c",
            "bandwidth": 1.0,
            "latency_ms": 9.0,
            "cost": 7,
            "srlg": "duct-1",
        },
    ],
}


def test_from_original_network_topology():
    t = T.from_dict(SMALL)
    assert (t.n, t.m, t.n_arcs) == (3, 3, 6)
    assert t.node_ids == ("a", "b", "c") and t.link_ids == ("a-b", "b-c", "a-c")
    np.testing.assert_array_equal(t.capacity, [10.0, 2.5, 1.0])
    np.testing.assert_array_equal(t.cost, [1.0, 1.0, 7.0])
    assert t.node_type == ("router", "switch", "router")
    assert math.isnan(t.node_capacity[2]) and t.node_load[0] == 20.0
    assert t.link_utilization[0] == 0.3 and math.isnan(t.link_utilization[1])
    assert set(t.srlg_groups) == {"duct-1"}
    np.testing.assert_array_equal(t.srlg_groups["duct-1"], [1, 2])
    # arcs: forward then reverse, each with the link's capacity
    np.testing.assert_array_equal(t.arc_src, [0, 1, 0, 1, 2, 2])
    np.testing.assert_array_equal(t.arc_capacity, [10.0, 2.5, 1.0, 10.0, 2.5, 1.0])
    np.testing.assert_array_equal(t.arc_weights("hops"), np.ones(6))
    # the document round-trips
    again = T.from_dict(t.to_dict())
    np.testing.assert_array_equal(again.capacity, t.capacity)
    assert again.srlg == t.srlg and again.link_ids == t.link_ids
    json.dumps(t.to_dict())


def test_directed_topology_has_one_arc_per_link():
    t = T.from_dict({**SMALL, "directed": True})
    assert t.n_arcs == 3 and t.link_ids[0] == "a->b"


@pytest.mark.parametrize(
    "change,field",
    [
        (lambda d: d.update(nodes=[]), "topology.nodes"),
        (lambda d: d.pop("nodes"), "topology.nodes"),
        (lambda d: d["links"][1].update(target="zz"), "topology.links.1.target"),
        (lambda d: d["links"][0].update(source="nowhere"), "topology.links.0.source"),
        (lambda d: d["links"][0].update(bandwidth=-1.0), "topology.links.0.capacity"),
        (lambda d: d["links"][0].update(bandwidth=0.0), "topology.links.0.capacity"),
        (lambda d: d["links"][0].update(bandwidth=float("nan")), "topology.links.0.capacity"),
        (lambda d: d["links"][0].update(bandwidth=float("inf")), "topology.links.0.capacity"),
        (lambda d: d["links"][0].pop("bandwidth"), "topology.links.0.capacity"),
        (lambda d: d["links"][0].update(latency_ms=-2.0), "topology.links.0.latency_ms"),
        (lambda d: d["links"][0].pop("latency_ms"), "topology.links.0.latency_ms"),
        (lambda d: d["links"][2].update(cost=0), "topology.links.2.cost"),
        (lambda d: d["links"][0].update(target="a"), "topology.links.0.target"),
        (lambda d: d["nodes"][1].update(id="a"), "topology.nodes.1.id"),
        (lambda d: d["nodes"][0].update(capacity=-5.0), "topology.nodes.0.capacity"),
        (lambda d: d["nodes"][0].update(lat=91.0), "topology.nodes.0.lat"),
    ],
)
def test_bad_topologies_name_the_field(change, field):
    doc = json.loads(json.dumps(SMALL))
    change(doc)
    with pytest.raises(InvalidInput) as e:
        T.from_dict(doc)
    assert e.value.field == field


def test_latency_from_coordinates_or_default():
    doc = {
        "nodes": [
            {"id": "x", "lat": 0.0, "lon": 0.0},
            {"id": "y", "lat": 0.0, "lon": 1.0},
            {"id": "z"},
        ],
        "links": [
            {"source": "x", "target": "y", "bandwidth": 1.0},
            {"source": "y", "target": "z", "bandwidth": 1.0},
        ],
    }
    with pytest.raises(InvalidInput, match="coordinates") as e:
        T.from_dict(doc)
    assert e.value.field == "topology.links.1.latency_ms"
    t = T.from_dict(doc, default_latency_ms=3.0)
    # one degree of longitude at the equator: 111.19 km at 200 km/ms
    assert t.latency_ms[0] == pytest.approx(2 * math.pi * 6371.0 / 360 / 200.0, rel=1e-9)
    assert t.latency_ms[1] == 3.0


def test_single_node_and_no_links_are_valid():
    t = T.from_dict({"nodes": [{"id": "only"}], "links": []})
    assert (t.n, t.m, t.n_arcs) == (1, 0, 0)


def test_from_networkx_reads_attributes_and_direction():
    G = nx.MultiGraph()
    G.add_node(1, lat=10.0, lon=20.0, label="one")
    G.add_node(2, lat=11.0, lon=20.0)
    G.add_edge(1, 2, capacity=10.0, latency_ms=1.0, srlg=["s"])
    G.add_edge(1, 2, capacity=5.0, latency_ms=2.0)
    t = T.from_networkx(G)
    assert t.node_ids == ("1", "2") and t.site[0] == "one"
    assert t.link_ids == ("1-2", "1-2#2") and t.srlg[0] == ("s",)
    D = nx.DiGraph([(0, 1)])
    D[0][1]["capacity"] = 3.0
    td = T.from_networkx(D, default_latency_ms=1.0)
    assert td.directed and td.n_arcs == 1
    with pytest.raises(InvalidInput) as e:
        T.from_networkx(nx.path_graph(2))
    assert e.value.field == "graph.links.0.capacity"


def test_shipped_backbones_state_their_sources():
    ab, ge = T.load_backbone("abilene"), T.load_backbone("GÉANT")
    assert (ab.n, ab.m) == (11, 14) and (ge.n, ge.m) == (40, 61)
    for t in (ab, ge):
        assert "Topology Zoo" in t.meta["source"]["dataset"] and t.meta["licence"]
        assert any("latency" in s for s in t.meta["set_here"])
        assert np.all(np.isfinite(t.lat)) and np.all(np.isfinite(t.lon))
        assert np.all(t.latency_ms > 0) and np.all(t.capacity > 0)
        G = nx.Graph(list(zip(t.link_src.tolist(), t.link_dst.tolist(), strict=True)))
        assert nx.is_connected(G) and G.number_of_nodes() == t.n
    np.testing.assert_allclose(ab.capacity, 9.95328)  # OC-192
    assert sorted(set(ge.capacity.tolist())) == [0.155, 1.0, 2.5, 10.0]
    # New York - Chicago: 1145 km great circle, 5.7 ms at 200 km/ms
    k = ab.link_index["NYC-CHI"]
    assert ab.latency_ms[k] == pytest.approx(1145.0 / 200.0, rel=0.01)
    with pytest.raises(InvalidInput) as e:
        T.load_backbone("arpanet")
    assert e.value.field == "backbone"


def test_random_topology_is_seeded_and_connected():
    a, b = T.random_topology(200, 600, seed=3), T.random_topology(200, 600, seed=3)
    np.testing.assert_array_equal(a.link_src, b.link_src)
    assert a.m == 600
    G = nx.Graph(list(zip(a.link_src.tolist(), a.link_dst.tolist(), strict=True)))
    assert nx.is_connected(G) and G.number_of_nodes() == 200
    assert T.random_topology(1).m == 0


def test_demands_validation_names_the_entry():
    t = T.from_dict(SMALL)
    d = T.demands_from_records(
        t,
        [
            {"source": "a", "destination": "c", "bandwidth_required": 2.0, "priority": 3},
            {"source": "b", "target": "a", "volume": 1},
        ],
    )
    np.testing.assert_array_equal(d.src, [0, 1])
    np.testing.assert_array_equal(d.priority, [3, 0])
    assert d.ids == ("0", "1")
    cases = [
        ({"source": "q", "destination": "c", "bandwidth_required": 1}, "traffic_demands.0.source"),
        (
            {"source": "a", "destination": "q", "bandwidth_required": 1},
            "traffic_demands.0.destination",
        ),
        (
            {"source": "a", "destination": "a", "bandwidth_required": 1},
            "traffic_demands.0.destination",
        ),
        (
            {"source": "a", "destination": "b", "bandwidth_required": -1},
            "traffic_demands.0.bandwidth_required",
        ),
        (
            {"source": "a", "destination": "b", "bandwidth_required": float("nan")},
            "traffic_demands.0.bandwidth_required",
        ),
        ({"source": "a", "destination": "b"}, "traffic_demands.0.bandwidth_required"),
        (
            {"source": "a", "destination": "b", "bandwidth_required": 1, "priority": 256},
            "traffic_demands.0.priority",
        ),
    ]
    for rec, field in cases:
        with pytest.raises(InvalidInput) as e:
            T.demands_from_records(t, [rec])
        assert e.value.field == field, rec
    m = T.demands_from_matrix(t, np.array([[0, 1, 0], [2, 5, 0], [0, 0, 0]]))
    assert m.ids == ("a->b", "b->a") and list(m.volume) == [1.0, 2.0]
