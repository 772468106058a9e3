"""Whether a deployment is known to have no flow run in flight (offload_prefect_inspect.not_idle_because), and the
wait for it (wait_for_idle) with a fake inspection and clock: what cannot be read is never idle, and waiting stops at
once when waiting cannot help."""
from __future__ import annotations

import offload_prefect_inspect as inspect_mod
import pytest

DEPLOYMENT = "iceberg-offload-main/iceberg-offload-15min"


@pytest.mark.parametrize("exists, running, error, reason", [
    (True, [], None, None),
    (True, ["r1", "r2"], None, f"flow run(s) r1, r2 of {DEPLOYMENT} are in flight"),
    (True, None, "Cannot list the running flow runs: HTTP 500", "Cannot list the running flow runs: HTTP 500"),
    (True, None, None, f"the flow runs of {DEPLOYMENT} in flight could not be listed"),
    (False, [], None, f"deployment {DEPLOYMENT} was not found"),
    (False, None, "Cannot read deployment: HTTP 403", "Cannot read deployment: HTTP 403"),
])
def test_not_idle_because(exists, running, error, reason):
    assert inspect_mod.not_idle_because(DEPLOYMENT, exists, running, error) == reason


class Clock:
    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def reading(running=(), reachable=True):
    running = list(running)
    reason = None if not running and reachable else (
        f"flow run(s) {', '.join(running)} of {DEPLOYMENT} are in flight" if running else "unreachable")
    return {"reachable": reachable, "running_runs": running, "idle": reason is None, "not_idle_because": reason}


@pytest.fixture
def wait(monkeypatch):
    def run(readings, seconds):
        clock, calls = Clock(), iter(readings)
        monkeypatch.setattr(inspect_mod, "time", clock)
        monkeypatch.setattr(inspect_mod, "inspect", lambda reporter, flow, name: next(calls))
        return inspect_mod.wait_for_idle(None, "f", "d", seconds, poll=5.0), clock
    return run


def test_waits_until_the_run_in_flight_ends(wait):
    result, clock = wait([reading(["r1"]), reading(["r1"]), reading()], seconds=600)
    assert result["idle"] is True and result["not_idle_because"] is None
    assert clock.sleeps == [5.0, 5.0] and result["waited_seconds"] == 10.0


def test_a_run_still_in_flight_at_the_deadline_is_not_idle_and_says_how_long_it_waited(wait):
    result, clock = wait([reading(["r1"])] * 10, seconds=12)
    assert clock.sleeps == [5.0, 5.0, 2.0] and result["idle"] is False
    assert result["not_idle_because"] == f"flow run(s) r1 of {DEPLOYMENT} are in flight after 12 s"


def test_an_unreadable_api_is_not_waited_for(wait):
    result, clock = wait([reading(reachable=False)], seconds=600)
    assert clock.sleeps == [] and result["idle"] is False and result["not_idle_because"] == "unreachable"
