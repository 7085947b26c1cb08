"""Robotics: robot models (a mobile sphere robot, the Franka Panda, the UR5e), batched
kinematics and inverse kinematics, batched collision checking, sampling-based planners,
jerk-limited time parameterisation and a simulated controller, and the service that keeps
the robot registry (:mod:`prism_kernels.robotics.service`).

Units: metres, radians, seconds. Quaternions are ``(x, y, z, w)``.

Modules: ``models`` (:class:`RobotModel`, ``MOBILE``, ``PANDA``, ``UR5E``), ``kinematics``
(FK, Jacobians, link spheres, pose helpers), ``ik`` (batched damped least squares),
``collision`` (:class:`Scene`, batched point/segment/configuration/edge checks),
``planners`` (straight line, RRT-Connect, lazy PRM, shortcutting), ``timing``
(jerk-limited trajectories), ``execution`` (:class:`SimulatedController`).
"""
