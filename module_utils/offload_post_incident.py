# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Post-incident verification, the runbook's "Verify recovery": the verdict from what was observed.

Four checks, each passed or failed with its evidence: the next N flow runs COMPLETED; every table's offload lag
under the threshold (from Prometheus where exported, else from the watermarks: a stock K2 often exports no
metrics); the alert resolved or stale; the truth check clean. A check that could not be made fails: blind is
never "recovered".
"""
from __future__ import annotations

from datetime import datetime

try:
    from ansible.module_utils.offload_common import parse_utc
except ImportError:  # unit tests import module_utils/ directly
    from offload_common import parse_utc

LAG_METRIC = "offload_lag_minutes"


class PostIncidentError(ValueError):
    """Bad input: one line naming what is wrong."""


def check_inputs(expected_runs, lag_threshold_minutes, tables) -> tuple[int, float, list[str]]:
    try:
        runs, threshold = int(expected_runs), float(lag_threshold_minutes)
    except (TypeError, ValueError):
        raise PostIncidentError(f"expected_runs and lag_threshold_minutes must be numbers, got {expected_runs!r} "
                                f"and {lag_threshold_minutes!r}.") from None
    if not 1 <= runs <= 20:
        raise PostIncidentError(f"expected_runs must be between 1 and 20, got {runs}.")
    if not 0 < threshold <= 1440:
        raise PostIncidentError(f"lag_threshold_minutes must be above 0 and at most 1440, got {threshold:g}.")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, str) and t for t in tables):
        raise PostIncidentError(f"tables must be a non-empty list of source table names, got {tables!r}.")
    return runs, threshold, tables


def runs_check(observed: list[dict], expected: int, timed_out: bool) -> dict:
    names = [f"{r.get('name')} {r.get('state_type')}" for r in observed]
    bad = [r for r in observed if r.get("state_type") != "COMPLETED"]
    if bad:
        run = bad[0]
        evidence = f"flow run {run.get('name')} ended {run.get('state_type')}: {run.get('message') or 'no message'}"
    elif len(observed) < expected:
        evidence = (f"only {len(observed)} of {expected} flow runs ended"
                    + (" before the wait timed out" if timed_out else " (check mode creates none)"))
    else:
        evidence = f"{expected} flow runs COMPLETED"
    return {"check": "flow_runs", "passed": not bad and len(observed) >= expected, "evidence": evidence,
            "runs": names}


def table_lags(tables: list[str], metrics: dict | None, watermarks: dict | None, now: datetime) -> dict:
    """Minutes of lag per table and where the figure came from (prometheus, watermark), None when unknown."""
    exported = {}
    for series in (metrics or {}).get(LAG_METRIC) or []:
        table, value = (series.get("labels") or {}).get("table"), series.get("value")
        if table and isinstance(value, (int, float)):
            exported[table] = float(value)
    lags = {}
    for table in tables:
        if table in exported:
            lags[table] = {"minutes": round(exported[table], 1), "source": "prometheus"}
            continue
        watermark = (watermarks or {}).get(table) or {}
        minutes = watermark.get("lag_minutes")  # offload_watermark measures it against the database's clock
        if not isinstance(minutes, (int, float)):
            stamp = parse_utc(watermark.get("timestamp"))
            minutes = (now - stamp).total_seconds() / 60 if stamp else None
        lags[table] = ({"minutes": round(minutes, 1), "source": "watermark"} if minutes is not None
                       else {"minutes": None, "source": None})
    return lags


def lag_check(lags: dict, threshold: float) -> dict:
    unknown = sorted(t for t, lag in lags.items() if lag["minutes"] is None)
    over = sorted(t for t, lag in lags.items() if lag["minutes"] is not None and lag["minutes"] > threshold)
    shown = ", ".join(f"{t} {lag['minutes']} min ({lag['source']})" for t, lag in sorted(lags.items())
                      if lag["minutes"] is not None)
    if unknown:
        evidence = f"lag unknown for {', '.join(unknown)} (no metric, no watermark)"
    elif over:
        evidence = f"lag above {threshold:g} min: {shown}"
    else:
        evidence = f"lag under {threshold:g} min: {shown}"
    return {"check": "lag", "passed": not unknown and not over, "evidence": evidence, "lags": lags}


def alert_check(alerts: dict | None, tables: list[str], runs_passed: bool, watermarks: dict | None) -> dict:
    """Resolved, or stale: still firing for a table whose runs since COMPLETED and whose watermark is not failing
    (the rule's 15-minute increase() window outlives the failures), as offload_rules calls a stale alert."""
    if not alerts or not alerts.get("reachable"):
        error = (alerts or {}).get("error") or "not read"
        return {"check": "alert", "passed": False, "evidence": f"alert state unknown: Prometheus {error}"}
    firing = sorted({t for a in alerts.get("alerts") or [] if a.get("state") == "firing"
                     for t in [(a.get("labels") or {}).get("table")] if t in tables})
    failing = sorted(t for t in firing if ((watermarks or {}).get(t) or {}).get("status") == "failed")
    if not firing:
        return {"check": "alert", "passed": True, "evidence": "alert resolved (not firing for these tables)"}
    if runs_passed and not failing:
        return {"check": "alert", "passed": True,
                "evidence": f"alert still firing for {', '.join(firing)} but stale: the runs since COMPLETED "
                            "(the rule's 15-minute window has not passed yet)"}
    return {"check": "alert", "passed": False, "evidence": f"alert firing for {', '.join(firing)}"
            + (f", watermark failing for {', '.join(failing)}" if failing else ", the runs since did not all COMPLETE")}


def truth_check(truth: dict | None) -> dict:
    if not truth or not truth.get("tables"):
        return {"check": "truth", "passed": False, "evidence": "truth check not made"}
    per_table = ", ".join(f"{t.get('table')} {t.get('missing')} missing / {t.get('duplicated')} duplicated"
                          for t in truth["tables"])
    return {"check": "truth", "passed": bool(truth.get("clean")), "evidence": f"truth check: {per_table}"}


def verdict(expected_runs: int, threshold: float, tables: list[str], observed: dict, alerts: dict | None,
            watermarks: dict | None, truth: dict | None, now: datetime) -> dict:
    runs = runs_check(observed.get("observed_runs") or [], expected_runs, bool(observed.get("timed_out")))
    lags = table_lags(tables, (alerts or {}).get("metrics"), watermarks, now)
    checks = [runs, lag_check(lags, threshold), alert_check(alerts, tables, runs["passed"], watermarks),
              truth_check(truth)]
    passed = all(c["passed"] for c in checks)
    lines = [f"POST-INCIDENT {'PASSED' if passed else 'FAILED'}: "
             + ", ".join(f"{c['check']} {'ok' if c['passed'] else 'FAILED'}" for c in checks)]
    lines += [f"{'ok' if c['passed'] else 'FAILED'}: {c['evidence']}" for c in checks]
    return {"passed": passed, "status": "passed" if passed else "failed", "checks": checks, "summary_lines": lines}
