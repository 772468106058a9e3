# -*- coding: utf-8 -*-
# PRIVATE to this project's modules: one remediation at a time per K2 stack.
#
# The lock is a small JSON file on the stack's Docker host, so every control node (CLI, AWX, the alert-driven
# loop) that remediates this stack sees the same lock, and it still works when PostgreSQL is the component that
# is down. Every read-decide-write happens under flock() on a guard file next to it: the kernel releases a flock
# when its holder dies, so the critical section can never be left locked, and two callers can never both see
# "free" or both break the same stale lock.
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import tempfile
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone

try:
    from ansible.module_utils.offload_common import parse_utc
except ImportError:  # unit tests import module_utils/ directly
    from offload_common import parse_utc

OUTCOME_ACQUIRED = "acquired"
OUTCOME_BROKEN = "acquired_after_break"   # a stale lock was broken (recorded), then acquired
OUTCOME_BUSY = "busy"                     # another remediation holds it: nothing may change
OUTCOME_RELEASED = "released"
OUTCOME_NOT_HELD = "not_held"             # release of a lock that is gone or belongs to someone else
OUTCOME_FREE = "free"                     # info: nobody holds it
OUTCOME_HELD = "held"                     # info: somebody holds it


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


def stale_reason(holder: dict, now: datetime, stale_after_seconds: float, hostname: str) -> str | None:
    """Why a held lock may be broken, or None while its holder may still be acting."""
    since = parse_utc(holder.get("since"))
    if since is None:
        return "the lock file carries no valid 'since' time"
    age = (now - since).total_seconds()
    if age > stale_after_seconds:
        return f"held for {age:.0f} s, longer than the escalation budget of {stale_after_seconds:.0f} s"
    if holder_gone(holder, hostname):
        return f"its holder (pid {holder.get('pid')} on {holder.get('control_node')}) no longer runs"
    return None


def describe(holder: dict) -> str:
    """'since <time>, by <who> (run <id>)' - the operator's view of a holder."""
    return (f"since {holder.get('since', '?')}, by {holder.get('who') or '?'} on {holder.get('control_node') or '?'}"
            f" (run {holder.get('run_id') or '?'})")


class StackLock:
    """The lock file at `path`, its guard `<path>.guard` and its break log `<path>.breaks.jsonl`."""

    def __init__(self, path: str, hostname: str | None = None) -> None:
        self.path = path
        self.guard_path = path + ".guard"
        self.break_log = path + ".breaks.jsonl"
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

    def read(self) -> dict | None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LockError(f"cannot read the lock file {self.path}: {exc.strerror}") from exc
        try:
            holder = json.loads(text)
        except ValueError:
            holder = None
        if not isinstance(holder, dict):
            # A torn or foreign file: treat it as a holder with no valid time, i.e. stale, so it gets recorded
            # and replaced rather than blocking every remediation forever.
            return {"corrupt": True, "content": text[:200]}
        return holder

    def _write(self, holder: dict) -> None:
        directory = os.path.dirname(self.path) or "."
        fd, tmp = tempfile.mkstemp(prefix=".lock-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(holder, handle, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)  # readers see the old or the new lock, never half of one
        except OSError as exc:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise LockError(f"cannot write the lock file {self.path}: {exc.strerror}") from exc

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
            holder = {**owner, "token": uuid.uuid4().hex, "since": iso(now), "lock_host": self.hostname}
            if owner.get("pid") and owner.get("control_node") == self.hostname:
                holder["pid_start"] = process_start_ticks(owner["pid"])
            if not check_mode:
                if broken:
                    self._record_break(broken)
                self._write(holder)
            return {"outcome": OUTCOME_BROKEN if broken else OUTCOME_ACQUIRED, "acquired": True,
                    "holder": holder, "broken": broken, "changed": True}

    def release(self, token: str, check_mode: bool = False) -> dict:
        """Remove the lock only if `token` holds it: a run never releases somebody else's lock."""
        with self.guarded(create_dir=False):
            current = self.read()
            if not current or current.get("token") != token:
                return {"outcome": OUTCOME_NOT_HELD, "released": False, "holder": current, "changed": False}
            if not check_mode:
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise LockError(f"cannot remove the lock file {self.path}: {exc.strerror}") from exc
            return {"outcome": OUTCOME_RELEASED, "released": True, "holder": current, "changed": True}

    def note_step(self, token: str, step: str, check_mode: bool = False, now: datetime | None = None) -> dict:
        """The holder records the step it is at (`step`, `step_since`); anyone else's call changes nothing."""
        now = now or utcnow()
        with self.guarded(create_dir=False):
            current = self.read()
            if not current or current.get("token") != token:
                return {"outcome": OUTCOME_NOT_HELD, "holder": current, "changed": False}
            holder = {**current, "step": step, "step_since": iso(now)}
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
