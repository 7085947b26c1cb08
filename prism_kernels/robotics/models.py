"""Robot models: a mobile sphere robot, the Franka Emika Panda and the Universal Robots UR5e.

A :class:`RobotModel` holds everything the kernels need and nothing they compute: the joint
(or workspace) limits, the velocity, acceleration and jerk limits, the Denavit-Hartenberg table
of an arm (standard or modified convention, named in ``dh_convention``), the base and tool
transforms, and the collision spheres of every link. Units: metres, radians, seconds.

Link frames (the ``L`` axis of :func:`prism_kernels.robotics.kinematics.link_frames`):

- arm with ``dof`` joints: ``L = dof + 2`` frames: index 0 the base (link 0, the base
  transform), index ``i`` in ``1..dof`` the frame of link ``i`` (after joint ``i``), index
  ``dof + 1`` the tool frame (the end effector that :func:`~prism_kernels.robotics.kinematics.fk`
  returns);
- mobile robot: ``L = 1``, a frame translated to the configuration (no rotation).

Collision spheres (``sphere_link``, ``sphere_centres``, ``sphere_radii``) are an
*approximation* of the links written by hand for this project: a handful of spheres per link,
placed on the link's body (on the segments between its joint axes and, for the UR5e, on the
published offset of the upper arm) with radii of 4.5-9 cm chosen to enclose the casings as
drawn in the manufacturers' dimension drawings. They were not fitted to the manufacturers'
meshes (none is shipped here) and are meant to be conservative (overstating the volume),
not exact. Self-collision is checked between spheres of links whose indices differ by more
than 2 (``skip_pairs`` lists the link pairs not checked: each link with its neighbours and the
neighbours' neighbours, which touch by construction at the joints).

Sources (also in each model's ``sources``):

- Franka Emika Panda: the modified (Craig) DH table, the flange offset, the hand's TCP offset
  and the joint position, velocity, acceleration and jerk limits from Franka's "Robot and
  interface specifications" (https://frankaemika.github.io/docs/control_parameters.html,
  sections "Denavit-Hartenberg parameters" and "Limits for Panda"). The same table is the one
  of ``roboticstoolbox.models.DH.Panda``.
- Universal Robots UR5e: the standard DH table from Universal Robots' "DH parameters for
  calculations of kinematics and dynamics"
  (https://www.universal-robots.com/articles/ur/application-installation/dh-parameters-for-calculations-of-kinematics-and-dynamics/);
  joint ranges (+-360 degrees every joint) and maximum joint speeds (180 degrees/s every
  joint) from the UR5e e-Series technical specifications (data sheet,
  https://www.universal-robots.com/products/ur5-robot/).
  Universal Robots publish no joint acceleration or jerk limit: the values below are this
  project's choice (stated as such in ``sources``).
- Mobile robot: a sphere of radius 0.25 m; its limits are this project's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from prism_kernels.errors import InvalidInput

DEG = np.pi / 180.0


@dataclass(frozen=True, eq=False)
class RobotModel:
    """A robot's kinematic, limit and collision description (host NumPy arrays, float64).

    Attributes
    ----------
    name : str
        ``"mobile"``, ``"panda"``, ``"ur5e"``...
    kind : {"mobile", "arm"}
        A mobile robot's configuration is its position (2 or 3 coordinates, metres); an arm's
        is its joint angles (radians).
    dof : int
        Length of a configuration.
    joint_limits : ndarray (dof, 2)
        Lower and upper bound per joint (radians) or, for a mobile robot, the workspace bounds
        per axis (metres).
    max_velocity, max_acceleration, max_jerk : ndarray (dof,)
        Per joint (rad/s, rad/s^2, rad/s^3) or per axis (m/s, m/s^2, m/s^3).
    dh : ndarray (dof, 4) or None
        Arms: one row per joint, columns ``(a, alpha, d, theta_offset)`` (metres, radians).
        With ``dh_convention == "modified"`` (Craig) row ``i`` holds ``a_{i-1}, alpha_{i-1},
        d_i, offset_i`` and link ``i`` is placed by ``Rx(alpha) Tx(a) Rz(q + offset) Tz(d)``;
        with ``"standard"`` row ``i`` holds ``a_i, alpha_i, d_i, offset_i`` and link ``i`` is
        placed by ``Rz(q + offset) Tz(d) Tx(a) Rx(alpha)``.
    dh_convention : {"modified", "standard"} or None
    base, tool : ndarray (4, 4)
        World-from-base and flange-from-tool homogeneous transforms.
    radius : float
        Mobile robot: the radius of its sphere (metres). Arms: 0 (their volume is the link
        spheres).
    sphere_link : ndarray (S,) int
        Index of the link frame each collision sphere is attached to (0..L-1, see module doc).
    sphere_centres : ndarray (S, 3)
        Sphere centres in their link's frame (metres).
    sphere_radii : ndarray (S,)
        Sphere radii (metres).
    skip_pairs : tuple of (int, int)
        Link pairs (i < j) whose spheres are not checked against each other (self-collision).
    link_names : tuple of str
        Name of each link frame (length L).
    home : ndarray (dof,)
        A nominal collision-free configuration inside the limits.
    sources : dict
        Where each figure comes from (URL or "project choice").
    """

    name: str
    kind: Literal["mobile", "arm"]
    dof: int
    joint_limits: np.ndarray
    max_velocity: np.ndarray
    max_acceleration: np.ndarray
    max_jerk: np.ndarray
    dh: np.ndarray | None = None
    dh_convention: Literal["modified", "standard"] | None = None
    base: np.ndarray = field(default_factory=lambda: np.eye(4))
    tool: np.ndarray = field(default_factory=lambda: np.eye(4))
    radius: float = 0.0
    sphere_link: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sphere_centres: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    sphere_radii: np.ndarray = field(default_factory=lambda: np.zeros(0))
    skip_pairs: tuple[tuple[int, int], ...] = ()
    link_names: tuple[str, ...] = ()
    home: np.ndarray | None = None
    sources: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in (
            "joint_limits",
            "max_velocity",
            "max_acceleration",
            "max_jerk",
            "base",
            "tool",
            "sphere_centres",
            "sphere_radii",
        ):
            a = np.array(getattr(self, name), dtype=np.float64)
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        link = np.array(self.sphere_link, dtype=np.int64)
        link.setflags(write=False)
        object.__setattr__(self, "sphere_link", link)
        if self.dh is not None:
            dh = np.array(self.dh, dtype=np.float64)
            dh.setflags(write=False)
            object.__setattr__(self, "dh", dh)
        home = self.home if self.home is not None else self.joint_limits.mean(axis=1)
        home = np.array(home, dtype=np.float64)
        home.setflags(write=False)
        object.__setattr__(self, "home", home)
        if self.joint_limits.shape != (self.dof, 2):
            raise InvalidInput("joint_limits", f"expected shape ({self.dof}, 2)")
        if np.any(self.joint_limits[:, 1] < self.joint_limits[:, 0]):
            raise InvalidInput("joint_limits", "upper bound below lower bound")
        for name in ("max_velocity", "max_acceleration", "max_jerk"):
            a = getattr(self, name)
            if a.shape != (self.dof,) or np.any(~(a > 0)):
                raise InvalidInput(name, f"expected {self.dof} positive values")
        if self.kind == "arm" and (self.dh is None or self.dh.shape != (self.dof, 4)):
            raise InvalidInput("dh", f"an arm needs a ({self.dof}, 4) DH table")
        if self.kind == "arm" and self.dh_convention not in ("modified", "standard"):
            raise InvalidInput("dh_convention", "choose 'modified' or 'standard'")
        if self.sphere_centres.shape != (self.sphere_link.shape[0], 3) or (
            self.sphere_radii.shape != self.sphere_link.shape
        ):
            raise InvalidInput("sphere_centres", "sphere_link, centres and radii disagree")
        if self.sphere_link.size and (
            self.sphere_link.min() < 0 or self.sphere_link.max() >= self.n_links
        ):
            raise InvalidInput("sphere_link", f"link indices must lie in 0..{self.n_links - 1}")

    @property
    def n_links(self) -> int:
        """Number of link frames ``L`` (``dof + 2`` for an arm, 1 for a mobile robot)."""
        return self.dof + 2 if self.kind == "arm" else 1

    @property
    def self_collision_pairs(self) -> np.ndarray:
        """Sphere index pairs (P, 2) checked for self-collision (links not in ``skip_pairs``,
        each pair once, ``i < j``). Empty for a mobile robot."""
        if self.kind != "arm" or self.sphere_link.size == 0:
            return np.zeros((0, 2), dtype=np.int64)
        skip = {tuple(sorted(p)) for p in self.skip_pairs}
        i, j = np.triu_indices(self.sphere_link.size, k=1)
        li, lj = self.sphere_link[i], self.sphere_link[j]
        keep = np.array(
            [
                li[k] != lj[k] and (min(li[k], lj[k]), max(li[k], lj[k])) not in skip
                for k in range(i.size)
            ],
            dtype=bool,
        )
        return np.stack([i[keep], j[keep]], axis=1).astype(np.int64)

    def describe(self) -> dict:
        """JSON-able summary (limits, DH table, spheres, sources) for the service and routes."""
        return {
            "name": self.name,
            "kind": self.kind,
            "dof": self.dof,
            "joint_limits": self.joint_limits.tolist(),
            "max_velocity": self.max_velocity.tolist(),
            "max_acceleration": self.max_acceleration.tolist(),
            "max_jerk": self.max_jerk.tolist(),
            "dh": None if self.dh is None else self.dh.tolist(),
            "dh_convention": self.dh_convention,
            "radius": self.radius,
            "n_spheres": int(self.sphere_radii.size),
            "link_names": list(self.link_names),
            "home": self.home.tolist(),
            "sources": dict(self.sources),
        }


def _translate(x: float, y: float, z: float) -> np.ndarray:
    t = np.eye(4)
    t[:3, 3] = (x, y, z)
    return t


def _rotz(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    r = np.eye(4)
    r[:2, :2] = [[c, -s], [s, c]]
    return r


def _spheres(per_link: dict[int, list[tuple[float, float, float, float]]]):
    link, centres, radii = [], [], []
    for k in sorted(per_link):
        for x, y, z, r in per_link[k]:
            link.append(k)
            centres.append((x, y, z))
            radii.append(r)
    return np.array(link, dtype=np.int64), np.array(centres, float), np.array(radii, float)


def _skip_neighbours(n_links: int, reach: int = 2) -> tuple[tuple[int, int], ...]:
    return tuple((i, j) for i in range(n_links) for j in range(i + 1, min(n_links, i + reach + 1)))


# --------------------------------------------------------------------------------------------
# Mobile robot
# --------------------------------------------------------------------------------------------


def mobile_model(
    name: str = "mobile",
    radius: float = 0.25,
    bounds: np.ndarray | list | None = None,
    max_velocity: float = 1.0,
    max_acceleration: float = 1.0,
    max_jerk: float = 5.0,
) -> RobotModel:
    """A mobile robot approximated by one sphere (3-D) or disc (2-D) of ``radius`` metres.

    Parameters
    ----------
    bounds : array (D, 2), optional
        Workspace bounds of the sphere's centre per axis (metres); ``D`` is 2 or 3 and is the
        configuration length. Default: ``[-10, 10]`` on x, y and z.
    max_velocity, max_acceleration, max_jerk : float
        Per-axis limits (m/s, m/s^2, m/s^3); project defaults, not a data sheet.
    """
    b = np.array([[-10.0, 10.0]] * 3 if bounds is None else bounds, dtype=np.float64)
    if b.ndim != 2 or b.shape[0] not in (2, 3) or b.shape[1] != 2 or not np.all(np.isfinite(b)):
        raise InvalidInput("bounds", "expected finite (2, 2) or (3, 2) workspace bounds")
    if not (np.isfinite(radius) and radius >= 0):
        raise InvalidInput("radius", "must be a finite non-negative number of metres")
    d = b.shape[0]
    return RobotModel(
        name=name,
        kind="mobile",
        dof=d,
        joint_limits=b,
        max_velocity=np.full(d, float(max_velocity)),
        max_acceleration=np.full(d, float(max_acceleration)),
        max_jerk=np.full(d, float(max_jerk)),
        radius=float(radius),
        sphere_link=np.zeros(1, dtype=np.int64),
        sphere_centres=np.zeros((1, 3)),
        sphere_radii=np.array([float(radius)]),
        link_names=("body",),
        home=b.mean(axis=1),
        sources={
            "radius": "project choice (issue 13: a sphere robot of radius 0.25 m)",
            "limits": "project defaults (not a data sheet)",
        },
    )


#: The built-in mobile robot: a sphere of radius 0.25 m in the box [-10, 10]^3 m.
MOBILE = mobile_model()


# --------------------------------------------------------------------------------------------
# Franka Emika Panda
# --------------------------------------------------------------------------------------------

_FRANKA_DOC = "https://frankaemika.github.io/docs/control_parameters.html"

#: Franka's modified DH table (a_{i-1}, alpha_{i-1}, d_i, offset_i), "Denavit-Hartenberg
#: parameters" of the Franka documentation; the flange (d = 0.107 m) is merged into joint 7's
#: d, as in ``roboticstoolbox.models.DH.Panda``.
PANDA_DH = np.array(
    [
        [0.0, 0.0, 0.333, 0.0],
        [0.0, -np.pi / 2, 0.0, 0.0],
        [0.0, np.pi / 2, 0.316, 0.0],
        [0.0825, np.pi / 2, 0.0, 0.0],
        [-0.0825, -np.pi / 2, 0.384, 0.0],
        [0.0, np.pi / 2, 0.0, 0.0],
        [0.088, np.pi / 2, 0.107, 0.0],
    ]
)

# "Limits for Panda" of the Franka documentation (q_min/q_max rad, dq_max rad/s,
# ddq_max rad/s^2, dddq_max rad/s^3).
PANDA_Q_MIN = np.array([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973])
PANDA_Q_MAX = np.array([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973])
PANDA_DQ_MAX = np.array([2.1750, 2.1750, 2.1750, 2.1750, 2.6100, 2.6100, 2.6100])
PANDA_DDQ_MAX = np.array([15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0])
PANDA_DDDQ_MAX = np.array([7500.0, 3750.0, 5000.0, 6250.0, 7500.0, 10000.0, 10000.0])

#: Flange -> hand TCP: the Franka Hand is mounted rotated -45 degrees about the flange z axis
#: and its TCP lies 0.1034 m along z ("Robot and interface specifications", Franka Hand).
PANDA_TOOL = _rotz(-np.pi / 4) @ _translate(0.0, 0.0, 0.1034)

# Link spheres (x, y, z, r) in each link frame (the DH frames, which coincide with the frames
# of Franka's URDF panda_link0..7). Frame 8 is the hand's TCP. Hand-placed approximation.
_PANDA_SPHERES = {
    0: [(0.0, 0.0, 0.05, 0.09), (-0.08, 0.0, 0.05, 0.08), (0.0, 0.0, 0.15, 0.08)],
    1: [(0.0, 0.0, -0.19, 0.08), (0.0, 0.0, -0.10, 0.08), (0.0, 0.0, 0.0, 0.08)],
    2: [(0.0, 0.0, 0.0, 0.08), (0.0, -0.09, 0.0, 0.07), (0.0, -0.17, 0.0, 0.07)],
    3: [(0.0, 0.0, -0.12, 0.07), (0.0, 0.0, -0.05, 0.07), (0.06, 0.0, 0.0, 0.07)],
    4: [(0.0, 0.0, 0.0, 0.075), (-0.08, 0.06, 0.0, 0.07), (-0.0825, 0.13, 0.0, 0.065)],
    5: [
        (0.0, 0.0, -0.23, 0.065),
        (0.0, 0.0, -0.16, 0.06),
        (0.0, 0.06, -0.10, 0.055),
        (0.0, 0.0, -0.04, 0.06),
    ],
    6: [(0.0, 0.0, 0.0, 0.065), (0.06, 0.0, 0.0, 0.06)],
    7: [(0.0, 0.0, 0.05, 0.055), (0.04, 0.04, 0.08, 0.04), (0.0, 0.0, 0.107, 0.05)],
    8: [
        (0.0, 0.0, -0.07, 0.045),
        (0.0, 0.06, -0.07, 0.045),
        (0.0, -0.06, -0.07, 0.045),
        (0.0, 0.04, -0.025, 0.025),
        (0.0, -0.04, -0.025, 0.025),
    ],
}
_pl, _pc, _pr = _spheres(_PANDA_SPHERES)

#: Franka Emika Panda with the Franka Hand (tool frame: the hand's TCP).
PANDA = RobotModel(
    name="panda",
    kind="arm",
    dof=7,
    joint_limits=np.stack([PANDA_Q_MIN, PANDA_Q_MAX], axis=1),
    max_velocity=PANDA_DQ_MAX,
    max_acceleration=PANDA_DDQ_MAX,
    max_jerk=PANDA_DDDQ_MAX,
    dh=PANDA_DH,
    dh_convention="modified",
    tool=PANDA_TOOL,
    sphere_link=_pl,
    sphere_centres=_pc,
    sphere_radii=_pr,
    skip_pairs=_skip_neighbours(9),
    link_names=("panda_link0",)
    + tuple(f"panda_link{i}" for i in range(1, 8))
    + ("panda_hand_tcp",),
    # the "ready" pose of Franka's examples and of roboticstoolbox (qr)
    home=np.array([0.0, -0.3, 0.0, -2.2, 0.0, 2.0, np.pi / 4]),
    sources={
        "dh": f"{_FRANKA_DOC} (Denavit-Hartenberg parameters, modified/Craig convention)",
        "tool": f"{_FRANKA_DOC} (Franka Hand: TCP 0.1034 m along flange z, rotated -45 deg)",
        "joint_limits": f"{_FRANKA_DOC} (Limits for Panda: q_min, q_max)",
        "max_velocity": f"{_FRANKA_DOC} (Limits for Panda: dq_max)",
        "max_acceleration": f"{_FRANKA_DOC} (Limits for Panda: ddq_max)",
        "max_jerk": f"{_FRANKA_DOC} (Limits for Panda: dddq_max)",
        "spheres": "project approximation of the link casings (conservative, hand-placed)",
    },
)


# --------------------------------------------------------------------------------------------
# Universal Robots UR5e
# --------------------------------------------------------------------------------------------

_UR_DH_DOC = (
    "https://www.universal-robots.com/articles/ur/application-installation/"
    "dh-parameters-for-calculations-of-kinematics-and-dynamics/"
)
_UR5E_DATASHEET = (
    "UR5e e-Series technical specifications, https://www.universal-robots.com/products/ur5-robot/"
)

#: Universal Robots' standard DH table for the UR5e (a_i, alpha_i, d_i, offset_i).
UR5E_DH = np.array(
    [
        [0.0, np.pi / 2, 0.1625, 0.0],
        [-0.425, 0.0, 0.0, 0.0],
        [-0.3922, 0.0, 0.0, 0.0],
        [0.0, np.pi / 2, 0.1333, 0.0],
        [0.0, -np.pi / 2, 0.0997, 0.0],
        [0.0, 0.0, 0.0996, 0.0],
    ]
)

# Link spheres in the standard-DH link frames (frame i sits on joint i+1's axis). The UR5e's
# upper arm runs about 0.138 m along the shoulder axis from the DH plane (the "shoulder offset"
# of Universal Robots' URDF), so its spheres sit at z = 0.13 in frame 2.
_UR5E_SPHERES = {
    0: [(0.0, 0.0, 0.05, 0.08), (0.0, 0.0, 0.12, 0.075)],
    1: [(0.0, 0.0, 0.0, 0.075), (0.0, 0.0, 0.08, 0.075)],
    2: [
        (0.425, 0.0, 0.13, 0.075),
        (0.32, 0.0, 0.13, 0.06),
        (0.21, 0.0, 0.13, 0.06),
        (0.10, 0.0, 0.13, 0.06),
        (0.0, 0.0, 0.13, 0.065),
        (0.0, 0.0, 0.05, 0.065),
    ],
    3: [
        (0.3922, 0.0, 0.0, 0.06),
        (0.29, 0.0, 0.0, 0.05),
        (0.19, 0.0, 0.0, 0.05),
        (0.09, 0.0, 0.0, 0.05),
        (0.0, 0.0, 0.0, 0.055),
    ],
    4: [(0.0, 0.0, 0.0, 0.055), (0.0, -0.07, 0.0, 0.05)],
    5: [(0.0, 0.0, 0.0, 0.05), (0.0, 0.05, 0.0, 0.05)],
    6: [(0.0, 0.0, -0.05, 0.045), (0.0, 0.0, -0.01, 0.045)],
}
_ul, _uc, _ur = _spheres(_UR5E_SPHERES)

#: Universal Robots UR5e (tool frame: the tool flange).
UR5E = RobotModel(
    name="ur5e",
    kind="arm",
    dof=6,
    joint_limits=np.tile([-2.0 * np.pi, 2.0 * np.pi], (6, 1)),
    max_velocity=np.full(6, np.pi),  # 180 deg/s every joint
    max_acceleration=np.full(6, 8.0),
    max_jerk=np.full(6, 400.0),
    dh=UR5E_DH,
    dh_convention="standard",
    sphere_link=_ul,
    sphere_centres=_uc,
    sphere_radii=_ur,
    skip_pairs=_skip_neighbours(8),
    link_names=(
        "base_link",
        "shoulder_link",
        "upper_arm_link",
        "forearm_link",
        "wrist_1_link",
        "wrist_2_link",
        "wrist_3_link",
        "tool0",
    ),
    home=np.array([0.0, -np.pi / 2, np.pi / 2, -np.pi / 2, -np.pi / 2, 0.0]),
    sources={
        "dh": f"{_UR_DH_DOC} (UR5e, standard DH)",
        "joint_limits": f"{_UR5E_DATASHEET} (working range +-360 deg, all joints)",
        "max_velocity": f"{_UR5E_DATASHEET} (maximum speed 180 deg/s, all joints)",
        "max_acceleration": "project choice (8 rad/s^2): Universal Robots publish none",
        "max_jerk": "project choice (400 rad/s^3): Universal Robots publish none",
        "spheres": "project approximation of the link casings (conservative, hand-placed)",
    },
)

#: The built-in models by name.
MODELS: dict[str, RobotModel] = {"mobile": MOBILE, "panda": PANDA, "ur5e": UR5E}


def get_model(name: str) -> RobotModel:
    """The built-in model called ``name`` (case, ``-``, ``_`` and spaces ignored;
    ``"franka"`` -> ``"panda"``).

    Raises
    ------
    InvalidInput
        ``field="model"`` for an unknown name, listing the choices.
    """
    if not isinstance(name, str):
        raise InvalidInput("model", f"expected a model name, one of {sorted(MODELS)}")
    key = name.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    key = {"franka": "panda", "frankapanda": "panda", "sphere": "mobile"}.get(key, key)
    if key not in MODELS:
        raise InvalidInput("model", f"unknown robot model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[key]
