"""Control API: bulk apply is idempotent and all-or-nothing; clear, reset, counters."""

from __future__ import annotations

import asyncio
import csv
import json
import time

import pytest

from analysis.shards import ShardWriter
from chaosproxy.addons import ControlApi, Providers, Scheduler
from chaosproxy.addons.control import HttpError
from chaosproxy.schedule import Timeline

PORTS = {18001: "A", 18002: "B"}


@pytest.fixture
def api(tmp_path):
    events = ShardWriter(tmp_path / "fault_events.P0.csv", "fault_events")
    scheduler = Scheduler(Timeline([]), Providers(PORTS), events)
    yield ControlApi(scheduler, 18000)
    events.close()


def post(api, path, doc):
    return api.handle("POST", path, json.dumps(doc).encode())[1]


F1 = {"fault_id": "e1", "provider": "A", "kind": "http_error", "start_s": 5, "duration_s": 5}
F2 = {
    "fault_id": "l1",
    "provider": "B",
    "kind": "latency",
    "start_s": 0,
    "duration_s": 9,
    "params": {"ms": 20},
    "match": {"probability": 0.5, "per": "connection"},
}


def test_bulk_apply_adds_then_is_a_no_op_when_repeated(api):
    assert post(api, "/faults", [F1, F2]) == {"added": ["e1", "l1"], "unchanged": []}
    assert post(api, "/faults", [F1, F2]) == {"added": [], "unchanged": ["e1", "l1"]}
    listed = api.handle("GET", "/faults", b"")[1]
    assert [(d["fault_id"], d["state"]) for d in listed] == [("e1", "pending"), ("l1", "pending")]
    assert listed[1]["match"] == {"probability": 0.5, "per": "connection"}


def test_a_single_object_is_applied_too(api):
    assert post(api, "/faults", F1) == {"added": ["e1"], "unchanged": []}


def test_bulk_apply_is_all_or_nothing(api):
    post(api, "/faults", [F1])
    changed = {**F1, "kind": "reset"}
    with pytest.raises(HttpError) as info:
        post(api, "/faults", [F2, changed])
    assert info.value.status == 409 and "'e1' is already applied" in str(info.value)
    with pytest.raises(HttpError) as info:
        post(api, "/faults", [F2, {**F1, "fault_id": "x", "duration_s": -1}])
    assert info.value.status == 400 and "faults[1].duration_s must be > 0" in str(info.value)
    assert [d["fault_id"] for d in api.handle("GET", "/faults", b"")[1]] == ["e1"]


def test_apply_without_start_s_means_now(api):
    async def scenario():
        api.scheduler.start(1)  # t0 long ago: now is far past it
        post(api, "/faults", {k: v for k, v in F1.items() if k != "start_s"})
        await asyncio.sleep(0.05)
        state = api.handle("GET", "/faults", b"")[1][0]["state"]
        await api.scheduler.done()
        return state

    assert asyncio.run(scenario()) == "active"


def test_clear_and_delete_end_active_faults_and_unknown_ids_are_named(api, tmp_path):
    async def scenario():
        api.scheduler.start(time.time_ns())
        post(api, "/faults", [{**F1, "start_s": 0, "duration_s": 1e9}, {**F2, "duration_s": 1e9}])
        await asyncio.sleep(0.05)
        assert api.handle("DELETE", "/faults/e1", b"")[1] == {"ended": ["e1"]}
        with pytest.raises(HttpError) as info:
            api.handle("DELETE", "/faults/e1", b"")
        assert info.value.status == 404 and "unknown fault_id 'e1'" in str(info.value)
        with pytest.raises(HttpError) as info:
            post(api, "/clear", {"fault_ids": ["nope"]})
        assert info.value.status == 400
        assert post(api, "/clear", {}) == {"ended": ["l1"]}
        await api.scheduler.done()

    asyncio.run(scenario())
    api.scheduler.events.close()
    with open(tmp_path / "fault_events.P0.csv") as f:
        rows = [(r["fault_id"], r["event"]) for r in csv.DictReader(f)]
    assert rows == [("e1", "start"), ("l1", "start"), ("e1", "end"), ("l1", "end")]


def test_counters_count_exchanges_and_applications_and_reset_zeroes_them(api):
    post(api, "/faults", [F1])
    api.scheduler.exchanges = 12
    api.scheduler.timeline.faults[0].applied = 3
    assert api.handle("GET", "/counters", b"")[1] == {
        "exchanges": 12,
        "in_flight": 0,
        "applied": {"e1": 3},
    }
    post(api, "/reset", {})
    counters = api.handle("GET", "/counters", b"")[1]
    assert counters["exchanges"] == 0 and counters["applied"] == {"e1": 0}
    assert api.handle("GET", "/faults", b"")[1][0]["state"] == "cancelled"


@pytest.mark.parametrize(
    ("method", "path", "status", "text"),
    [
        ("PUT", "/faults", 405, "/faults takes GET or POST, got PUT"),
        ("GET", "/faults/x", 405, "/faults/<id> takes DELETE"),
        ("GET", "/clear", 405, "/clear takes POST"),
    ],
)
def test_wrong_methods_are_refused(api, method, path, status, text):
    with pytest.raises(HttpError) as info:
        api.handle(method, path, b"")
    assert info.value.status == status and text in str(info.value)
