"""The telecom kernels on CuPy against NumPy (run by benchmarks/gpu_check.sh; skipped without a CUDA device)."""

from __future__ import annotations

import numpy as np
import pytest

from prism_kernels import backend as B
from prism_kernels.telecom import failures as F
from prism_kernels.telecom import paths as P
from prism_kernels.telecom import routing as R
from tests.telecom.refs import random_demands, random_net

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not B._cupy_available(), reason="needs CuPy and a CUDA device"),
]


def test_distances_routing_and_n_minus_1_on_the_device():
    xp = B.namespace("cupy")
    topo = random_net(3, n=120, m=300)
    dem = random_demands(topo, 400, 3)
    np.testing.assert_allclose(B.to_numpy(P.distances(topo, xp=xp)), P.distances(topo), rtol=1e-12)
    for metric in ("latency", "hops"):
        r_gpu = R.igp_routing(topo, dem, metric, xp=xp)
        r_cpu = R.igp_routing(topo, dem, metric)
        np.testing.assert_allclose(B.to_numpy(r_gpu.dense()), r_cpu.dense(), atol=1e-12)
        V = np.random.default_rng(0).uniform(0, 1, (24, len(dem)))
        np.testing.assert_allclose(B.to_numpy(r_gpu.loads(V)), r_cpu.loads(V), rtol=1e-10)
    scen = F.n_minus_1(topo, ["links", "nodes"])
    a = F.what_if(topo, dem, scen, xp=xp, keep_loads=True)
    b = F.what_if(topo, dem, scen, keep_loads=True)
    np.testing.assert_allclose(a.loads, b.loads, rtol=1e-10, atol=1e-10)
    assert [set(c.tolist()) for c in a.cut] == [set(c.tolist()) for c in b.cut]
