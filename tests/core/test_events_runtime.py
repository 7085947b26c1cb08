"""The event bus and the runtime."""

from __future__ import annotations

import threading

import pytest

from prism_kernels.events import EventBus, declare, declared_by, event_types
from prism_kernels.runtime import Runtime
from prism_kernels.service import DomainService

declare("ThreatDetected", by="tests")


def test_publish_reaches_subscribers_and_survives_a_broken_one():
    bus = EventBus()
    got = []

    def broken(e):
        raise RuntimeError("boom")

    bus.subscribe(broken)
    token = bus.subscribe(got.append)
    ev = bus.publish("ThreatDetected", {"threat_id": "t1", "confidence": 0.9})
    assert got == [ev]
    msg = ev.to_message()
    assert (
        msg["type"] == "ThreatDetected"
        and msg["threat_id"] == "t1"
        and isinstance(msg["timestamp"], int)
    )
    bus.unsubscribe(token)
    bus.publish("ThreatDetected", {})
    assert len(got) == 1
    assert bus.published["ThreatDetected"] == 2
    with pytest.raises(ValueError):
        bus.publish("NotAnEvent", {})


def test_a_domain_declares_its_events_and_may_publish_only_those():
    class SensorService(DomainService):
        domain = "sensors"
        events = ("SensorFlared",)

    assert "SensorFlared" in event_types() and declared_by("SensorFlared") == "sensors"
    svc = SensorService()
    got = []
    svc.bus.subscribe(got.append)
    svc.publish("SensorFlared", {"id": 1})
    assert [e.type for e in got] == ["SensorFlared"]
    with pytest.raises(ValueError):
        svc.publish("SystemStatus", {})
    with pytest.raises(ValueError):
        declare("not pascal case")


def test_publish_from_threads():
    bus = EventBus()
    got = []
    bus.subscribe(got.append)
    threads = [
        threading.Thread(target=lambda: [bus.publish("SystemStatus", {}) for _ in range(100)])
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 400


class Counter:
    def __init__(self, store, bus):
        self.store, self.bus = store, bus


def test_runtime_builds_each_service_once():
    rt = Runtime()
    a = rt.service(Counter)
    assert rt.service(Counter) is a and a.store is rt.store and a.bus is rt.bus
