"""The robotics kernels on CuPy against NumPy (run by benchmarks/gpu_check.sh; skipped without a
CUDA device): forward kinematics, Jacobians, link spheres, IK, collision checks of points,
segments, configurations and edges, and time parameterisation."""

from __future__ import annotations

import numpy as np
import pytest

from prism_kernels import backend as B
from prism_kernels.robotics import collision as C
from prism_kernels.robotics import ik
from prism_kernels.robotics import kinematics as K
from prism_kernels.robotics.models import MOBILE, PANDA, UR5E
from prism_kernels.robotics.timing import time_parameterize

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not B._cupy_available(), reason="needs CuPy and a CUDA device"),
]


@pytest.mark.parametrize("model", [PANDA, UR5E], ids=["panda", "ur5e"])
def test_fk_jacobian_spheres_on_the_device(model):
    rng = np.random.default_rng(0)
    lim = model.joint_limits
    q = rng.uniform(lim[:, 0], lim[:, 1], (500, model.dof))
    qd = B.asarray(q, backend="cupy")
    np.testing.assert_allclose(B.to_numpy(K.fk(model, qd)), K.fk(model, q), atol=1e-12)
    np.testing.assert_allclose(B.to_numpy(K.jacobian(model, qd)), K.jacobian(model, q), atol=1e-12)
    c, _ = K.link_spheres(model, qd)
    np.testing.assert_allclose(B.to_numpy(c), K.link_spheres(model, q)[0], atol=1e-12)


def test_ik_on_the_device_equals_numpy_array_path():
    rng = np.random.default_rng(1)
    lim = PANDA.joint_limits
    T = np.asarray(K.fk(PANDA, rng.uniform(lim[:, 0], lim[:, 1], (200, 7))))
    a = ik.solve_ik(PANDA, B.asarray(T, backend="cupy"), n_seeds=8, engine="array")
    b = ik.solve_ik(PANDA, T, n_seeds=8, engine="array")
    assert a.success.all() and b.success.all()
    np.testing.assert_allclose(B.to_numpy(a.q), np.asarray(b.q), atol=1e-6)


def g(x):
    return B.asarray(x, backend="cupy")


def _scene(rng):
    return C.Scene(
        rng.uniform(-1.5, 1.5, (15, 3)),
        rng.uniform(0.05, 0.8, (15, 3)),
        rng.uniform(-1.5, 1.5, (5, 3)),
        rng.uniform(0.05, 0.4, 5),
    )


def test_collision_checks_on_the_device():
    rng = np.random.default_rng(2)
    sc = _scene(rng)
    a = rng.uniform(-2, 2, (2000, 3))
    b = a + rng.normal(0, 0.6, (2000, 3))
    np.testing.assert_array_equal(
        B.to_numpy(C.points_collide(sc, g(a), 0.03, 0.1)), C.points_collide(sc, a, 0.03, 0.1)
    )
    np.testing.assert_array_equal(
        B.to_numpy(C.segments_collide(sc, g(a), g(b), 0.03, 0.1)),
        C.segments_collide(sc, a, b, 0.03, 0.1),
    )
    lim = PANDA.joint_limits
    qa = rng.uniform(lim[:, 0], lim[:, 1], (200, 7))
    qb = rng.uniform(lim[:, 0], lim[:, 1], (200, 7))
    np.testing.assert_array_equal(
        B.to_numpy(C.configs_collide(PANDA, sc, g(qa), 0.01)),
        C.configs_collide(PANDA, sc, qa, 0.01),
    )
    np.testing.assert_array_equal(
        B.to_numpy(C.edges_collide(PANDA, sc, g(qa), g(qb), 0.01)),
        C.edges_collide(PANDA, sc, qa, qb, 0.01),
    )
    pa, pb = rng.uniform(-9, 9, (500, 3)), rng.uniform(-9, 9, (500, 3))
    np.testing.assert_array_equal(
        B.to_numpy(C.edges_collide(MOBILE, sc, g(pa), g(pb))), C.edges_collide(MOBILE, sc, pa, pb)
    )


def test_time_parameterisation_on_the_device():
    rng = np.random.default_rng(3)
    path = rng.uniform(-1, 1, (6, 7))
    a = time_parameterize(B.asarray(path, backend="cupy"), 1.0, 2.0, 10.0)
    b = time_parameterize(path, 1.0, 2.0, 10.0)
    assert a.total_time == pytest.approx(b.total_time, rel=1e-12)
    np.testing.assert_allclose(B.to_numpy(a.positions), np.asarray(b.positions), atol=1e-12)
