"""Congestion analysis: utilisation, health as defined, and every recommendation's figure
checked by recomputing the network it proposes."""

from __future__ import annotations

import numpy as np
import pytest

from prism_kernels.errors import InvalidInput
from prism_kernels.telecom import congestion as C
from prism_kernels.telecom import routing as R
from prism_kernels.telecom import te
from prism_kernels.telecom import topology as T
from prism_kernels.telecom import traffic as Tr


def _geant_hot():
    topo = T.load_backbone("geant")
    dem = T.demands_from_matrix(
        topo, Tr.scale_to_utilization(topo, Tr.gravity_matrix(topo, 1.0), 1.3)
    )
    return topo, dem


def test_congestion_from_demands_and_its_recommendations():
    topo, dem = _geant_hot()
    rep = C.analyse(topo, dem, threshold=0.8)
    load, util = R.link_utilization(topo, R.igp_routing(topo, dem).loads(dem.volume))
    np.testing.assert_allclose(rep.link_utilization, util)
    assert rep.max_utilization == pytest.approx(1.3)
    assert rep.congested_links == [k for k in np.argsort(-util, kind="stable") if util[k] >= 0.8]
    expect = np.concatenate(
        [C.health_score(util, 0.8), C.health_score(rep.node_utilization, 0.8)]
    ).mean()
    assert rep.overall_health == pytest.approx(expect) and 0 < rep.overall_health < 1
    assert rep.recommendations and rep.source == "demands"
    afters = [r["max_utilization_after"] for r in rep.recommendations]
    assert afters == sorted(afters)
    for r in rep.recommendations:
        assert r["max_utilization_before"] == pytest.approx(1.3)
        assert r["max_utilization_after"] < 1.3 - C.MIN_GAIN
        assert f"{100 * r['max_utilization_after']:.1f} %" in r["text"]
        if r["action"] == "upgrade_link":
            k = topo.link_index[r["link"]]
            cap = topo.capacity.copy()
            cap[k] *= 2
            new = load / cap
            assert r["max_utilization_after"] == pytest.approx(new.max())
        elif r["action"] == "rebalance":
            assert r["max_utilization_after"] == pytest.approx(te.required_utilization(topo, dem))
        elif r["action"] == "reroute_demand":
            d = dem.ids.index(r["demand"])
            arc = R.igp_routing(topo, dem).loads(dem.volume)
            row = R.igp_routing(topo, dem.subset([d])).loads(dem.volume[[d]])
            path = [topo.index[v] for v in r["path"]]
            moved = arc - row
            for u, v in zip(path[:-1], path[1:], strict=True):
                a = next(
                    a for a in range(topo.n_arcs) if topo.arc_src[a] == u and topo.arc_dst[a] == v
                )
                moved[a] += dem.volume[d]
            assert r["max_utilization_after"] == pytest.approx((moved / topo.arc_capacity).max())
            hot = set(topo.arcs_of_links([topo.link_index[r["link"]]]).tolist())
            assert not any(
                topo.arc_src[a] == u and topo.arc_dst[a] == v
                for a in hot
                for u, v in zip(path[:-1], path[1:], strict=True)
            )  # the new path avoids the hot link


def test_reported_utilisations_and_a_healthy_network():
    topo = T.from_dict(
        {
            "nodes": [
                {"id": "r1", "capacity": 100.0, "current_load": 95.0},
                {"id": "r2", "capacity": 100.0, "current_load": 10.0},
                {"id": "s1"},
            ],
            "links": [
                {
                    "source": "r1",
                    "target": "r2",
                    "bandwidth": 10.0,
                    "latency_ms": 1,
                    "utilization": 0.9,
                },
                {
                    "source": "r2",
                    "target": "s1",
                    "bandwidth": 10.0,
                    "latency_ms": 1,
                    "utilization": 0.2,
                },
            ],
        }
    )
    rep = C.analyse(topo, None, threshold=0.8)
    assert rep.source == "reported" and rep.congested_links == [0]
    assert rep.congested_nodes == [0]  # r1: 95 of 100
    np.testing.assert_allclose(rep.node_utilization, [0.95, 0.1, 0.2])
    # links 0.9 -> 0.5, 0.2 -> 1; nodes 0.95 -> 0.25, 0.1 -> 1, 0.2 -> 1
    assert rep.overall_health == pytest.approx((0.5 + 1 + 0.25 + 1 + 1) / 5)
    assert [r["action"] for r in rep.recommendations] == ["upgrade_link"]
    assert rep.recommendations[0]["max_utilization_after"] == pytest.approx(0.45)
    calm = C.analyse(topo, None, threshold=0.95)
    assert calm.recommendations == [] and calm.congested_links == []
    with pytest.raises(InvalidInput) as e:
        C.analyse(topo, None, threshold=1.5)
    assert e.value.field == "threshold"
