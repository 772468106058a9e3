# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Holding the offload deployment's schedule while a remediation acts, and what a hold left behind means.

K2 runs its offload every 15 minutes and nothing in K2 stops two offloads of one table running at once (two runs
read one watermark and append the same rows twice). A remediation repairs watermarks, runs a manual offload, kills
orphans, edits the flow file and restarts containers: none of that may overlap a scheduled run. So the holder of
the stack's lock pauses the deployment (Prefect 3's pause also deletes the runs it had already scheduled) for the
remediation and resumes it when it ends, on every exit path (release_stack_lock.yml).

The hold is a record beside the lock (`<lock>.schedule-hold`), written *before* the pause: a run that dies between
the two leaves a record of a schedule it never paused (harmless: resuming an active schedule changes nothing), never
a paused schedule without a record. A run that dies after the pause leaves both; the diagnosis names it (a root
cause: nothing offloads) and the next run that takes the lock adopts the hold and resumes it when it ends. A
schedule paused with no record was paused by a person: it is reported, never resumed.
"""
from __future__ import annotations

try:
    from ansible.module_utils.offload_lock import read_record, remove_record, write_record
except ImportError:  # unit tests import module_utils/ directly
    from offload_lock import read_record, remove_record, write_record

HOLD_SUFFIX = ".schedule-hold"

# What the holder does when it asks for the hold (`decide_hold`).
PAUSE = "pause"    # the schedule runs: record the hold, then pause it
KEEP = "keep"      # this run paused it already
ADOPT = "adopt"    # a run that is gone paused it: this run takes the hold over and resumes it when it ends
LEAVE = "leave"    # paused by a person (no record): not this run's to resume; nothing is scheduled meanwhile anyway

# What it does when it lets go (`decide_release`).
RESUME = "resume"
NOTHING = "nothing"


def hold_path(lock_path: str) -> str:
    return lock_path + HOLD_SUFFIX


def read_hold(lock_path: str) -> dict | None:
    """The hold record beside the lock, or None. A torn or foreign file counts as a hold of nobody: its schedule is
    resumed by whoever holds the lock next, which is what a record of ours would have asked for. LockError when it
    cannot be read."""
    return read_record(hold_path(lock_path))


def write_hold(lock_path: str, record: dict) -> None:
    """Atomically (the diagnosis reads it at any time), mode 0600."""
    write_record(hold_path(lock_path), record)


def remove_hold(lock_path: str) -> None:
    remove_record(hold_path(lock_path))


def decide_hold(paused: bool, hold: dict | None, token: str) -> str:
    """PAUSE, KEEP, ADOPT or LEAVE (see the constants) for the lock holder `token`."""
    if hold is not None:
        return KEEP if hold.get("token") == token else ADOPT
    return LEAVE if paused else PAUSE


def decide_release(hold: dict | None, token: str) -> str:
    """RESUME the schedule when this run holds it (paused or adopted it), else NOTHING."""
    return RESUME if hold is not None and hold.get("token") == token else NOTHING


def hold_facts(hold: dict | None, lock_holder: dict | None, lock_stale_reason: str | None) -> dict:
    """What the diagnosis records of the hold (never its token: it is the holder's credential): the record, whether
    its run still holds the lock alive, and the lock's state in words."""
    alive = bool(hold and lock_holder and not lock_stale_reason and lock_holder.get("token") == hold.get("token"))
    lock = ("free" if not lock_holder else f"stale: {lock_stale_reason}" if lock_stale_reason
            else f"held by run {lock_holder.get('run_id') or '?'}")
    return {"hold": {k: v for k, v in hold.items() if k != "token"} if hold else None, "owner_alive": alive,
            "lock": lock}


def left_paused(paused: bool | None, facts: dict) -> dict:
    """What the diagnosis says about the schedule (`facts` from hold_facts): {finding, observation}, a line or None.

    finding: paused under a hold whose run is gone - nothing offloads until it is resumed.
    observation: paused under the hold of a live remediation, or paused with no hold record (by a person).
    """
    if not paused:
        return {"finding": None, "observation": None}
    hold = facts.get("hold")
    if hold is None:
        return {"finding": None, "observation": "the offload deployment's schedule is paused, not by a remediation "
                                                "(no hold record): scheduled offloads do not run; left as it is"}
    run = hold.get("run_id") or "?"
    if facts.get("owner_alive"):
        return {"finding": None, "observation": f"the offload deployment's schedule is paused by remediation run {run}, "
                                                "still at work: it resumes the schedule when it ends"}
    return {"finding": f"the offload deployment's schedule was paused by remediation run {run} at "
                       f"{hold.get('paused_at') or '?'}, which is gone (lock {facts.get('lock') or '?'}): no scheduled "
                       "offload runs until it is resumed", "observation": None}
