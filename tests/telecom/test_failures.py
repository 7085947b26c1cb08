"""Failure what-ifs: the batched N-1 (links, nodes, SRLGs) and given scenarios equal a
re-route from scratch per scenario, by our routing and by NetworkX; NumPy and PyTorch."""

from __future__ import annotations

from dataclasses import replace

import networkx as nx
import numpy as np
import pytest

from prism_kernels.errors import InvalidInput
from prism_kernels.telecom import failures as F
from prism_kernels.telecom import routing as R
from prism_kernels.telecom import topology as T
from tests.telecom.refs import random_demands, random_net, to_nx


def _with_srlgs(topo):
    groups = [() for _ in range(topo.m)]
    groups[0], groups[5], groups[9] = ("duct-a",), ("duct-a", "duct-b"), ("duct-b",)
    return replace(topo, srlg=tuple(groups))


def _without(topo, links, nodes):
    keep = np.setdiff1d(np.arange(topo.m), links)
    return replace(
        topo,
        link_src=topo.link_src[keep],
        link_dst=topo.link_dst[keep],
        capacity=topo.capacity[keep],
        latency_ms=topo.latency_ms[keep],
        cost=topo.cost[keep],
        srlg=tuple(topo.srlg[k] for k in keep),
        link_ids=tuple(topo.link_ids[k] for k in keep),
        link_utilization=topo.link_utilization[keep],
    ), keep


def _from_scratch(topo, dem, sc, metric):
    """Loads (original arcs) and the set of cut demands, routing everything again."""
    sub, keep = _without(topo, sc.links, sc.nodes)
    alive = ~np.isin(dem.src, sc.nodes) & ~np.isin(dem.dst, sc.nodes)
    r = R.igp_routing(sub, dem.subset(alive), metric)
    loads = np.zeros(topo.n_arcs)
    loads[topo.arcs_of_links(keep)] = r.loads(dem.volume[alive])
    cut = set(np.flatnonzero(~alive)) | set(np.flatnonzero(alive)[~np.asarray(r.reachable)])
    return loads, cut


@pytest.mark.parametrize("metric", ["latency", "hops"])
def test_n_minus_1_equals_rerouting_from_scratch(xp, metric):
    topo = _with_srlgs(random_net(7, n=30, m=65))
    dem = random_demands(topo, 200, 7)
    scen = F.n_minus_1(topo) + [
        F.scenario(
            topo,
            {
                "id": "two links and a node",
                "links": [topo.link_ids[1], topo.link_ids[2]],
                "nodes": [topo.node_ids[3]],
            },
        ),
        F.scenario(topo, {"srlgs": ["duct-a", "duct-b"]}, 1),
    ]
    assert len(scen) == topo.m + topo.n + 2 + 2
    rep = F.what_if(topo, dem, scen, metric=metric, xp=xp, keep_loads=True)
    for i, sc in enumerate(scen):
        loads, cut = _from_scratch(topo, dem, sc, metric)
        np.testing.assert_allclose(rep.loads[i], loads, rtol=1e-12, atol=1e-12, err_msg=sc.id)
        assert set(rep.cut[i].tolist()) == cut, sc.id
        alive = np.ones(topo.n_arcs, dtype=bool)
        alive[topo.arcs_of_links(sc.links)] = False
        assert rep.max_utilization[i] == pytest.approx(
            (loads / topo.arc_capacity)[alive].max(), abs=1e-12
        )
        assert rep.cut_volume[i] == pytest.approx(dem.volume[list(cut)].sum())


def test_n_minus_1_equals_networkx_reroute_loop():
    topo = random_net(11, n=30, m=70)
    dem = random_demands(topo, 120, 11)
    rep = F.what_if(topo, dem, F.n_minus_1(topo, ["links"]), keep_loads=True)
    for k in range(0, topo.m, 5):
        G = to_nx(topo)
        G.remove_edge(int(topo.link_src[k]), int(topo.link_dst[k]))
        loads = np.zeros(topo.n_arcs)
        cut = set()
        pair = {(int(topo.arc_src[a]), int(topo.arc_dst[a])): a for a in range(topo.n_arcs)}
        for d in range(len(dem)):
            s, t = int(dem.src[d]), int(dem.dst[d])
            if not nx.has_path(G, s, t):
                cut.add(d)
                continue
            p = nx.shortest_path(G, s, t, weight="weight")  # float latencies: no ties
            for u, v in zip(p[:-1], p[1:], strict=True):
                loads[pair[(u, v)]] += dem.volume[d]
        np.testing.assert_allclose(rep.loads[k], loads, rtol=1e-12, atol=1e-12)
        assert set(rep.cut[k].tolist()) == cut


def test_reasons_ranking_and_rerouted_counts():
    topo = T.from_dict(
        {
            "nodes": ["a", "b", "c", "d"],
            "links": [
                {"source": "a", "target": "b", "bandwidth": 10, "latency_ms": 1},
                {"source": "b", "target": "c", "bandwidth": 10, "latency_ms": 1},
                {"source": "a", "target": "c", "bandwidth": 10, "latency_ms": 5},
                {"source": "c", "target": "d", "bandwidth": 10, "latency_ms": 1},
            ],
        }
    )
    dem = T.demands_from_records(
        topo,
        [
            {"source": "a", "destination": "c", "bandwidth_required": 4, "id": "ac"},
            {"source": "a", "destination": "d", "bandwidth_required": 3, "id": "ad"},
            {"source": "b", "destination": "c", "bandwidth_required": 1, "id": "bc"},
        ],
    )
    scen = F.n_minus_1(topo, ["links", "nodes"])
    rep = F.what_if(topo, dem, scen)
    by = {s.id: i for i, s in enumerate(scen)}
    i = by["link:c-d"]
    assert set(rep.cut[i]) == {1} and "no path from a to d" in rep.cut_reason[i][1]
    i = by["node:a"]
    assert set(rep.cut[i]) == {0, 1} and rep.cut_reason[i][0] == "endpoint node a failed"
    i = by["link:a-b"]
    assert rep.rerouted[i] == 2 and rep.cut[i].size == 0
    assert rep.max_utilization[i] == pytest.approx(0.7)  # a-c carries 4 + 3
    # node c cuts all 8 units (its own demands and d's); node a cuts 7
    assert rep.cut_volume[rep.ranking()[0]] == pytest.approx(8.0)
    assert scen[rep.ranking()[0]].id == "node:c"


def test_bad_scenarios_name_the_entry():
    topo = random_net(1, n=8, m=12)
    with pytest.raises(InvalidInput) as e:
        F.scenario(topo, {"links": ["nope"]}, 2)
    assert e.value.field == "scenarios.2.links.0"
    with pytest.raises(InvalidInput) as e:
        F.scenario(topo, {"nodes": ["n0", "zz"]})
    assert e.value.field == "scenarios.0.nodes.1"
    with pytest.raises(InvalidInput) as e:
        F.scenario(topo, {"srlgs": ["none"]})
    assert e.value.field == "scenarios.0.srlgs.0"
    with pytest.raises(InvalidInput):
        F.scenario(topo, {})
    with pytest.raises(InvalidInput) as e:
        F.n_minus_1(topo, ["routers"])
    assert e.value.field == "scope"
