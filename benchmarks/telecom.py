"""Telecom: ours against NetworkX, SciPy's csgraph and cvxpy, on the same data in one process.

(a) all-pairs shortest paths (latency) on seeded geometric backbones of 1,000 and 2,000 nodes
    (5 links per node): ours (:func:`prism_kernels.telecom.paths.distances`: SciPy's compiled
    Dijkstra from every source on NumPy; the batched Bellman-Ford on a CUDA device when one
    answers) against ``networkx.all_pairs_dijkstra_path_length`` and against
    ``scipy.sparse.csgraph.dijkstra`` called directly; ``extra`` holds the largest difference.
(b) N-1 over every link of a 1,000-node, 5,000-link backbone with 10,000 demands, IGP routing
    by latency: ours (:func:`prism_kernels.telecom.failures.what_if`, one batch: only the
    demands that crossed the failed link are re-routed) against a NetworkX loop that removes
    the link and routes every demand again from scratch (one ``single_source_dijkstra`` per
    distinct source), the way a script without a failure model does it. The NetworkX loop is
    timed on ``NX_SAMPLE`` scenarios and scaled to all of them (the note says so); the loads
    of those scenarios are compared with ours.
(c) ``balance_load`` (min-max utilisation, HiGHS, commodities grouped by source) against the
    same LP written in cvxpy with one commodity per demand (solver Clarabel), on GEANT with an
    all-pairs gravity matrix (1,560 demands); ``extra`` holds the relative difference of the
    optimum.
(d) maximum flow between two far-apart nodes of the 1,000-node backbone: ours (Dinic on
    integer-scaled capacities) against ``networkx.maximum_flow_value`` and SciPy's
    ``maximum_flow`` called directly; and with non-integer capacities (ours: the HiGHS LP)
    against NetworkX.

``--quick`` shrinks every size (200 / 400 nodes, 2,000 demands, Abilene for the LP).
"""

from __future__ import annotations

import os
import time

import networkx as nx
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra, maximum_flow

from benchmarks.harness import Case, timeit
from prism_kernels import backend
from prism_kernels.telecom import failures as F
from prism_kernels.telecom import flow as FL
from prism_kernels.telecom import paths as P
from prism_kernels.telecom import te
from prism_kernels.telecom import topology as T
from prism_kernels.telecom import traffic as TR
from prism_kernels.telecom.topology import Demands, Topology

NX_SAMPLE = int(os.environ.get("PRISM_BENCH_NX_SAMPLE", "3"))


def _nx_graph(topo: Topology, weight: np.ndarray | None = None) -> nx.Graph:
    G = nx.Graph()
    G.add_nodes_from(range(topo.n))
    w = topo.latency_ms if weight is None else weight
    for k in range(topo.m):
        G.add_edge(
            int(topo.link_src[k]),
            int(topo.link_dst[k]),
            weight=float(w[k]),
            capacity=float(topo.capacity[k]),
        )
    return G


def _demands(topo: Topology, k: int, seed: int) -> Demands:
    rng = np.random.default_rng(seed)
    s = rng.integers(0, topo.n, k)
    t = (s + rng.integers(1, topo.n, k)) % topo.n
    return Demands(
        s, t, rng.uniform(0.1, 2.0, k), np.zeros(k, dtype=np.int64), tuple(map(str, range(k)))
    )


def _device_xp():
    """A CUDA array namespace when one answers (CuPy, else a CUDA PyTorch), else None."""
    for name in ("cupy", "torch"):
        try:
            if name == "cupy" and backend._cupy_available():
                return backend.namespace("cupy")
            if name == "torch" and backend._torch_cuda_available():
                return backend.namespace("torch")
        except Exception:  # noqa: BLE001 - no device: the CPU path only
            pass
    return None


def _apsp(n: int, repeat: int) -> list[Case]:
    topo = T.random_topology(n, 5 * n, seed=n)
    G = _nx_graph(topo)
    ours = timeit(lambda: P.distances(topo), repeat=repeat)
    D = P.distances(topo)
    t0 = time.perf_counter()
    ref = dict(nx.all_pairs_dijkstra_path_length(G, weight="weight"))
    nx_s = time.perf_counter() - t0
    R = np.array([[ref[i][j] for j in range(n)] for i in range(n)])
    g = P.host_graph(topo.arc_src, topo.arc_dst, topo.arc_weights("latency"), n)
    sc = timeit(lambda: dijkstra(g, directed=True), repeat=repeat)
    label = f"all-pairs shortest paths, {n} nodes / {topo.m} links"
    cases = [
        Case(
            "telecom",
            label,
            ours,
            "networkx",
            nx_s,
            note="host Dijkstra (SciPy) via our graph",
            extra={"max_abs_diff_ms": float(np.abs(D - R).max())},
        ),
        Case(
            "telecom",
            label,
            ours,
            "scipy csgraph (direct)",
            sc,
            note="ours builds the graph, then the same Dijkstra",
        ),
    ]
    xp = _device_xp()
    if xp is not None:
        sync = lambda: backend.synchronize(xp.zeros(1))  # noqa: E731
        dev = timeit(lambda: P.distances(topo, xp=xp), repeat=repeat, sync=sync)
        Dd = backend.to_numpy(P.distances(topo, xp=xp))
        cases.append(
            Case(
                "telecom",
                label + " (device)",
                dev,
                "networkx",
                nx_s,
                note=f"batched Bellman-Ford on {backend.backend_name(xp.zeros(1))}",
                extra={"max_abs_diff_ms": float(np.abs(Dd - R).max())},
            )
        )
    return cases


def _nx_reroute(G: nx.Graph, topo: Topology, dem: Demands, k: int) -> np.ndarray:
    """NetworkX, from scratch: fail link ``k``, route every demand again; arc loads."""
    u, v = int(topo.link_src[k]), int(topo.link_dst[k])
    data = G[u][v]
    G.remove_edge(u, v)
    try:
        arc = {
            (int(a), int(b)): i
            for i, (a, b) in enumerate(zip(topo.arc_src, topo.arc_dst, strict=True))
        }
        loads = np.zeros(topo.n_arcs)
        order = np.argsort(dem.src, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(dem.src[order]) != 0])
        for j, s0 in enumerate(starts):
            rows = order[s0 : starts[j + 1] if j + 1 < starts.size else order.size]
            src = int(dem.src[rows[0]])
            _, paths = nx.single_source_dijkstra(G, src, weight="weight")
            for d in rows:
                p = paths.get(int(dem.dst[d]))
                if p is None:
                    continue
                for a, b in zip(p[:-1], p[1:], strict=True):
                    loads[arc[(a, b)]] += dem.volume[d]
        return loads
    finally:
        G.add_edge(u, v, **data)


def _n_minus_1(n: int, m: int, k: int) -> list[Case]:
    topo = T.random_topology(n, m, seed=7)
    dem = _demands(topo, k, 7)
    scen = F.n_minus_1(topo, ["links"])
    t0 = time.perf_counter()
    rep = F.what_if(topo, dem, scen)
    ours = time.perf_counter() - t0
    G = _nx_graph(topo)
    sample = np.linspace(0, topo.m - 1, NX_SAMPLE).astype(int)
    t0 = time.perf_counter()
    nx_loads = [_nx_reroute(G, topo, dem, int(j)) for j in sample]
    per = (time.perf_counter() - t0) / len(sample)
    check = F.what_if(topo, dem, [scen[j] for j in sample], keep_loads=True)
    diff = max(float(np.abs(check.loads[i] - nx_loads[i]).max()) for i in range(len(sample)))
    mu = float(np.max(check.max_utilization) - np.max(rep.max_utilization[sample]))
    cases = [
        Case(
            "telecom",
            f"N-1 over {topo.m} links, {n} nodes, {k} demands",
            ours,
            "networkx re-route loop",
            per * len(scen),
            note=f"networkx timed on {len(sample)} scenarios ({per:.2f} s each) x {len(scen)}",
            extra={
                "max_load_diff": diff,
                "max_util_diff": abs(mu),
                "rerouted": int(rep.rerouted.sum()),
            },
        )
    ]
    xp = _device_xp()
    if xp is not None:
        t0 = time.perf_counter()
        F.what_if(topo, dem, scen, xp=xp)
        backend.synchronize(xp.zeros(1))
        cases.append(
            Case(
                "telecom",
                cases[0].case + " (device)",
                time.perf_counter() - t0,
                "networkx re-route loop",
                per * len(scen),
                note="batched Bellman-Ford rows on the device",
            )
        )
    return cases


def _balance_load(backbone: str) -> list[Case]:
    import cvxpy as cp

    topo = T.load_backbone(backbone)
    dem = T.demands_from_matrix(
        topo, TR.scale_to_utilization(topo, TR.gravity_matrix(topo, 1.0), 0.9)
    )
    res = te.optimize(topo, dem, "balance_load")
    ours = timeit(lambda: te.optimize(topo, dem, "balance_load"), repeat=3)
    k, A = len(dem), topo.n_arcs
    inc = np.zeros((topo.n, A))
    inc[topo.arc_src, np.arange(A)] += 1
    inc[topo.arc_dst, np.arange(A)] -= 1
    B = np.zeros((topo.n, k))
    B[dem.src, np.arange(k)] += dem.volume
    B[dem.dst, np.arange(k)] -= dem.volume

    def peer() -> float:
        X = cp.Variable((k, A), nonneg=True)
        alpha = cp.Variable()
        prob = cp.Problem(
            cp.Minimize(alpha), [inc @ X.T == B, cp.sum(X, axis=0) <= alpha * topo.arc_capacity]
        )
        prob.solve(solver="CLARABEL")
        return float(alpha.value)

    t0 = time.perf_counter()
    ref = peer()
    peer_s = time.perf_counter() - t0
    rel = abs(res.required_utilization - ref) / ref
    return [
        Case(
            "telecom",
            f"balance_load LP, {topo.name.split(' (')[0]} ({topo.n} nodes, {k} demands)",
            ours,
            "cvxpy (per-demand, Clarabel)",
            peer_s,
            note="ours: HiGHS, commodities by source, with path decomposition",
            extra={"alpha": res.required_utilization, "rel_diff": rel},
        )
    ]


def _max_flow(n: int) -> list[Case]:
    topo = T.random_topology(n, 5 * n, seed=n + 1)
    far = int(np.argmax(P.distances(topo, [0])[0]))
    G = _nx_graph(topo)
    r = FL.max_flow(topo, 0, far)
    ours = timeit(lambda: FL.max_flow(topo, 0, far), repeat=5)
    t0 = time.perf_counter()
    ref = nx.maximum_flow_value(G, 0, far)
    nx_s = time.perf_counter() - t0
    cap = np.round(topo.arc_capacity).astype(np.int32)
    g = sp.csr_array((cap, (topo.arc_src, topo.arc_dst)), shape=(topo.n, topo.n))
    sc = timeit(lambda: maximum_flow(g, 0, far), repeat=5)
    label = f"max flow, {n} nodes / {topo.m} links"
    cases = [
        Case(
            "telecom",
            label,
            ours,
            "networkx",
            nx_s,
            note=f"ours: {r.method} + min cut",
            extra={"abs_diff": abs(r.value - ref)},
        ),
        Case(
            "telecom",
            label,
            ours,
            "scipy maximum_flow (direct)",
            sc,
            note="the same Dinic; ours adds scaling, flows, cut",
        ),
    ]
    rng = np.random.default_rng(1)
    frac = topo.with_capacity(topo.capacity * rng.uniform(0.5, 1.5, topo.m))
    Gf = _nx_graph(frac)
    rf = FL.max_flow(frac, 0, far)
    ours_f = timeit(lambda: FL.max_flow(frac, 0, far), repeat=3)
    t0 = time.perf_counter()
    ref_f = nx.maximum_flow_value(Gf, 0, far)
    nx_f = time.perf_counter() - t0
    cases.append(
        Case(
            "telecom",
            label + ", real capacities",
            ours_f,
            "networkx",
            nx_f,
            note=f"ours: {rf.method} LP",
            extra={"rel_diff": abs(rf.value - ref_f) / ref_f},
        )
    )
    return cases


def run(quick: bool = False) -> list[Case]:
    import threadpoolctl

    threads = int(os.environ.get("PRISM_BENCH_BLAS_THREADS", "1"))
    with threadpoolctl.threadpool_limits(threads):
        cases: list[Case] = []
        for n in (200, 400) if quick else (1000, 2000):
            cases += _apsp(n, repeat=3)
        cases += _n_minus_1(200, 1000, 2000) if quick else _n_minus_1(1000, 5000, 10_000)
        cases += _balance_load("abilene" if quick else "geant")
        cases += _max_flow(200 if quick else 1000)
        return cases
