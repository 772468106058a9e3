"""The stack's remediation lock (module_utils/offload_lock.py) on real files, real flock() and real processes:
exactly one holder, busy is an answer, stale locks are broken and recorded, nobody releases another's lock."""
from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import offload_lock
import pytest
from offload_lock import StackLock

NOW = datetime(2026, 11, 29, 3, 0, tzinfo=timezone.utc)
OWNER = {"who": "oncall@ops-1", "control_node": "ops-1", "run_id": "cli-1", "pid": 1}


def lock_at(tmp_path, hostname="docker-host") -> StackLock:
    return StackLock(str(tmp_path / "state" / "remediation.lock"), hostname=hostname)


def test_acquire_creates_the_lock_with_its_owner_and_a_second_acquire_is_busy(tmp_path):
    lock = lock_at(tmp_path)
    first = lock.acquire(OWNER, 1800, now=NOW)
    assert first["outcome"] == "acquired" and first["acquired"] and first["changed"]
    on_disk = json.loads((tmp_path / "state" / "remediation.lock").read_text())
    assert on_disk["who"] == "oncall@ops-1" and on_disk["run_id"] == "cli-1"
    assert on_disk["since"] == "2026-11-29T03:00:00Z" and on_disk["token"] == first["holder"]["token"]
    assert oct((tmp_path / "state").stat().st_mode & 0o777) == "0o700"

    second = lock.acquire({**OWNER, "run_id": "cli-2"}, 1800, now=NOW + timedelta(seconds=5))
    assert second["outcome"] == "busy" and not second["acquired"] and not second["changed"]
    assert second["holder"]["run_id"] == "cli-1"
    assert json.loads((tmp_path / "state" / "remediation.lock").read_text())["run_id"] == "cli-1"  # untouched


def test_release_needs_the_holders_token(tmp_path):
    lock = lock_at(tmp_path)
    token = lock.acquire(OWNER, 1800, now=NOW)["holder"]["token"]
    assert lock.release("not-the-token")["outcome"] == "not_held"
    assert (tmp_path / "state" / "remediation.lock").exists()
    assert lock.release(token)["outcome"] == "released"
    assert not (tmp_path / "state" / "remediation.lock").exists()
    again = lock.release(token)
    assert again["outcome"] == "not_held" and not again["changed"]


def test_an_escalation_stays_beside_the_lock_until_a_recovery(tmp_path):
    lock = lock_at(tmp_path)
    marker = tmp_path / "state" / "remediation.lock.escalation"
    first = lock.acquire(OWNER, 1800, now=NOW)
    assert first["escalation"] is None
    token = first["holder"]["token"]
    lock.release(token, ended="escalated", escalation={"rule": "root cause is unclear", "message": "ESCALATE (...)"},
                 now=NOW)
    assert json.loads(marker.read_text()) == {"rule": "root cause is unclear", "message": "ESCALATE (...)",
                                              "at": "2026-11-29T03:00:00Z", "run_id": "cli-1", "who": OWNER["who"]}
    assert oct(marker.stat().st_mode & 0o777) == "0o600"
    for ended in (None, "in_progress", "check"):  # nothing a person must know of has changed
        held = lock.acquire(OWNER, 1800, now=NOW)
        assert held["escalation"]["rule"] == "root cause is unclear"
        lock.release(held["holder"]["token"], ended=ended)
    held = lock.acquire(OWNER, 1800, now=NOW)
    lock.release(held["holder"]["token"], ended="healthy", alert_driven=True)  # a stale alert's run
    assert marker.exists()
    held = lock.acquire(OWNER, 1800, now=NOW)
    lock.release(held["holder"]["token"], ended="healthy")  # a person's run: they fixed it
    assert not marker.exists()
    lock.release(lock.acquire(OWNER, 1800, now=NOW)["holder"]["token"], ended="escalated", escalation={})
    held = lock.acquire(OWNER, 1800, now=NOW)
    lock.release(held["holder"]["token"], ended="recovered", alert_driven=True)
    assert not marker.exists() and lock.acquire(OWNER, 1800, now=NOW)["escalation"] is None


def test_a_release_by_another_run_leaves_the_escalation_record_alone(tmp_path):
    lock = lock_at(tmp_path)
    lock.acquire(OWNER, 1800, now=NOW)
    assert lock.release("not-the-token", ended="escalated", escalation={"rule": "x"})["outcome"] == "not_held"
    assert not (tmp_path / "state" / "remediation.lock.escalation").exists()


def test_a_lock_silent_for_longer_than_the_interval_is_broken_and_the_break_recorded(tmp_path):
    lock = lock_at(tmp_path)
    lock.acquire(OWNER, 600, now=NOW)
    not_yet = lock.acquire({**OWNER, "run_id": "cli-2"}, 600, now=NOW + timedelta(seconds=599))
    assert not_yet["outcome"] == "busy"
    later = lock.acquire({**OWNER, "run_id": "cli-3"}, 600, now=NOW + timedelta(seconds=601))
    assert later["outcome"] == "acquired_after_break" and later["acquired"]
    assert later["broken"]["stale_holder"]["run_id"] == "cli-1"
    assert "no heartbeat from its holder for 601 s, longer than the 600 s" in later["broken"]["reason"]
    records = [json.loads(line) for line in (tmp_path / "state" / "remediation.lock.breaks.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["broken_by"]["run_id"] == "cli-3"
    assert records[0]["stale_holder"]["run_id"] == "cli-1"


def test_a_holder_on_this_host_whose_process_is_gone_is_stale_at_once(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = lock_at(tmp_path, hostname="ops-1")
    lock.acquire({**OWNER, "pid": os.getpid()}, 1800, now=NOW)  # alive: this test process
    assert lock.acquire({**OWNER, "run_id": "cli-2"}, 1800, now=NOW)["outcome"] == "busy"

    (tmp_path / "state" / "remediation.lock").write_text(json.dumps(
        {**OWNER, "pid": dead.pid, "pid_start": 12345, "since": "2026-11-29T03:00:00Z", "token": "t"}))
    result = lock.acquire({**OWNER, "run_id": "cli-3"}, 1800, now=NOW)
    assert result["outcome"] == "acquired_after_break"
    assert f"pid {dead.pid} on ops-1" in result["broken"]["reason"] and "no longer runs" in result["broken"]["reason"]


def test_a_recycled_pid_does_not_keep_a_dead_holders_lock(tmp_path):
    lock = lock_at(tmp_path, hostname="ops-1")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "remediation.lock").write_text(json.dumps(
        {**OWNER, "pid": os.getpid(), "pid_start": -1, "since": "2026-11-29T03:00:00Z", "token": "t"}))
    assert lock.acquire(OWNER, 1800, now=NOW)["outcome"] == "acquired_after_break"


def test_a_holder_on_another_control_node_is_only_stale_by_age(tmp_path):
    lock = lock_at(tmp_path, hostname="docker-host")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "remediation.lock").write_text(json.dumps(
        {**OWNER, "control_node": "awx-job-pod", "pid": 999999, "pid_start": 1, "since": "2026-11-29T03:00:00Z",
         "token": "t"}))
    assert lock.acquire(OWNER, 1800, now=NOW + timedelta(seconds=60))["outcome"] == "busy"


def test_a_corrupt_lock_file_is_broken_not_obeyed_forever(tmp_path):
    lock = lock_at(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "remediation.lock").write_text("{torn")
    result = lock.acquire(OWNER, 1800, now=NOW)
    assert result["outcome"] == "acquired_after_break"
    assert "no valid 'since'" in result["broken"]["reason"]


def test_check_mode_decides_but_writes_nothing(tmp_path):
    lock = lock_at(tmp_path)
    result = lock.acquire(OWNER, 1800, check_mode=True, now=NOW)
    assert result["outcome"] == "acquired"
    assert not (tmp_path / "state").exists()
    token = lock.acquire(OWNER, 1800, now=NOW)["holder"]["token"]
    assert lock.release(token, check_mode=True)["outcome"] == "released"
    assert (tmp_path / "state" / "remediation.lock").exists()


def test_info_reports_free_held_and_stale(tmp_path):
    lock = lock_at(tmp_path)
    assert lock.info(1800, now=NOW)["outcome"] == "free"
    lock.acquire(OWNER, 1800, now=NOW)
    held = lock.info(1800, now=NOW + timedelta(seconds=10))
    assert held["outcome"] == "held" and held["stale_reason"] is None
    assert "no heartbeat from its holder for 3600 s" in lock.info(1800, now=NOW + timedelta(hours=1))["stale_reason"]


def test_an_unusable_lock_directory_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    lock = StackLock(str(tmp_path / "file" / "remediation.lock"))
    with pytest.raises(offload_lock.LockError, match="cannot create the lock directory .*file"):
        lock.acquire(OWNER, 1800)


def _contend(path: str, run_id: str, start, results) -> None:
    start.wait()
    results.put(StackLock(path).acquire({**OWNER, "run_id": run_id}, 1800)["outcome"])


def _race(path, contenders: int) -> list[str]:
    """`contenders` processes released at once, each acquiring the lock: their outcomes, sorted."""
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(str(path), f"cli-{i}", start, results)) for i in range(contenders)]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(30)
    return sorted(results.get(timeout=5) for _ in procs)


@pytest.mark.parametrize("contenders", [2, 3, 8])
def test_simultaneous_acquires_from_separate_processes_yield_exactly_one_holder(tmp_path, contenders):
    outcomes = _race(tmp_path / "state" / "remediation.lock", contenders)
    assert outcomes == ["acquired"] + ["busy"] * (contenders - 1)


def test_simultaneous_breakers_of_one_stale_lock_yield_exactly_one_holder_and_one_break(tmp_path):
    path = tmp_path / "state" / "remediation.lock"
    path.parent.mkdir()
    path.write_text(json.dumps({**OWNER, "since": "2000-01-01T00:00:00Z", "token": "old"}))
    outcomes = _race(path, 4)
    assert outcomes == ["acquired_after_break", "busy", "busy", "busy"]
    assert len((tmp_path / "state" / "remediation.lock.breaks.jsonl").read_text().splitlines()) == 1


def test_the_holder_records_its_step_and_nobody_else_can(tmp_path):
    lock = lock_at(tmp_path)
    token = lock.acquire(OWNER, 1800, now=NOW)["holder"]["token"]
    assert lock.note_step("someone-else", "Scenario 2")["outcome"] == "not_held"
    noted = lock.note_step(token, "Scenario 2, ClickHouse", now=NOW + timedelta(seconds=3))
    assert noted["changed"] and noted["holder"]["step_since"] == "2026-11-29T03:00:03Z"
    on_disk = json.loads((tmp_path / "state" / "remediation.lock").read_text())
    assert on_disk["step"] == "Scenario 2, ClickHouse" and on_disk["token"] == token
    assert on_disk["since"] == "2026-11-29T03:00:00Z"
    busy = lock.acquire({**OWNER, "run_id": "cli-2"}, 1800, now=NOW + timedelta(seconds=5))
    assert busy["outcome"] == "busy" and busy["holder"]["step"] == "Scenario 2, ClickHouse"


def test_a_live_holder_keeps_its_lock_for_as_long_as_it_beats_whatever_the_next_runs_budget(tmp_path):
    """A 30-minute manual offload: steps and heartbeats keep the lock; only silence past the interval breaks it."""
    lock = lock_at(tmp_path)
    token = lock.acquire(OWNER, 600, now=NOW)["holder"]["token"]
    lock.note_step(token, "Scenario 5 - Timeouts", now=NOW + timedelta(seconds=60))
    for minute in range(2, 32):
        assert lock.beat(token, now=NOW + timedelta(minutes=minute))["outcome"] == "held"
    for budget_like in (60, 600, 1800):  # the interval is the lock's, never the new run's budget
        late = lock.acquire({**OWNER, "run_id": "cli-2"}, budget_like, now=NOW + timedelta(minutes=31, seconds=50))
        assert late["outcome"] == "busy" and late["holder"]["token"] == token
    assert lock.beat("not-the-token", now=NOW + timedelta(minutes=32))["outcome"] == "not_held"
    on_disk = json.loads((tmp_path / "state" / "remediation.lock").read_text())
    assert on_disk["heartbeat"] == "2026-11-29T03:31:00Z" and on_disk["step"] == "Scenario 5 - Timeouts"
    silent = lock.acquire({**OWNER, "run_id": "cli-3"}, 600, now=NOW + timedelta(minutes=41, seconds=1))
    assert silent["outcome"] == "acquired_after_break" and "for 601 s" in silent["broken"]["reason"]


class Ticks:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_heartbeat_of_a_long_wait_renews_at_most_every_interval_and_notes_a_lost_lock(tmp_path):
    lock = lock_at(tmp_path)
    token = lock.acquire(OWNER, 600, now=NOW)["holder"]["token"]
    clock = Ticks()
    beat = offload_lock.Heartbeat(lock.path, token, interval=30, clock=clock)
    for second in range(0, 95, 5):
        clock.now = second
        beat()
    assert beat.summary() == {"beats": 4, "lost": None}  # at 0, 30, 60 and 90 s
    assert json.loads((tmp_path / "state" / "remediation.lock").read_text())["heartbeat"] > "2026-11-29T03:00:00Z"

    lock.release(token)
    clock.now = 200
    beat()
    assert beat.summary() == {"beats": 4, "lost": f"the lock {lock.path} is no longer held by this run"}
    assert not (tmp_path / "state" / "remediation.lock").exists()  # a lost lock is never re-created


@pytest.mark.parametrize("path, token, check_mode", [(None, "t", False), ("lock", None, False), ("lock", "t", True)])
def test_without_a_lock_and_token_or_in_check_mode_nothing_is_renewed(tmp_path, path, token, check_mode):
    beat = offload_lock.Heartbeat(path and str(tmp_path / path), token, check_mode)
    beat()
    assert beat.summary() is None and not (tmp_path / "lock").exists()


def test_a_step_is_a_sign_of_life_and_silence_exactly_at_the_interval_is_not_yet_stale(tmp_path):
    """A lock written before heartbeats existed carries `step_since` only; the interval itself is still alive."""
    lock = lock_at(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "remediation.lock").write_text(json.dumps(
        {**OWNER, "since": "2026-11-29T02:00:00Z", "step_since": "2026-11-29T02:55:00Z", "token": "old"}))
    assert lock.acquire({**OWNER, "run_id": "cli-2"}, 600, now=NOW)["outcome"] == "busy"  # stepped 300 s ago
    assert lock.acquire({**OWNER, "run_id": "cli-2"}, 300, now=NOW)["outcome"] == "busy"  # exactly the interval
    broken = lock.acquire({**OWNER, "run_id": "cli-3"}, 299, now=NOW)
    assert broken["outcome"] == "acquired_after_break" and "for 300 s, longer than the 299 s" in broken["broken"]["reason"]


def test_a_lock_that_cannot_be_read_is_noted_by_the_heartbeat_not_raised(tmp_path):
    (tmp_path / "remediation.lock").mkdir()  # a directory where the lock file should be
    beat = offload_lock.Heartbeat(str(tmp_path / "remediation.lock"), "t")
    beat()
    assert beat.summary()["beats"] == 0 and beat.summary()["lost"].startswith(
        f"cannot read {tmp_path / 'remediation.lock'}")
