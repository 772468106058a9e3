# -*- coding: utf-8 -*-
# PRIVATE to this project's modules: one remediation at a time per K2 stack.
#
# The lock is a small JSON file on the stack's Docker host, so every control node (CLI, AWX, the alert-driven
# loop) that remediates this stack sees the same lock, and it still works when PostgreSQL is the component that
# is down. Every read-decide-write happens under flock() on a guard file next to it: the kernel releases a flock
# when its holder dies, so the critical section can never be left locked, and two callers can never both see
# "free" or both break the same stale lock.
#
# Liveness is a heartbeat, not an age: the holder renews `heartbeat` at every step and while it waits (the modules
# that wait long beat through Heartbeat), and a lock is stale only after no sign of life for a fixed interval.
# The new run's escalation budget plays no part: a 30-minute manual offload keeps its lock and its job.
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone

try:
    from ansible.module_utils.offload_common import parse_utc, replace_file
except ImportError:  # unit tests import module_utils/ directly
    from offload_common import parse_utc, replace_file

OUTCOME_ACQUIRED = "acquired"
OUTCOME_BROKEN = "acquired_after_break"   # a stale lock was broken (recorded), then acquired
OUTCOME_BUSY = "busy"                     # another remediation holds it: nothing may change
OUTCOME_RELEASED = "released"
OUTCOME_NOT_HELD = "not_held"             # release of a lock that is gone or belongs to someone else
OUTCOME_FREE = "free"                     # info: nobody holds it
OUTCOME_HELD = "held"                     # info: somebody holds it

# How the holder's run ended, as release() is told (remediate.yml's report status).
ENDED_ESCALATED = "escalated"
ENDED_RECOVERED = "recovered"
ENDED_HEALTHY = "healthy"


class LockError(Exception):
    """The lock file or its directory cannot be used (permission, not a directory, corrupt content)."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def process_start_ticks(pid) -> int | None:
    """Start time of a local process in clock ticks since boot (field 22 of /proc/<pid>/stat), None if gone.
    Recorded with the pid, so that a recycled pid is never taken for the holder."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except (OSError, ValueError, TypeError):
        return None
    try:
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


def holder_gone(holder: dict, hostname: str) -> bool:
    """True only when we can prove the holder's process is gone: it ran on this very host (the control node
    is the Docker host, as in the lab) and its pid no longer runs with the recorded start time. A holder on
    another control node (or in an AWX job pod) is never declared gone: its lock becomes stale by age only."""
    if holder.get("control_node") != hostname or not holder.get("pid") or holder.get("pid_start") is None:
        return False
    return process_start_ticks(holder["pid"]) != holder["pid_start"]


def last_sign_of_life(holder: dict) -> datetime | None:
    """The newest of the holder's acquire, step and heartbeat times; None when it has no valid one."""
    times = [parse_utc(holder.get(key)) for key in ("since", "step_since", "heartbeat")]
    return max((t for t in times if t is not None), default=None)


def stale_reason(holder: dict, now: datetime, stale_after_seconds: float, hostname: str) -> str | None:
    """Why a held lock may be broken, or None while its holder may still be acting."""
    alive = last_sign_of_life(holder)
    if alive is None:
        return "the lock file carries no valid 'since' time"
    silent = (now - alive).total_seconds()
    if silent > stale_after_seconds:
        return (f"no heartbeat from its holder for {silent:.0f} s, longer than the {stale_after_seconds:.0f} s "
                "after which a holder is taken for dead")
    if holder_gone(holder, hostname):
        return f"its holder (pid {holder.get('pid')} on {holder.get('control_node')}) no longer runs"
    return None


def describe(holder: dict) -> str:
    """'since <time>, by <who> (run <id>)' - the operator's view of a holder."""
    return (f"since {holder.get('since', '?')}, by {holder.get('who') or '?'} on {holder.get('control_node') or '?'}"
            f" (run {holder.get('run_id') or '?'})")


def read_record(path: str) -> dict | None:
    """The JSON object in `path` (the lock, or a record kept beside it), None when there is none; a torn or foreign
    file reads as {"corrupt": true, "content": <its start>}."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LockError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    return record if isinstance(record, dict) else {"corrupt": True, "content": text[:200]}


def write_record(path: str, record: dict) -> None:
    """Write `record` to `path` atomically (readers see the old or the new one, never half of one), mode 0600."""
    try:
        replace_file(path, json.dumps(record, sort_keys=True))
    except OSError as exc:
        raise LockError(f"cannot write {path}: {exc.strerror}") from exc


def remove_record(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise LockError(f"cannot remove {path}: {exc.strerror}") from exc


class StackLock:
    """The lock file at `path`, its guard `<path>.guard` and its break log `<path>.breaks.jsonl`."""

    def __init__(self, path: str, hostname: str | None = None) -> None:
        self.path = path
        self.guard_path = path + ".guard"
        self.break_log = path + ".breaks.jsonl"
        # The last escalation to people, kept after the lock is released (see release).
        self.escalation_path = path + ".escalation"
        self.hostname = hostname or socket.gethostname()

    @contextmanager
    def guarded(self, create_dir: bool):
        """Hold flock() on the guard file. Without create_dir (check mode, release, info) nothing is created:
        a stack that never had a lock has nothing to guard."""
        directory = os.path.dirname(self.path) or "."
        if create_dir and not os.path.isdir(directory):
            try:
                os.makedirs(directory, mode=0o700, exist_ok=True)
            except OSError as exc:
                raise LockError(f"cannot create the lock directory {directory}: {exc.strerror}") from exc
        try:
            fd = os.open(self.guard_path, os.O_RDWR | (os.O_CREAT if create_dir else 0), 0o600)
        except OSError as exc:
            if exc.errno == errno.ENOENT and not create_dir:
                yield
                return
            raise LockError(f"cannot open the lock guard {self.guard_path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    def read(self, path: str | None = None) -> dict | None:
        # A torn or foreign lock reads as a holder with no valid time, i.e. stale, so it gets recorded and replaced
        # rather than blocking every remediation forever.
        return read_record(path or self.path)

    def _write(self, holder: dict, path: str | None = None) -> None:
        write_record(path or self.path, holder)

    def _record_break(self, record: dict) -> None:
        try:
            fd = os.open(self.break_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, sort_keys=True) + "\n")
        except OSError as exc:
            raise LockError(f"cannot record the lock break in {self.break_log}: {exc.strerror}") from exc

    def acquire(self, owner: dict, stale_after_seconds: float, check_mode: bool = False,
                now: datetime | None = None) -> dict:
        """{outcome, acquired, holder, broken, changed}. Never waits: a busy lock is an answer, not a delay."""
        now = now or utcnow()
        with self.guarded(create_dir=not check_mode):
            current = self.read()
            broken = None
            if current is not None:
                reason = stale_reason(current, now, stale_after_seconds, self.hostname)
                if reason is None:
                    return {"outcome": OUTCOME_BUSY, "acquired": False, "holder": current, "broken": None,
                            "changed": False}
                broken = {"broken_at": iso(now), "reason": reason, "stale_holder": current,
                          "broken_by": {k: owner.get(k) for k in ("who", "control_node", "run_id")}}
            holder = {**owner, "token": uuid.uuid4().hex, "since": iso(now), "heartbeat": iso(now),
                      "lock_host": self.hostname}
            if owner.get("pid") and owner.get("control_node") == self.hostname:
                holder["pid_start"] = process_start_ticks(owner["pid"])
            if not check_mode:
                if broken:
                    self._record_break(broken)
                self._write(holder)
            return {"outcome": OUTCOME_BROKEN if broken else OUTCOME_ACQUIRED, "acquired": True,
                    "holder": holder, "broken": broken, "changed": True,
                    "escalation": self.read(self.escalation_path)}

    def release(self, token: str, check_mode: bool = False, ended: str | None = None,
                escalation: dict | None = None, alert_driven: bool = False, now: datetime | None = None) -> dict:
        """Remove the lock only if `token` holds it: a run never releases somebody else's lock. A run that `ended`
        ESCALATED leaves its `escalation` (rule, message) beside the lock, for the next runs to see that people have
        the stack. A run that RECOVERED it removes that record, and so does a person's run that found it HEALTHY
        (they fixed it); any other ending, or an alert's run finding it healthy (a stale alert), leaves it."""
        with self.guarded(create_dir=False):
            current = self.read()
            if not current or current.get("token") != token:
                return {"outcome": OUTCOME_NOT_HELD, "released": False, "holder": current, "changed": False}
            if not check_mode:
                if ended == ENDED_ESCALATED:
                    self._write({**(escalation or {}), "at": iso(now or utcnow()), "run_id": current.get("run_id"),
                                 "who": current.get("who")}, self.escalation_path)
                elif ended == ENDED_RECOVERED or (ended == ENDED_HEALTHY and not alert_driven):
                    remove_record(self.escalation_path)
                remove_record(self.path)
            return {"outcome": OUTCOME_RELEASED, "released": True, "holder": current, "changed": True}

    def note_step(self, token: str, step: str, check_mode: bool = False, now: datetime | None = None) -> dict:
        """The holder records the step it is at (`step`, `step_since`, a heartbeat too); anyone else's call changes
        nothing."""
        now = now or utcnow()
        return self._renew(token, {"step": step, "step_since": iso(now), "heartbeat": iso(now)}, check_mode)

    def beat(self, token: str, check_mode: bool = False, now: datetime | None = None) -> dict:
        """The holder's heartbeat: it is alive and still acting. Anyone else's call changes nothing."""
        return self._renew(token, {"heartbeat": iso(now or utcnow())}, check_mode)

    def _renew(self, token: str, fields: dict, check_mode: bool) -> dict:
        with self.guarded(create_dir=False):
            current = self.read()
            if not current or current.get("token") != token:
                return {"outcome": OUTCOME_NOT_HELD, "holder": current, "changed": False}
            holder = {**current, **fields}
            if not check_mode:
                self._write(holder)
            return {"outcome": OUTCOME_HELD, "holder": holder, "changed": True}

    def info(self, stale_after_seconds: float, now: datetime | None = None) -> dict:
        now = now or utcnow()
        with self.guarded(create_dir=False):
            current = self.read()
        if current is None:
            return {"outcome": OUTCOME_FREE, "holder": None, "stale_reason": None, "changed": False}
        return {"outcome": OUTCOME_HELD, "holder": current, "changed": False,
                "stale_reason": stale_reason(current, now, stale_after_seconds, self.hostname)}


def heartbeat_argument_spec() -> dict:
    """The options of a module that may wait long under the stack's lock: the lock and the holder's token, so
    the wait renews the holder's heartbeat (both unset: nothing is renewed, e.g. a diagnosis outside a run)."""
    return {"lock_path": {"type": "path"}, "lock_token": {"type": "str", "no_log": False}}


class Heartbeat:
    """Renews the lock's heartbeat from inside a long wait, at most every `interval` s (the first call always).
    A lock gone or taken by another run is noted (`lost`), never fatal: the wait's own work decides what to do."""

    INTERVAL_SECONDS = 30

    def __init__(self, path: str | None, token: str | None, check_mode: bool = False,
                 interval: float = INTERVAL_SECONDS, clock=time.monotonic) -> None:
        # In check mode the lock was only pretended: there is no holder to renew.
        self.lock = StackLock(path) if path and token and not check_mode else None
        self.token, self.interval, self.clock = token, interval, clock
        self.last, self.beats, self.lost = None, 0, None

    def __call__(self) -> None:
        if self.lock is None or self.lost:
            return
        now = self.clock()
        if self.last is not None and now - self.last < self.interval:
            return
        self.last = now
        try:
            result = self.lock.beat(self.token)
        except LockError as exc:
            self.lost = str(exc)
            return
        if result["outcome"] == OUTCOME_NOT_HELD:
            self.lost = f"the lock {self.lock.path} is no longer held by this run"
        else:
            self.beats += 1

    def summary(self) -> dict | None:
        """What the module returns about its heartbeat (None without a lock)."""
        return None if self.lock is None else {"beats": self.beats, "lost": self.lost}
