"""The event WebSocket: Ping/Pong, Subscribe/Subscribed, Error (socket stays open), SystemStatus."""

from __future__ import annotations

import json
import time

from websockets.sync.client import connect

from tests.finance.payloads import NB01
from tests.serverutil import KEYS


def _connect(server, path="/ws"):
    return connect(
        server.ws_url.replace("/ws", path),
        additional_headers={"X-API-Key": KEYS["readonly"]},
        open_timeout=10,
    )


def _recv(ws, timeout=10.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def test_ping_pong_on_both_paths(server):
    for path in ("/ws", "/api/v1/ws"):
        with _connect(server, path) as ws:
            ws.send(json.dumps({"type": "Ping"}))
            assert _recv(ws)["type"] == "Pong"


def test_query_key_for_browsers(server):
    with connect(f"{server.ws_url}?api_key={KEYS['user']}", open_timeout=10) as ws:
        ws.send(json.dumps({"type": "Ping"}))
        assert _recv(ws)["type"] == "Pong"


def test_subscribe_and_unsubscribe(server):
    with _connect(server) as ws:
        ws.send(json.dumps({"type": "Subscribe", "event_type": "ThreatDetected"}))
        msg = _recv(ws)
        assert msg["type"] == "Subscribed" and msg["event_types"] == ["ThreatDetected"]
        ws.send(
            json.dumps({"type": "Subscribe", "event_types": ["PortfolioUpdate", "SystemStatus"]})
        )
        assert set(_recv(ws)["subscriptions"]) == {
            "ThreatDetected",
            "PortfolioUpdate",
            "SystemStatus",
        }
        ws.send(json.dumps({"type": "Unsubscribe", "event_type": "SystemStatus"}))
        msg = _recv(ws)
        assert msg["type"] == "Unsubscribed" and "SystemStatus" not in msg["subscriptions"]


def test_error_on_bad_messages_and_socket_stays_open(server):
    with _connect(server) as ws:
        for bad in (
            "{this is not json",
            json.dumps([1, 2]),
            json.dumps({"type": "Teleport"}),
            json.dumps({"type": "Subscribe", "event_type": "NoSuchEvent"}),
        ):
            ws.send(bad)
            msg = _recv(ws)
            assert msg["type"] == "Error" and msg["message"]
        ws.send(json.dumps({"type": "Ping"}))
        assert _recv(ws)["type"] == "Pong"


def test_system_status_event_with_real_readings(server):
    with _connect(server) as ws:
        ws.send(json.dumps({"type": "Subscribe", "event_type": "SystemStatus"}))
        assert _recv(ws)["type"] == "Subscribed"
        deadline = time.time() + 15
        while time.time() < deadline:
            msg = _recv(ws, timeout=15)
            if msg["type"] == "SystemStatus":
                break
        assert msg["type"] == "SystemStatus"
        assert 0.0 <= msg["cpu_usage"] <= 100.0
        assert 0.0 < msg["memory_usage"] <= 100.0
        assert isinstance(msg["active_requests"], int) and msg["active_requests"] >= 0
        assert "gpu_usage" in msg  # null without a GPU: a reading we cannot take is not invented
        assert msg["websocket_connections"] >= 1


def test_events_reach_the_sockets_subscribed_now(server, api):
    # The hub drops an event no socket wants before it reaches the loop; these checks make sure
    # that bookkeeping follows subscribes, unsubscribes and closed sockets.
    def optimize(name: str) -> str:
        r = api.post("/api/v1/finance/optimize", json={**NB01, "name": name})
        assert r.status_code == 200, r.text
        return r.json()["data"]["portfolio_id"]

    def updates_until(ws, pid: str) -> list[str]:
        """The portfolio ids of the PortfolioUpdates received up to ``pid``'s."""
        seen: list[str] = []
        while not seen or seen[-1] != pid:
            msg = _recv(ws)
            if msg["type"] == "PortfolioUpdate":
                seen.append(msg["portfolio_id"])
        return seen

    subscribe = json.dumps({"type": "Subscribe", "event_type": "PortfolioUpdate"})
    with _connect(server) as a, _connect(server) as b:
        for ws in (a, b):
            ws.send(subscribe)
            assert _recv(ws)["type"] == "Subscribed"
        first = optimize("hub-1")
        assert first in updates_until(a, first) and first in updates_until(b, first)
        b.send(json.dumps({"type": "Unsubscribe", "event_type": "PortfolioUpdate"}))
        assert _recv(b)["type"] == "Unsubscribed"
        second = optimize("hub-2")
        updates_until(a, second)  # a still gets them; b, sent in the same turn, got none:
        b.send(json.dumps({"type": "Ping"}))
        assert _recv(b)["type"] == "Pong"
        b.send(subscribe)
        assert _recv(b)["type"] == "Subscribed"
        third = optimize("hub-3")
        assert third in updates_until(b, third)
    with _connect(server) as c:  # a and b closed while subscribed; a new socket starts afresh
        c.send(subscribe)
        assert _recv(c)["type"] == "Subscribed"
        fourth = optimize("hub-4")
        assert updates_until(c, fourth)[-1] == fourth
