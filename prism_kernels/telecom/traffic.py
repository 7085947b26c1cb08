"""Seeded traffic matrices: a gravity model with daily seasonality.

Gravity model: the traffic from ``i`` to ``j`` is proportional to ``mass_i x mass_j`` (zero on
the diagonal), scaled to a total. A node's mass defaults to the capacity attached to it (the
sum of its links' capacities), the usual stand-in for the traffic a PoP aggregates when no
measured matrix is at hand.

Daily seasonality: each node's activity follows its local time of day (UTC plus longitude /
15 hours), ``1 + amplitude x cos(2 pi (local hour - peak hour) / 24)``, which averages 1 over
a day; an origin-destination pair follows the geometric mean of its two ends. Optional
multiplicative log-normal noise (``noise`` = its sigma) is drawn from a seeded generator, so
a day of traffic is reproducible from ``seed``.

These are synthetic matrices: what the model gives for the stated parameters, for routing
and what-if studies, never measured traffic.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prism_kernels.errors import InvalidInput
from prism_kernels.telecom.routing import igp_routing, link_utilization
from prism_kernels.telecom.topology import Demands, Topology, demands_from_matrix


def node_mass(topo: Topology) -> np.ndarray:
    """``(n,)`` capacity attached to each node (sum of its links' capacities)."""
    return np.bincount(
        np.concatenate([topo.link_src, topo.link_dst]),
        weights=np.concatenate([topo.capacity, topo.capacity]),
        minlength=topo.n,
    )


def gravity_matrix(
    topo: Topology,
    total: float,
    mass: Any = None,
    noise: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """``(n, n)`` traffic matrix summing to ``total`` (capacity unit) by the gravity model.

    Parameters
    ----------
    total : the sum of all entries (>= 0).
    mass : ``(n,)`` node masses (>= 0); default :func:`node_mass`.
    noise : sigma of the multiplicative log-normal noise (0: none).
    seed : generator seed of the noise.
    """
    if not np.isfinite(total) or total < 0:
        raise InvalidInput("total", f"must be a finite number >= 0; got {total}")
    if noise < 0 or not np.isfinite(noise):
        raise InvalidInput("noise", "must be >= 0")
    m = node_mass(topo) if mass is None else np.asarray(mass, dtype=np.float64)
    if m.shape != (topo.n,) or np.any(~np.isfinite(m)) or np.any(m < 0):
        raise InvalidInput("mass", f"needs {topo.n} finite values >= 0")
    T = np.outer(m, m)
    np.fill_diagonal(T, 0.0)
    if noise > 0:
        T *= np.random.default_rng(seed).lognormal(0.0, noise, T.shape)
    s = T.sum()
    return T * (total / s) if s > 0 else T


def daily_profile(
    topo: Topology, hours: Any, peak_hour: float = 20.0, amplitude: float = 0.5
) -> np.ndarray:
    """``(len(hours), n)`` activity of each node at each UTC hour (mean 1 over a day).

    A node without a longitude keeps UTC as its local time.
    """
    if not 0 <= amplitude <= 1:
        raise InvalidInput("amplitude", "must be within 0..1 (activity stays >= 0)")
    h = np.asarray(hours, dtype=np.float64).reshape(-1)
    lon = np.where(np.isfinite(topo.lon), topo.lon, 0.0)
    local = h[:, None] + lon[None, :] / 15.0
    return 1.0 + amplitude * np.cos(2 * np.pi * (local - peak_hour) / 24.0)


def daily_traffic(
    topo: Topology,
    mean_total: float,
    hours: Any = None,
    peak_hour: float = 20.0,
    amplitude: float = 0.5,
    noise: float = 0.1,
    seed: int = 0,
    mass: Any = None,
) -> np.ndarray:
    """``(T, n, n)`` traffic matrices over a day (module docstring).

    ``mean_total`` is the total of the underlying gravity matrix (the day's mean total when
    every node shares one time zone; spread time zones flatten the day a little); ``hours``
    are UTC hours (default 0..23). Hour ``h``'s pair ``(i, j)`` is the gravity matrix entry times
    ``sqrt(a_i(h) a_j(h))`` times its noise draw.
    """
    base = gravity_matrix(topo, mean_total, mass=mass)
    i, j = np.indices(base.shape)
    flat = _seasonal(
        topo, base.ravel(), i.ravel(), j.ravel(), hours, peak_hour, amplitude, noise, seed
    )
    return flat.reshape(-1, topo.n, topo.n)


def _seasonal(
    topo: Topology,
    volume: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    hours: Any,
    peak_hour: float,
    amplitude: float,
    noise: float,
    seed: int,
) -> np.ndarray:
    """``(T, k)``: each volume times ``sqrt(a_src a_dst)`` at each hour, times the noise."""
    hours = np.arange(24) if hours is None else np.asarray(hours, dtype=np.float64)
    act = daily_profile(topo, hours, peak_hour, amplitude)
    out = volume[None, :] * np.sqrt(act[:, src] * act[:, dst])
    if noise > 0:
        out = out * np.random.default_rng(seed).lognormal(-0.5 * noise**2, noise, out.shape)
    return out


def seasonal_volumes(
    topo: Topology,
    demands: Demands,
    hours: Any = None,
    peak_hour: float = 20.0,
    amplitude: float = 0.5,
    noise: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """``(T, k)`` volumes of ``demands`` over the day: each demand's volume times the
    geometric mean of its two ends' activity (:func:`daily_profile`), times seeded
    log-normal noise of sigma ``noise`` (mean 1)."""
    return _seasonal(
        topo, demands.volume, demands.src, demands.dst, hours, peak_hour, amplitude, noise, seed
    )


def peak_utilization(
    topo: Topology, demands: Demands, volumes: Any, metric: str = "latency"
) -> np.ndarray:
    """``(T,)`` the busiest link's utilisation under IGP routing with ECMP for each row of
    ``volumes`` ``(T, k)``: one routing, one product for all rows."""
    V = np.atleast_2d(np.asarray(volumes, dtype=np.float64))
    if len(demands) == 0:
        return np.zeros(V.shape[0])
    loads = np.asarray(igp_routing(topo, demands, metric).loads(V))
    return np.asarray([link_utilization(topo, row)[1].max() for row in loads])


def scale_to_utilization(
    topo: Topology, matrix: Any, target: float, metric: str = "latency"
) -> np.ndarray:
    """``matrix`` ``(n, n)`` (or ``(T, n, n)``: scaled by its busiest hour) scaled so that
    IGP routing with ECMP runs the busiest link at ``target`` utilisation (loads are linear
    in the traffic, so one routing gives the factor)."""
    if not np.isfinite(target) or target <= 0:
        raise InvalidInput("target", "must be a positive utilisation")
    M = np.asarray(matrix, dtype=np.float64)
    mats = M.reshape(-1, topo.n, topo.n)
    dem = demands_from_matrix(topo, mats.sum(axis=0))
    if len(dem) == 0:
        return M
    worst = float(
        peak_utilization(topo, dem, np.stack([m[dem.src, dem.dst] for m in mats]), metric).max()
    )
    return M * (target / worst) if worst > 0 else M
