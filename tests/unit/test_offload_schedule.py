"""The schedule hold (module_utils/offload_schedule.py and library/offload_schedule.py through main() with a fake
Prefect API): only the lock's holder pauses, the record is written before the pause, a person's pause is never
resumed, a dead run's hold is adopted and resumed, and the diagnosis tells a live hold from a dead one."""
from __future__ import annotations

import os
import stat

import pytest
from module_harness import load_module, run_main
from offload_lock import LockError, StackLock
from offload_prefect_api import PrefectHTTPError, PrefectUnreachable

import offload_schedule as hold_logic

OWNER = {"who": "oncall@ops-1", "control_node": "ops-1", "run_id": "cli-1"}


# --- decisions ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("paused", "hold", "expected"), [
    (False, None, hold_logic.PAUSE),
    (True, None, hold_logic.LEAVE),                       # a person paused it: not ours
    (True, {"token": "me"}, hold_logic.KEEP),
    (False, {"token": "me"}, hold_logic.KEEP),            # resumed behind our back: still ours to end
    (True, {"token": "dead"}, hold_logic.ADOPT),
    (False, {"token": "dead"}, hold_logic.ADOPT),         # the dead run never got to pause: adopt, pause
    (True, {"corrupt": True}, hold_logic.ADOPT),          # a torn record is nobody's: adopted, resumed at the end
])
def test_decide_hold(paused, hold, expected):
    assert hold_logic.decide_hold(paused, hold, "me") == expected


def test_decide_release_resumes_only_its_own_hold():
    assert hold_logic.decide_release({"token": "me"}, "me") == hold_logic.RESUME
    assert hold_logic.decide_release({"token": "other"}, "me") == hold_logic.NOTHING
    assert hold_logic.decide_release(None, "me") == hold_logic.NOTHING


def test_hold_facts_never_carry_the_token_and_know_a_live_owner():
    hold = {"token": "t1", "run_id": "cli-1", "paused_at": "2026-12-07T20:00:00Z"}
    live = hold_logic.hold_facts(hold, {"token": "t1", "run_id": "cli-1"}, None)
    assert live == {"hold": {"run_id": "cli-1", "paused_at": "2026-12-07T20:00:00Z"}, "owner_alive": True,
                    "lock": "held by run cli-1"}
    assert hold_logic.hold_facts(hold, {"token": "t1"}, "no sign of life for 700 s")["owner_alive"] is False
    assert hold_logic.hold_facts(hold, {"token": "t2", "run_id": "awx-job-7"}, None) == {
        "hold": live["hold"], "owner_alive": False, "lock": "held by run awx-job-7"}
    assert hold_logic.hold_facts(hold, None, None)["lock"] == "free"
    assert hold_logic.hold_facts(None, {"token": "t1"}, None) == {"hold": None, "owner_alive": False,
                                                                 "lock": "held by run ?"}


def test_left_paused_is_a_finding_only_for_a_dead_runs_hold():
    dead = {"hold": {"run_id": "cli-1", "paused_at": "T"}, "owner_alive": False, "lock": "free"}
    assert hold_logic.left_paused(True, dead) == {
        "finding": "the offload deployment's schedule was paused by remediation run cli-1 at T, which is gone (lock "
                   "free): no scheduled offload runs until it is resumed", "observation": None}
    live = {**dead, "owner_alive": True}
    assert hold_logic.left_paused(True, live)["finding"] is None
    assert "still at work" in hold_logic.left_paused(True, live)["observation"]
    person = hold_logic.left_paused(True, {"hold": None})
    assert person["finding"] is None and "not by a remediation" in person["observation"]
    assert hold_logic.left_paused(False, dead) == {"finding": None, "observation": None}
    assert hold_logic.left_paused(None, dead) == {"finding": None, "observation": None}  # Prefect unread: unknown


def test_hold_record_round_trip_is_private_and_a_torn_one_is_nobodys(tmp_path):
    lock = str(tmp_path / "remediation.lock")
    assert hold_logic.read_hold(lock) is None
    hold_logic.write_hold(lock, {"token": "t1", "run_id": "cli-1"})
    assert hold_logic.read_hold(lock) == {"token": "t1", "run_id": "cli-1"}
    assert stat.S_IMODE(os.stat(hold_logic.hold_path(lock)).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["remediation.lock.schedule-hold"]  # no temp file left
    (tmp_path / "remediation.lock.schedule-hold").write_text("{torn")
    assert hold_logic.read_hold(lock)["corrupt"] is True
    hold_logic.remove_hold(lock)
    hold_logic.remove_hold(lock)  # gone already: nothing to do
    assert hold_logic.read_hold(lock) is None


def test_an_unwritable_hold_names_the_file(tmp_path):
    with pytest.raises(LockError, match="cannot write .*/missing/x.lock.schedule-hold"):
        hold_logic.write_hold(str(tmp_path / "missing" / "x.lock"), {})


# --- the module -----------------------------------------------------------------------------------------------------

class FakePrefect:
    def __init__(self, paused: bool, fail_on: str | None = None):
        self.deployment = {"id": "dep-1", "name": "iceberg-offload-15min", "paused": paused,
                           "schedules": [{"active": True, "schedule": {"cron": "*/15 * * * *"}}]}
        self.calls, self.fail_on = [], fail_on

    def get(self, path):
        assert path == "/deployments/name/iceberg-offload-main/iceberg-offload-15min", path
        return self.deployment

    def post(self, path, body):
        self.calls.append(path)
        if self.fail_on and path.endswith(self.fail_on):
            raise PrefectUnreachable(f"POST {path} got no answer: timed out")
        if path.endswith("/pause_deployment"):
            self.deployment["paused"] = True
        elif path.endswith("/resume_deployment"):
            self.deployment["paused"] = False
        else:
            raise PrefectHTTPError(404, "not found")
        return None


@pytest.fixture
def held(tmp_path, monkeypatch):
    """(module, lock path, token, make(paused, fail_on) -> fake)."""
    module = load_module("offload_schedule")
    path = str(tmp_path / "remediation.lock")
    token = StackLock(path).acquire(OWNER, 600)["holder"]["token"]

    def make(paused, fail_on=None):
        fake = FakePrefect(paused, fail_on)
        monkeypatch.setattr(module, "PrefectAPI", lambda *args, **kwargs: fake)
        return fake
    return module, path, token, make


def call(module, monkeypatch, state, path, token, **kwargs):
    return run_main(module, monkeypatch, {"state": state, "lock_path": path, "lock_token": token}, **kwargs)


def test_hold_then_release_pauses_and_resumes_once(held, monkeypatch):
    module, path, token, make = held
    fake = make(paused=False)
    first = call(module, monkeypatch, "held", path, token, diff=True)
    assert first["action"] == "pause" and first["changed"] and fake.deployment["paused"]
    assert first["diff"] == {"before": {"paused": False}, "after": {"paused": True}}
    assert hold_logic.read_hold(path)["token"] == token and hold_logic.read_hold(path)["run_id"] == "cli-1"
    again = call(module, monkeypatch, "held", path, token)
    assert again["action"] == "keep" and not again["changed"]
    released = call(module, monkeypatch, "released", path, token)
    assert released["action"] == "resume" and released["changed"] and not fake.deployment["paused"]
    assert hold_logic.read_hold(path) is None
    assert call(module, monkeypatch, "released", path, token)["action"] == "nothing"
    assert fake.calls == ["/deployments/dep-1/pause_deployment", "/deployments/dep-1/resume_deployment"]


def test_a_persons_pause_is_left_and_never_resumed(held, monkeypatch):
    module, path, token, make = held
    fake = make(paused=True)
    assert call(module, monkeypatch, "held", path, token)["action"] == "leave"
    assert call(module, monkeypatch, "released", path, token)["action"] == "nothing"
    assert fake.calls == [] and fake.deployment["paused"]


def test_a_dead_runs_hold_is_adopted_and_resumed_by_the_next_holder(held, monkeypatch):
    module, path, token, make = held
    fake = make(paused=True)
    hold_logic.write_hold(path, {"token": "dead-run", "run_id": "cli-99", "paused_at": "2026-12-07T19:00:00Z"})
    adopted = call(module, monkeypatch, "held", path, token)
    assert adopted["action"] == "adopt" and "cli-99" in adopted["msg"]
    assert hold_logic.read_hold(path)["token"] == token
    assert hold_logic.read_hold(path)["paused_at"] == "2026-12-07T19:00:00Z"  # since when nothing ran, kept
    assert call(module, monkeypatch, "released", path, token)["action"] == "resume"
    assert not fake.deployment["paused"] and fake.calls == ["/deployments/dep-1/resume_deployment"]


def test_only_the_lock_holder_may_hold_and_nothing_changes_otherwise(held, monkeypatch):
    module, path, _, make = held
    fake = make(paused=False)
    result = call(module, monkeypatch, "held", path, "not-the-holder")
    assert result["failed"] and "does not hold it; nothing was changed" in result["msg"]
    assert fake.calls == [] and hold_logic.read_hold(path) is None


def test_check_mode_pauses_nothing_and_writes_no_record(held, monkeypatch):
    module, path, token, make = held
    fake = make(paused=False)
    result = call(module, monkeypatch, "held", path, token, check_mode=True)
    assert result["action"] == "pause" and result["changed"]
    assert fake.calls == [] and hold_logic.read_hold(path) is None and not fake.deployment["paused"]


def test_a_pause_that_fails_leaves_no_record_and_says_so(held, monkeypatch):
    module, path, token, make = held
    make(paused=False, fail_on="/pause_deployment")
    result = call(module, monkeypatch, "held", path, token)
    assert result["failed"] and result["msg"].startswith("Cannot pause the schedule of ")
    assert hold_logic.read_hold(path) is None  # the schedule runs, and no record says otherwise


def test_a_resume_that_fails_keeps_the_record_for_the_next_run(held, monkeypatch):
    module, path, token, make = held
    make(paused=False, fail_on="/resume_deployment")
    call(module, monkeypatch, "held", path, token)
    result = call(module, monkeypatch, "released", path, token)
    assert result["failed"] and result["msg"].startswith("Cannot resume the schedule of ")
    assert hold_logic.read_hold(path)["token"] == token  # the diagnosis will name it, the next run resume it


def test_prefect_2_endpoints_are_used_when_3s_are_missing(held, monkeypatch):
    module, path, token, make = held
    fake = make(paused=False, fail_on=None)
    calls = []

    def post(path_, body):
        calls.append(path_)
        if path_.endswith("/pause_deployment"):
            raise PrefectHTTPError(404, "Not Found")
        return None
    monkeypatch.setattr(fake, "post", post)
    assert call(module, monkeypatch, "held", path, token)["action"] == "pause"
    assert calls == ["/deployments/dep-1/pause_deployment", "/deployments/dep-1/set_schedule_inactive"]
