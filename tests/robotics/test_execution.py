"""Simulated controller: state from an injected clock, progress, completion, time scale, cancel,
and JSON snapshot / restore across a (simulated) restart."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from prism_kernels.errors import InvalidInput
from prism_kernels.robotics.execution import STATUSES, SimulatedController
from prism_kernels.robotics.timing import time_parameterize


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


PATH = np.array([[0.0, 0.0, 0.0], [1.0, 0.5, 0.0], [1.0, 0.5, 0.8], [-0.5, 0.0, 0.2]])


@pytest.fixture
def traj():
    return time_parameterize(PATH, [1.0, 0.8, 1.2], 2.0, 15.0, rate_hz=50)


def test_pending_then_executing_then_completed(traj):
    clock = FakeClock()
    ctl = SimulatedController(traj, clock=clock)
    s = ctl.state()
    assert s["status"] == "pending" and s["progress"] == 0.0 and s["elapsed_s"] == 0.0
    assert s["position"] == PATH[0].tolist() and s["velocity"] == [0.0, 0.0, 0.0]
    assert s["estimated_completion_s"] == pytest.approx(traj.total_time)
    ctl.start()
    last = -1.0
    for dt in np.linspace(0.0, traj.total_time * 1.2, 97):
        clock.t = 1000.0 + dt
        s = ctl.state()
        el = s["elapsed_s"]  # (1000 + dt) - 1000, as the clock reads it
        assert el == pytest.approx(dt, abs=1e-9)
        expect = traj.sample(min(el, traj.total_time))
        np.testing.assert_allclose(s["position"], expect.position, atol=1e-15)
        assert s["progress"] >= last  # monotone
        last = s["progress"]
        if el < traj.total_time:
            assert s["status"] == "executing"
            np.testing.assert_allclose(s["velocity"], expect.velocity, atol=1e-15)
            assert s["remaining_s"] == pytest.approx(traj.total_time - el)
        else:
            assert s["status"] == "completed" and s["progress"] == 1.0
            assert s["position"] == PATH[-1].tolist()  # exactly the goal
            assert s["velocity"] == [0.0] * 3 and s["remaining_s"] == 0.0
    assert set(s) >= {"position", "velocity", "progress", "status", "elapsed_s"}
    assert s["status"] in STATUSES
    json.dumps(s)  # JSON-able


def test_state_at_explicit_now_and_no_threads(traj):
    before = threading.active_count()
    ctl = SimulatedController(traj, clock=FakeClock(0.0))
    ctl.start(now=5.0)
    assert ctl.state(now=5.0 + traj.total_time / 2)["progress"] == pytest.approx(0.5)
    assert ctl.status(now=4.0) == "executing"  # before the start instant: at the start
    assert ctl.state(now=4.0)["position"] == PATH[0].tolist()
    assert threading.active_count() == before


def test_time_scale(traj):
    clock = FakeClock(0.0)
    ctl = SimulatedController(traj, time_scale=2.0, clock=clock)
    ctl.start()
    assert ctl.state()["estimated_completion_s"] == pytest.approx(traj.total_time / 2)
    t, h = traj.total_time / 5, 1e-6
    clock.t = t
    s = ctl.state()
    np.testing.assert_allclose(s["position"], traj.sample(2 * t).position, atol=1e-15)
    clock.t = t + h
    s2 = ctl.state()
    fd = (np.array(s2["position"]) - np.array(s["position"])) / h
    np.testing.assert_allclose(fd, s["velocity"], atol=1e-4)  # per clock second
    np.testing.assert_allclose(s["velocity"], 2 * traj.sample(2 * t).velocity, rtol=1e-12)
    clock.t = traj.total_time / 2
    assert ctl.status() == "completed"


def test_cancel_freezes_state(traj):
    clock = FakeClock(10.0)
    ctl = SimulatedController(traj, clock=clock)
    ctl.start()
    clock.t = 10.0 + 0.4 * traj.total_time
    before = ctl.state()
    stopped = ctl.cancel()
    assert stopped["status"] == "cancelled"
    assert stopped["position"] == before["position"]
    assert stopped["progress"] == before["progress"]
    assert stopped["velocity"] == [0.0, 0.0, 0.0]  # an instantaneous stop
    assert stopped["estimated_completion_s"] is None and stopped["remaining_s"] is None
    for later in (1.0, 100.0, 1e6):
        clock.t += later
        assert ctl.state() == stopped
    assert ctl.cancel() == stopped  # cancelling twice keeps the first stop
    with pytest.raises(InvalidInput) as e:
        ctl.start()
    assert e.value.field == "status"


def test_cancel_before_start_and_after_completion(traj):
    clock = FakeClock(0.0)
    ctl = SimulatedController(traj, clock=clock)
    s = ctl.cancel()
    assert s["status"] == "cancelled" and s["position"] == PATH[0].tolist()
    done = SimulatedController(traj, clock=clock)
    done.start()
    clock.t = traj.total_time + 1.0
    s = done.cancel()
    assert s["status"] == "completed" and s["position"] == PATH[-1].tolist()


def test_start_twice_and_bad_arguments(traj):
    ctl = SimulatedController(traj, clock=FakeClock())
    ctl.start()
    with pytest.raises(InvalidInput) as e:
        ctl.start()
    assert e.value.field == "status"
    for bad in (0.0, -1.0, float("nan"), float("inf"), "x"):
        with pytest.raises(InvalidInput) as e:
            SimulatedController(traj, time_scale=bad)
        assert e.value.field == "time_scale"
    with pytest.raises(InvalidInput) as e:
        SimulatedController(PATH)
    assert e.value.field == "trajectory"
    with pytest.raises(InvalidInput) as e:
        ctl.state(now=float("nan"))
    assert e.value.field == "now"


def test_zero_length_trajectory():
    traj = time_parameterize([[0.3, 0.4]], 1.0, 1.0, 1.0)
    ctl = SimulatedController(traj, clock=FakeClock())
    assert ctl.state()["status"] == "pending"
    s = ctl.start()
    assert s["status"] == "completed" and s["progress"] == 1.0
    assert s["position"] == [0.3, 0.4]


def test_snapshot_restore_survives_restart(traj):
    clock, wall = FakeClock(50.0), FakeClock(1.7e9)
    ctl = SimulatedController(traj, time_scale=1.5, clock=clock, wall_clock=wall)
    ctl.start()
    clock.t += 0.2 * traj.total_time / 1.5
    wall.t += 0.2 * traj.total_time / 1.5
    snap = json.loads(json.dumps(ctl.snapshot()))
    # "restart": a new process whose monotonic clock has another origin; 1.0 s of wall time
    # passes while it is down
    down = 1.0
    new_clock, new_wall = FakeClock(3.0), FakeClock(wall.t + down)
    back = SimulatedController.restore(snap, clock=new_clock, wall_clock=new_wall)
    clock.t += down
    assert back.state()["status"] == "executing"
    np.testing.assert_allclose(back.state()["position"], ctl.state()["position"], atol=1e-12)
    assert back.state()["progress"] == pytest.approx(ctl.state()["progress"], abs=1e-12)
    assert back.time_scale == 1.5
    # ... and finishes when the original would have
    new_clock.t += traj.total_time
    assert back.state()["status"] == "completed"
    assert back.state()["position"] == PATH[-1].tolist()


def test_snapshot_restore_pending_and_cancelled(traj):
    clock, wall = FakeClock(0.0), FakeClock(0.0)
    pending = SimulatedController(traj, clock=clock, wall_clock=wall)
    back = SimulatedController.restore(
        json.loads(json.dumps(pending.snapshot())), clock=clock, wall_clock=wall
    )
    assert back.state()["status"] == "pending"
    ctl = SimulatedController(traj, clock=clock, wall_clock=wall)
    ctl.start()
    clock.t = wall.t = 0.3 * traj.total_time
    stopped = ctl.cancel()
    snap = json.loads(json.dumps(ctl.snapshot()))
    wall.t += 1000.0
    back = SimulatedController.restore(snap, clock=FakeClock(7.0), wall_clock=wall)
    assert back.state() == stopped
    with pytest.raises(InvalidInput) as e:
        SimulatedController.restore({"version": 1, "trajectory": {}})
    assert e.value.field in ("snapshot", "trajectory")
    with pytest.raises(InvalidInput) as e:
        SimulatedController.restore({"version": 99})
    assert e.value.field == "snapshot"


def test_default_clock_runs(traj):
    ctl = SimulatedController(traj)  # time.monotonic
    t0 = time.monotonic()
    ctl.start()
    s = ctl.state()
    assert s["status"] in ("executing", "completed")
    assert 0.0 <= s["elapsed_s"] <= time.monotonic() - t0 + 1e-6
