"""Robot models: figures against the Robotics Toolbox's own tables, limits, collision spheres."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from prism_kernels.errors import InvalidInput
from prism_kernels.robotics import kinematics as K
from prism_kernels.robotics.models import MOBILE, MODELS, PANDA, UR5E, get_model, mobile_model

rtb = pytest.importorskip("roboticstoolbox")


def test_panda_table_and_limits_equal_robotics_toolbox():
    ref = rtb.models.DH.Panda()
    assert ref.mdh  # modified DH, like ours
    table = np.array([[L.a, L.alpha, L.d, L.offset] for L in ref.links])
    np.testing.assert_allclose(PANDA.dh, table, atol=1e-12)
    np.testing.assert_allclose(PANDA.joint_limits, ref.qlim.T, atol=1e-12)
    assert PANDA.dh_convention == "modified" and PANDA.dof == 7
    # the URDF model of the toolbox has the same limits
    np.testing.assert_allclose(PANDA.joint_limits, rtb.models.Panda().qlim.T, atol=1e-12)


def test_ur5e_table():
    # Universal Robots' published UR5e DH (standard): d1, a2, a3, d4, d5, d6
    assert UR5E.dh_convention == "standard" and UR5E.dof == 6
    np.testing.assert_allclose(UR5E.dh[:, 2], [0.1625, 0, 0, 0.1333, 0.0997, 0.0996])
    np.testing.assert_allclose(UR5E.dh[:, 0], [0, -0.425, -0.3922, 0, 0, 0])
    np.testing.assert_allclose(UR5E.dh[:, 1], np.array([1, 0, 0, 1, -1, 0]) * np.pi / 2)
    np.testing.assert_allclose(UR5E.joint_limits, np.tile([-2 * np.pi, 2 * np.pi], (6, 1)))
    np.testing.assert_allclose(UR5E.max_velocity, np.pi)


@pytest.mark.parametrize("model", list(MODELS.values()), ids=list(MODELS))
def test_model_invariants(model):
    d = model.dof
    assert model.joint_limits.shape == (d, 2)
    assert np.all(model.joint_limits[:, 0] < model.joint_limits[:, 1])
    for a in (model.max_velocity, model.max_acceleration, model.max_jerk):
        assert a.shape == (d,) and np.all(a > 0)
    assert np.all(
        (model.home >= model.joint_limits[:, 0]) & (model.home <= model.joint_limits[:, 1])
    )
    assert model.sphere_centres.shape == (model.sphere_radii.size, 3)
    assert np.all(model.sphere_radii > 0)
    assert 0 <= model.sphere_link.min() and model.sphere_link.max() < model.n_links
    assert len(model.link_names) == model.n_links
    assert model.sources and all(isinstance(v, str) and v for v in model.sources.values())
    assert model.describe()["dof"] == d
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.dof = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        model.joint_limits[0, 0] = 0.0  # read-only arrays


@pytest.mark.parametrize("model", [PANDA, UR5E], ids=["panda", "ur5e"])
def test_arm_spheres_cover_joint_origins_and_home_is_free(model):
    F = np.asarray(K.link_frames(model, model.home))
    c, r = (np.asarray(a) for a in K.link_spheres(model, model.home))
    # every joint origin (links 1..dof) is inside a sphere of the link before or after it
    for i in range(1, model.dof + 1):
        o = F[i, :3, 3]
        near = np.isin(model.sphere_link, [i - 1, i, i + 1])
        assert np.min(np.linalg.norm(c[near] - o, axis=1) - r[near]) < 0, i
    # skipped pairs are exactly the neighbours (|i - j| <= 2); home has no self-collision
    pairs = model.self_collision_pairs
    li, lj = model.sphere_link[pairs[:, 0]], model.sphere_link[pairs[:, 1]]
    assert np.all(np.abs(li - lj) > 2)
    gap = np.linalg.norm(c[pairs[:, 0]] - c[pairs[:, 1]], axis=1) - r[pairs[:, 0]] - r[pairs[:, 1]]
    assert gap.min() > 0


def test_mobile_model():
    assert MOBILE.kind == "mobile" and MOBILE.dof == 3 and MOBILE.radius == 0.25
    assert MOBILE.self_collision_pairs.shape == (0, 2)
    m2 = mobile_model("planar", radius=0.3, bounds=[[0, 5], [-1, 1]])
    assert m2.dof == 2 and m2.sphere_radii[0] == 0.3
    np.testing.assert_allclose(m2.home, [2.5, 0.0])
    with pytest.raises(InvalidInput) as e:
        mobile_model(bounds=[[0, 1]])
    assert e.value.field == "bounds"
    with pytest.raises(InvalidInput) as e:
        mobile_model(bounds=[[0, 1], [0, np.nan]])
    assert e.value.field == "bounds"
    with pytest.raises(InvalidInput) as e:
        mobile_model(radius=-1.0)
    assert e.value.field == "radius"
    with pytest.raises(InvalidInput) as e:
        mobile_model(bounds=[[1, 0], [0, 1]])
    assert e.value.field == "joint_limits"
    with pytest.raises(InvalidInput) as e:
        mobile_model(max_velocity=0.0)
    assert e.value.field == "max_velocity"


def test_get_model():
    assert get_model("panda") is PANDA
    assert get_model("Franka") is PANDA
    assert get_model("UR5e") is UR5E and get_model("ur5-e") is UR5E
    assert get_model("mobile") is MOBILE
    for bad in ("ur10", "", None, 3):
        with pytest.raises(InvalidInput) as e:
            get_model(bad)  # type: ignore[arg-type]
        assert e.value.field == "model"
