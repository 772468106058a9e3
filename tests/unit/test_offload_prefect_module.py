"""offload_prefect's trigger and reap through main() with a fake Prefect API at the client boundary: a run is never
started beside one it could not see (the runs in flight unreadable is a failure, not "none"), a run in flight is
joined instead of a second one, and check mode creates nothing."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from module_harness import load_module, run_main
from offload_prefect_api import PrefectHTTPError, PrefectUnreachable, failure

DEPLOYMENT = {"id": "dep-1", "name": "iceberg-offload-15min", "paused": True}
COMPLETED = {"id": "run-1", "name": "brave-otter", "state_type": "COMPLETED", "state": {"type": "COMPLETED"}}


NOW = datetime(2026, 12, 7, 20, 0, tzinfo=timezone.utc)


class FakePrefect:
    """The calls offload_prefect makes of PrefectAPI; `in_flight` is what /flow_runs/filter answers for runs
    RUNNING/PENDING (an exception is raised), `scheduled` for runs SCHEDULED."""

    def __init__(self, in_flight, scheduled=(), subflows=()):
        self.in_flight, self.scheduled, self.created = in_flight, list(scheduled), []
        self.subflows, self.states = list(subflows), {}

    def now(self):
        return NOW

    def get(self, path):
        if path.startswith("/deployments/name/"):
            return DEPLOYMENT
        if path.startswith("/flow_runs/zombie"):
            return {"id": path.split("/")[2], "name": "old", "state_type": "RUNNING",
                    "start_time": "2026-11-26T11:00:00Z"}
        if path == "/flow_runs/run-1":
            return COMPLETED
        raise AssertionError(f"unexpected GET {path}")

    def post(self, path, body):
        if path.endswith("/set_state"):
            self.states[path.split("/")[2]] = body["state"]["type"]
            return {}
        if path == "/flow_runs/filter" and "parent_flow_run_id" in body["flow_runs"]:
            return self.subflows
        if path == "/flow_runs/filter" and body["flow_runs"]["state"]["type"]["any_"] == ["SCHEDULED"]:
            return self.scheduled
        if path == "/flow_runs/filter":
            if isinstance(self.in_flight, Exception):
                raise self.in_flight
            return self.in_flight
        if path == "/deployments/dep-1/create_flow_run":
            self.created.append(body)
            return COMPLETED
        raise AssertionError(f"unexpected POST {path}")


@pytest.fixture
def prefect_mod(monkeypatch):
    module = load_module("offload_prefect")

    def make(in_flight, scheduled=(), subflows=()):
        fake = FakePrefect(in_flight, scheduled, subflows)
        monkeypatch.setattr(module, "PrefectAPI", lambda *args, **kwargs: fake)
        return fake
    return module, make


def test_runs_in_flight_unreadable_fails_the_trigger_and_creates_nothing(prefect_mod, monkeypatch):
    module, make = prefect_mod
    fake = make(PrefectHTTPError(500, "HTTP 500 Internal Server Error"))
    result = run_main(module, monkeypatch, {"action": "trigger"})
    assert result["failed"] and fake.created == []
    assert result["msg"] == ("Cannot trigger a run of 'iceberg-offload-main/iceberg-offload-15min': "
                             "HTTP 500 Internal Server Error")


def test_runs_in_flight_unreadable_fails_the_reap(prefect_mod, monkeypatch):
    module, make = prefect_mod
    make(PrefectHTTPError(503, "HTTP 503 Service Unavailable"))
    result = run_main(module, monkeypatch, {"action": "reap", "crash_runs_started_before": "2026-11-26T12:00:00Z"})
    assert result["failed"] and result["msg"].startswith("Cannot reap the zombie runs of ")


def test_a_run_in_flight_is_joined_not_doubled(prefect_mod, monkeypatch):
    module, make = prefect_mod
    fake = make([{"id": "run-1"}])
    result = run_main(module, monkeypatch, {"action": "trigger"})
    assert fake.created == []
    assert (result["changed"], result["triggered"], result["flow_run"]["id"]) == (False, False, "run-1")
    assert result["flow_run"]["final"] is True


def test_a_run_created_but_not_yet_picked_up_is_joined_and_one_scheduled_for_later_is_not(prefect_mod, monkeypatch):
    """A run just created is SCHEDULED until a worker polls: a second one beside it doubles rows. The active
    15-minute schedule's next run, due later, is not in flight."""
    module, make = prefect_mod
    due = {"id": "run-1", "state_type": "SCHEDULED", "expected_start_time": "2026-12-07T19:59:59Z"}
    fake = make([], [due])
    result = run_main(module, monkeypatch, {"action": "trigger"})
    assert fake.created == [] and (result["triggered"], result["flow_run"]["id"]) == (False, "run-1")
    later = {"id": "run-2", "state_type": "SCHEDULED", "expected_start_time": "2026-12-07T20:15:00Z"}
    fake = make([], [later])
    result = run_main(module, monkeypatch, {"action": "trigger"})
    assert result["triggered"] is True and len(fake.created) == 1


def test_trigger_creates_one_run_and_check_mode_none(prefect_mod, monkeypatch):
    module, make = prefect_mod
    fake = make([])
    planned = run_main(module, monkeypatch, {"action": "trigger"}, check_mode=True)
    assert planned["changed"] is True and planned["triggered"] is False and fake.created == []
    result = run_main(module, monkeypatch, {"action": "trigger", "parameters": {"tables": ["t"]}})
    assert result["changed"] is True and result["triggered"] is True
    assert fake.created == [{"parameters": {"tables": ["t"]}}]


def test_a_failed_request_is_one_line_naming_the_api_and_what_went_wrong():
    base = "http://prefect:4200/api"
    assert failure(base, PrefectUnreachable("[Errno 111] Connection refused")) == \
        "Prefect API http://prefect:4200/api is unreachable: [Errno 111] Connection refused"
    assert failure(base, PrefectHTTPError(503, "Service Unavailable")) == \
        "Prefect API http://prefect:4200/api answered HTTP 503: Service Unavailable"


def test_reap_crashes_a_zombie_and_its_layer_subflows_and_check_mode_nothing(prefect_mod, monkeypatch):
    """K2's run has a subflow per layer: left RUNNING, it would show in Prefect for ever after its parent crashed."""
    module, make = prefect_mod
    subflow = {"id": "sub-1", "name": "offload-bronze-layer", "state_type": "RUNNING"}
    fake = make([{"id": "zombie-1"}], subflows=[subflow])
    args = {"action": "reap", "crash_runs_started_before": "2026-11-26T12:00:00Z"}
    planned = run_main(module, monkeypatch, args, check_mode=True)
    assert [r["id"] for r in planned["crashed_runs"]] == ["zombie-1", "sub-1"] and fake.states == {}
    result = run_main(module, monkeypatch, args)
    assert result["changed"] and fake.states == {"zombie-1": "CRASHED", "sub-1": "CRASHED"}
    assert result["live_runs"] == []
