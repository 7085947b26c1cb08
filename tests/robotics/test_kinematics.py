"""Forward kinematics, Jacobians, link spheres and pose helpers against the Robotics Toolbox,
SciPy's rotations and finite differences, on NumPy and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.robotics import kinematics as K
from prism_kernels.robotics.models import MOBILE, PANDA, UR5E, mobile_model

rtb = pytest.importorskip("roboticstoolbox")
SE3 = pytest.importorskip("spatialmath").SE3


def _random_q(model, rng, n):
    lim = model.joint_limits
    return rng.uniform(lim[:, 0], lim[:, 1], (n, model.dof))


def _rtb_panda():
    r = rtb.models.DH.Panda()
    r.tool = SE3(PANDA.tool)  # the same hand TCP as ours (the toolbox rounds it to 0.103 m)
    return r


def _rtb_ur5e():
    return rtb.DHRobot(
        [rtb.RevoluteDH(a=a, alpha=al, d=d, offset=o) for a, al, d, o in UR5E.dh], name="UR5e"
    )


@pytest.mark.parametrize("name", ["panda", "ur5e"])
def test_fk_and_jacobian_equal_robotics_toolbox(name, xp, to_xp, rng):
    model, ref = (PANDA, _rtb_panda()) if name == "panda" else (UR5E, _rtb_ur5e())
    q = _random_q(model, rng, 60)
    T = K.fk(model, to_xp(q))
    J = K.jacobian(model, to_xp(q))
    assert tuple(T.shape) == (60, 4, 4) and tuple(J.shape) == (60, 6, model.dof)
    T_ref = np.stack([ref.fkine(x).A for x in q])
    J_ref = np.stack([ref.jacob0(x) for x in q])
    np.testing.assert_allclose(to_numpy(T), T_ref, atol=1e-9, rtol=0)
    np.testing.assert_allclose(to_numpy(J), J_ref, atol=1e-9, rtol=0)


def test_link_frames_equal_toolbox_frames(rng):
    q = _random_q(PANDA, rng, 20)
    F = np.asarray(K.link_frames(PANDA, q))
    assert F.shape == (20, PANDA.dof + 2, 4, 4)
    dh = _rtb_panda()
    urdf = rtb.models.Panda()
    for i in range(q.shape[0]):
        frames = dh.fkine_all(q[i])  # base, then links 1..7
        for j in range(PANDA.dof + 1):
            np.testing.assert_allclose(F[i, j], frames[j].A, atol=1e-9)
        # the flange of the URDF model (panda_link8) is link 7's frame (d7 = 0.107 m merged)
        np.testing.assert_allclose(F[i, 7], urdf.fkine(q[i], end="panda_link8").A, atol=1e-9)
        np.testing.assert_allclose(F[i, 8], dh.fkine(q[i]).A, atol=1e-9)


def test_ur5e_zero_configuration_closed_form():
    T = np.asarray(K.fk(UR5E, np.zeros(6)))
    d1, a2, a3, d4, d5, d6 = 0.1625, -0.425, -0.3922, 0.1333, 0.0997, 0.0996
    np.testing.assert_allclose(T[:3, 3], [a2 + a3, -(d4 + d6), d1 - d5], atol=1e-12)


@pytest.mark.parametrize("model", [PANDA, UR5E], ids=["panda", "ur5e"])
def test_jacobian_matches_finite_differences(model, rng):
    q = _random_q(model, rng, 5)
    J = np.asarray(K.jacobian(model, q))
    h = 1e-6
    for j in range(model.dof):
        dq = np.zeros(model.dof)
        dq[j] = h
        Tp, Tm = np.asarray(K.fk(model, q + dq)), np.asarray(K.fk(model, q - dq))
        v = (Tp[:, :3, 3] - Tm[:, :3, 3]) / (2 * h)
        # angular velocity from the skew part of dR R^T
        W = (Tp[:, :3, :3] - Tm[:, :3, :3]) / (2 * h) @ np.swapaxes(Tp[:, :3, :3], 1, 2)
        w = np.stack([W[:, 2, 1], W[:, 0, 2], W[:, 1, 0]], axis=1)
        np.testing.assert_allclose(J[:, :3, j], v, atol=1e-6)
        np.testing.assert_allclose(J[:, 3:, j], w, atol=1e-5)


def test_batch_shapes_and_empty(xp, to_xp, rng):
    q = _random_q(PANDA, rng, 6).reshape(2, 3, 7)
    T = K.fk(PANDA, to_xp(q))
    assert tuple(T.shape) == (2, 3, 4, 4)
    np.testing.assert_allclose(
        to_numpy(T).reshape(6, 4, 4), np.asarray(K.fk(PANDA, q.reshape(6, 7))), atol=1e-12
    )
    assert tuple(K.fk(PANDA, to_xp(q[0, 0])).shape) == (4, 4)
    assert tuple(K.jacobian(PANDA, to_xp(q)).shape) == (2, 3, 6, 7)
    assert tuple(K.fk(PANDA, to_xp(np.zeros((0, 7)))).shape) == (0, 4, 4)
    c, r = K.link_spheres(PANDA, to_xp(q))
    assert tuple(c.shape) == (2, 3, PANDA.sphere_radii.size, 3)


def test_link_spheres_are_frames_times_local_centres(xp, to_xp, rng):
    q = _random_q(UR5E, rng, 7)
    c, r = K.link_spheres(UR5E, to_xp(q))
    F = np.asarray(K.link_frames(UR5E, q))
    local = np.concatenate([UR5E.sphere_centres, np.ones((UR5E.sphere_radii.size, 1))], axis=1)
    ref = np.einsum("nsij,sj->nsi", F[:, UR5E.sphere_link], local)[..., :3]
    np.testing.assert_allclose(to_numpy(c), ref, atol=1e-12)
    np.testing.assert_allclose(to_numpy(r), UR5E.sphere_radii)


def test_mobile_kinematics(xp, to_xp):
    p = np.array([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]])
    T = to_numpy(K.fk(MOBILE, to_xp(p)))
    np.testing.assert_allclose(T[:, :3, 3], p)
    np.testing.assert_allclose(T[:, :3, :3], np.broadcast_to(np.eye(3), (2, 3, 3)))
    J = to_numpy(K.jacobian(MOBILE, to_xp(p)))
    np.testing.assert_allclose(J, np.broadcast_to(np.eye(6, 3), (2, 6, 3)))
    planar = mobile_model("planar", bounds=[[-1, 1], [-1, 1]])
    T2 = to_numpy(K.fk(planar, to_xp(np.array([0.3, 0.4]))))
    np.testing.assert_allclose(T2[:3, 3], [0.3, 0.4, 0.0])
    c, r = K.link_spheres(planar, to_xp(np.array([[0.3, 0.4]])))
    np.testing.assert_allclose(to_numpy(c), [[[0.3, 0.4, 0.0]]])


def test_configuration_validation():
    with pytest.raises(InvalidInput) as e:
        K.fk(PANDA, np.zeros(6))
    assert e.value.field == "q" and "7" in e.value.message
    with pytest.raises(InvalidInput) as e:
        K.jacobian(UR5E, np.full(6, np.nan))
    assert e.value.field == "q"
    with pytest.raises(InvalidInput) as e:
        K.link_frames(PANDA, np.array(0.0))
    assert e.value.field == "q"
    with pytest.raises(InvalidInput) as e:
        K.fk(PANDA, [["a"] * 7])
    assert e.value.field == "q"
    q = PANDA.home.copy()
    q[3] = 0.5  # joint 4 must be below -0.0698 rad
    assert K.check_configuration(PANDA, q).shape == (7,)  # FK itself accepts any angle
    with pytest.raises(InvalidInput) as e:
        K.check_configuration(PANDA, q, field="joint_angles", check_limits=True)
    assert e.value.field == "joint_angles" and e.value.details["joint"] == 3


def test_limit_check_on_backends(xp, to_xp):
    q = np.tile(UR5E.home, (3, 1))
    assert tuple(K.check_configuration(UR5E, to_xp(q), check_limits=True).shape) == (3, 6)
    q[2, 4] = 7.0  # beyond +2 pi
    with pytest.raises(InvalidInput) as e:
        K.check_configuration(UR5E, to_xp(q), check_limits=True)
    assert e.value.details["joint"] == 4


def test_pose_from_position_quaternion_matches_scipy(xp, to_xp, rng):
    quat = rng.normal(size=(50, 4))  # not normalised: normalised by the helper
    p = rng.normal(size=(50, 3))
    T = to_numpy(K.pose_from_position_quaternion(to_xp(p), to_xp(quat)))
    R_ref = Rotation.from_quat(quat).as_matrix()  # SciPy's order is (x, y, z, w) too
    np.testing.assert_allclose(T[:, :3, :3], R_ref, atol=1e-12)
    np.testing.assert_allclose(T[:, :3, 3], p)
    np.testing.assert_allclose(T[:, 3], np.broadcast_to([0, 0, 0, 1.0], (50, 4)))
    # back to quaternions (w >= 0), including rotations by ~180 degrees
    rv = rng.normal(size=(50, 3))
    rv = rv / np.linalg.norm(rv, axis=1, keepdims=True) * np.pi * rng.uniform(0.98, 1.0, (50, 1))
    Rm = Rotation.from_rotvec(np.concatenate([rv, rng.normal(size=(50, 3))]))
    qq = to_numpy(K.quaternion_from_rotation(to_xp(Rm.as_matrix())))
    ref = Rm.as_quat()
    ref = np.where(ref[:, 3:] < 0, -ref, ref)
    np.testing.assert_allclose(qq, ref, atol=1e-9)


def test_pose_helpers_reject_bad_input():
    with pytest.raises(InvalidInput) as e:
        K.pose_from_position_quaternion(np.zeros(3), np.zeros(4))
    assert e.value.field == "orientation"
    with pytest.raises(InvalidInput) as e:
        K.pose_from_position_quaternion(np.zeros(2), np.array([0, 0, 0, 1.0]))
    assert e.value.field == "position"
    with pytest.raises(InvalidInput) as e:
        K.pose_from_position_quaternion(np.array([0, np.inf, 0]), np.array([0, 0, 0, 1.0]))
    assert e.value.field == "position"
    with pytest.raises(InvalidInput) as e:
        K.pose_from_position_quaternion(np.zeros(3), np.array([0, 0, 1.0]))
    assert e.value.field == "orientation"


def test_rotation_error_vector_and_pose_error(xp, to_xp, rng):
    Rc = Rotation.random(40, random_state=1)
    # small, generic and (near) 180-degree differences
    axes = rng.normal(size=(40, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate([[0.0, 1e-9, np.pi, np.pi - 1e-7], rng.uniform(0, np.pi, 36)])
    delta = Rotation.from_rotvec(axes * angles[:, None])
    Rt = delta * Rc
    e = to_numpy(K.rotation_error_vector(to_xp(Rc.as_matrix()), to_xp(Rt.as_matrix())))
    # exp(e) Rc == Rt (the sign of a 180-degree rotation is free)
    back = Rotation.from_rotvec(e) * Rc
    np.testing.assert_allclose(back.as_matrix(), Rt.as_matrix(), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), angles, atol=1e-6)
    Tc = np.tile(np.eye(4), (40, 1, 1))
    Tt = Tc.copy()
    Tc[:, :3, :3] = Rc.as_matrix()
    Tt[:, :3, :3] = Rt.as_matrix()
    Tt[:, :3, 3] = [0.3, 0.0, -0.4]
    pe, oe = K.pose_error(to_xp(Tc), to_xp(Tt))
    np.testing.assert_allclose(to_numpy(pe), 0.5, atol=1e-12)
    np.testing.assert_allclose(to_numpy(oe), angles, atol=1e-6)
