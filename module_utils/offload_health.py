# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The runbook's daily health check (Prevention), decided from a diagnosis report (the same probes, no second
implementation) plus the warehouse's disk usage.

Each check is ok, warning (worth a look, nobody needs to get up) or failed (a human is needed); a check that could
not be made fails, since blind is never healthy. Status: healthy, warning or needs_human.
"""
from __future__ import annotations

import re

CONTAINER_ROLES = ("prefect_db", "prefect_server", "prefect_worker", "clickhouse", "spark")
FAILED_RUN_STATES = ("FAILED", "CRASHED")
# A watermark anomaly that is information rather than a problem: a configured table the offload never ran for.
INFORMATIONAL_ANOMALIES = ("initial_watermark",)


class HealthError(ValueError):
    """Bad input: one line naming what is wrong."""


def check_thresholds(recent_runs, lag_minutes, ttl_headroom_hours, disk_warning, disk_critical) -> dict:
    try:
        values = {"recent_runs": int(recent_runs), "lag_minutes": float(lag_minutes),
                  "ttl_headroom_hours": float(ttl_headroom_hours), "disk_warning": float(disk_warning),
                  "disk_critical": float(disk_critical)}
    except (TypeError, ValueError):
        raise HealthError("recent_runs, lag_threshold_minutes, ttl_headroom_hours and the disk thresholds must be "
                          "numbers.") from None
    if not 1 <= values["recent_runs"] <= 200:
        raise HealthError(f"recent_runs must be between 1 and 200, got {values['recent_runs']}.")
    if values["lag_minutes"] <= 0 or values["ttl_headroom_hours"] <= 0:
        raise HealthError("lag_threshold_minutes and ttl_headroom_hours must be above 0.")
    if not 0 < values["disk_warning"] <= values["disk_critical"] <= 1:
        raise HealthError(f"disk thresholds must satisfy 0 < warning <= critical <= 1, got {values['disk_warning']} "
                          f"and {values['disk_critical']}.")
    return values


def parse_df(stdout) -> dict | None:
    """`df -P -B1 <path>`: total and used bytes of the filesystem holding the path; None when not parseable."""
    lines = [line for line in str(stdout or "").splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    fields = lines[-1].split()
    if len(fields) < 6 or not all(re.fullmatch(r"\d+", f) for f in fields[1:4]):
        return None
    total, used, available = (int(f) for f in fields[1:4])
    size = used + available or total  # df's Use% is used / (used + available): reserved blocks are not usable
    return {"filesystem": fields[0], "mount": fields[5], "total_bytes": total, "used_bytes": used,
            "available_bytes": available, "used_fraction": round(used / size, 4) if size else None}


def _check(name: str, level: str, evidence: str, **extra) -> dict:
    return {"check": name, "level": level, "evidence": evidence, **extra}


def containers_check(facts: dict) -> dict:
    names = facts.get("container_names") or {}
    containers = facts.get("containers") or {}
    if not (facts.get("docker") or {}).get("reachable", True) or not containers:
        return _check("containers", "failed", "container state unknown: the Docker API did not answer")
    down = []
    for role in CONTAINER_ROLES:
        name = names.get(role, role)
        state = containers.get(name) or {}
        if not state.get("exists"):
            down.append(f"{name} absent")
        elif state.get("status") != "running":
            down.append(f"{name} {state.get('status')}" + (" (OOM-killed)" if state.get("oom_killed") else ""))
    if down:
        return _check("containers", "failed", "not running: " + ", ".join(down))
    return _check("containers", "ok", "running: " + ", ".join(names.get(r, r) for r in CONTAINER_ROLES))


def flow_runs_check(facts: dict, recent: int) -> dict:
    prefect = facts.get("prefect") or {}
    if not prefect.get("reachable"):
        return _check("flow_runs", "failed", f"flow runs unknown: {prefect.get('error') or 'Prefect did not answer'}")
    runs = (prefect.get("flow_runs") or [])[:recent]
    failed = [r for r in runs if r.get("state_type") in FAILED_RUN_STATES]
    if not runs:
        return _check("flow_runs", "warning", "no flow run of the deployment yet")
    if failed:
        shown = ", ".join(f"{r.get('name')} {r.get('state_type')}" for r in failed)
        level = "failed" if runs[0].get("state_type") in FAILED_RUN_STATES else "warning"
        return _check("flow_runs", level, f"{len(failed)} of the last {len(runs)} flow runs failed ({shown})"
                      + ("" if level == "failed" else "; the newest completed"))
    return _check("flow_runs", "ok", f"the last {len(runs)} flow runs did not fail")


def watermarks_check(facts: dict) -> dict:
    watermarks = facts.get("watermarks") or {}
    if watermarks.get("error") or not isinstance(watermarks.get("watermarks"), dict):
        return _check("watermarks", "failed", f"watermarks unknown: {watermarks.get('error') or 'not read'}")
    problems = [a for a in watermarks.get("anomalies") or [] if a.get("code") not in INFORMATIONAL_ANOMALIES]
    if problems:
        return _check("watermarks", "failed", "; ".join(f"{a.get('table')}: {a.get('code')}" for a in problems),
                      anomalies=problems)
    return _check("watermarks", "ok", "no watermark anomaly")


def offloaded_tables(facts: dict) -> dict:
    """Watermarks of the tables the offload has advanced (a 1970 seed says nothing about lag)."""
    rows = (facts.get("watermarks") or {}).get("watermarks") or {}
    return {t: w for t, w in rows.items() if isinstance(w, dict) and w.get("exists")
            and not set(w.get("anomalies") or []) & set(INFORMATIONAL_ANOMALIES)}


def lag_check(facts: dict, report: dict, lag_minutes: float, headroom_hours: float) -> dict:
    tables = offloaded_tables(facts)
    lags = {t: w.get("lag_minutes") for t, w in tables.items()}
    behind = sorted(t for t, lag in lags.items() if isinstance(lag, (int, float)) and lag > lag_minutes)
    headroom = report.get("ttl_headroom_seconds") or {}
    short = sorted(t for t, s in headroom.items() if isinstance(s, (int, float)) and s < headroom_hours * 3600)
    shown = ", ".join(f"{t} {lags[t]:.1f} min" for t in sorted(lags) if isinstance(lags[t], (int, float)))
    lags_out = {t: {"lag_minutes": lags.get(t), "ttl_headroom_seconds": headroom.get(t)} for t in sorted(tables)}
    if short:
        return _check("lag", "failed", f"TTL headroom under {headroom_hours:g} h for {', '.join(short)}: rows that "
                      "never reached Iceberg will be deleted", tables=lags_out)
    if not tables:
        return _check("lag", "warning", "no table has been offloaded yet", tables=lags_out)
    if behind:
        return _check("lag", "warning", f"lag above {lag_minutes:g} min: {shown}", tables=lags_out)
    return _check("lag", "ok", f"lag under {lag_minutes:g} min: {shown}", tables=lags_out)


def disk_check(disk: dict | None, warning: float, critical: float) -> dict:
    if not disk or disk.get("used_fraction") is None:
        return _check("warehouse_disk", "failed", "warehouse disk usage unknown (df in the Spark container failed)")
    used = disk["used_fraction"]
    level = "failed" if used >= critical else "warning" if used >= warning else "ok"
    return _check("warehouse_disk", level, f"warehouse filesystem {used:.0%} used "
                  f"({disk['available_bytes'] / 2**30:.1f} GiB free)", disk=disk)


def metrics_check(report: dict) -> dict:
    exported = report.get("prometheus_metrics_exported")
    if exported:
        return _check("metrics", "ok", "offload metrics are exported to Prometheus")
    return _check("metrics", "warning", "offload metrics are not exported (stock K2): the runbook's alert cannot fire;"
                  " see prometheus/k2-offload-early-warning.rules.yml")


def diagnosis_check(report: dict) -> dict:
    status = report.get("status")
    if report.get("blind"):
        probes = "; ".join(f"{b.get('component')} ({b.get('cause')})" if isinstance(b, dict) else str(b)
                           for b in report["blind"])
        return _check("diagnosis", "failed", f"blind - not answering: {probes}")
    scenarios = [s.get("scenario") for s in report.get("scenarios") or [] if isinstance(s, dict)]
    causes = report.get("root_causes") or []
    if scenarios or causes:
        named = ", ".join([f"root cause {c.get('component', c) if isinstance(c, dict) else c}" for c in causes]
                          + [f"scenario {s}" for s in scenarios])
        return _check("diagnosis", "failed", f"{named}: run playbooks/remediate.yml")
    return _check("diagnosis", "ok" if status == "healthy" else "warning", f"diagnosis {status}")


def assess(report: dict, disk: dict | None, thresholds: dict) -> dict:
    facts = report.get("facts") or {}
    checks = [diagnosis_check(report), containers_check(facts), flow_runs_check(facts, thresholds["recent_runs"]),
              watermarks_check(facts), lag_check(facts, report, thresholds["lag_minutes"],
                                                 thresholds["ttl_headroom_hours"]),
              disk_check(disk, thresholds["disk_warning"], thresholds["disk_critical"]), metrics_check(report)]
    levels = {c["level"] for c in checks}
    status = "needs_human" if "failed" in levels else "warning" if "warning" in levels else "healthy"
    lines = [f"HEALTH {status.upper()}: " + ", ".join(f"{c['check']} {c['level']}" for c in checks)]
    lines += [f"{c['level']}: {c['check']} - {c['evidence']}" for c in checks if c["level"] != "ok"]
    return {"status": status, "needs_human": status == "needs_human", "checks": checks, "summary_lines": lines}
