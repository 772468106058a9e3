# -*- coding: utf-8 -*-
# PRIVATE to this project's modules (library/offload_capacity_info): the pure logic of the runbook's "Prevention -
# capacity planning" - hourly row series, the "sustained" volume rule, the offload-duration trend (least squares)
# against the task timeout, the memory rule, and the recommendations with the numbers behind them. No I/O, so that
# every rule is unit-tested alone. Imported as ansible.module_utils.offload_capacity.
#
# The rules (runbook "Capacity planning", thresholds from the inventory):
# - parallel offload: more than normal_rows_per_hour rows in each of at least sustained_hours CONSECUTIVE hourly
#   buckets ("sustained"). A one-hour spike is Scenario 5's business (a manual offload), not a capacity change.
# - Spark resources: the Spark container's memory above memory_fraction of its limit (strictly above, as the
#   runbook's "> 80 %"), as `docker stats` counts it (reclaimable page cache excluded).
# - timeout or parallelise: the least-squares line through the hourly medians of successful offload durations
#   reaches timeout_fraction of the task timeout now, or within the projection horizon. The line is never projected
#   further ahead than the history it was fitted on (a trend seen over 6 hours is not extrapolated a week).
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

try:
    from ansible.module_utils.offload_clickhouse_logic import qualified_table, quote_identifier
    from ansible.module_utils.offload_common import parse_utc
    from ansible.module_utils.offload_prefect_logic import OFFLOAD_FAILED, OFFLOAD_TIMEOUT, valid_table
except ImportError:  # unit tests import module_utils/ directly
    from offload_clickhouse_logic import qualified_table, quote_identifier
    from offload_prefect_logic import OFFLOAD_FAILED, OFFLOAD_TIMEOUT, valid_table

    from offload_common import parse_utc

HOUR_MS = 3_600_000
RULE_PARALLEL = "parallel_offload"
RULE_SPARK = "spark_resources"
RULE_TIMEOUT = "timeout_or_parallelise"
RULE_ORDER = (RULE_PARALLEL, RULE_TIMEOUT, RULE_SPARK)

STATUS_OK = "ok"
STATUS_RECOMMENDATIONS = "recommendations"
STATUS_INCOMPLETE = "incomplete"

# K2's success lines of the task offload-table: "✓ Offload completed: <table>" then "  Duration: 12.3s".
OFFLOAD_COMPLETED = re.compile(r"✓\s*Offload completed:\s*(\S+)")
DURATION = re.compile(r"^\s*Duration:\s*([0-9]+(?:\.[0-9]+)?)\s*(?:s|sec|secs|seconds)?\s*$", re.I)


@dataclass(frozen=True)
class Thresholds:
    normal_rows_per_hour: int = 5_000_000
    sustained_hours: int = 3
    memory_fraction: float = 0.8
    task_timeout_seconds: float = 600
    timeout_fraction: float = 0.8
    trend_horizon_hours: float = 7 * 24
    trend_min_points: int = 6

    @property
    def warn_seconds(self) -> float:
        return self.task_timeout_seconds * self.timeout_fraction


# --- time helpers -------------------------------------------------------------------------------------------

def iso_ms(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc).isoformat()


def to_ms(moment: datetime) -> int:
    return int(round(moment.timestamp() * 1000))


def hours_ago(at: datetime, now: datetime) -> int:
    """The now-aligned hourly bucket of `at`: 0 = the last 60 minutes (the runbook's "rows in the last hour"), 1 the
    hour before, ...; a moment after `now` (clock skew) counts in bucket 0."""
    return max(0, (to_ms(now) - to_ms(at)) // HOUR_MS)


# --- rows per hour (ClickHouse) -----------------------------------------------------------------------------

def hourly_rows_sql(database: str, table: str, timestamp_col: str) -> str:
    """Rows per now-aligned hour of one table over the window: parameters t0_ms (the server's now, epoch ms) and
    since_ms (t0_ms - hours). Plain aggregate on the timestamp column; names are checked identifiers, values bound."""
    col = quote_identifier(timestamp_col)
    return (f"SELECT intDiv({{t0_ms:Int64}} - toUnixTimestamp64Milli(toDateTime64({col}, 3, 'UTC')), {HOUR_MS}) "
            f"AS hours_ago, count() AS rows FROM {qualified_table(database, table)} "
            f"WHERE {col} > fromUnixTimestamp64Milli({{since_ms:Int64}}, 'UTC') "
            f"AND {col} <= fromUnixTimestamp64Milli({{t0_ms:Int64}}, 'UTC') GROUP BY hours_ago ORDER BY hours_ago")


def hourly_series(rows, t0_ms: int, hours: int) -> list[dict]:
    """[{start, rows}] oldest first, one entry per hour of the window (zero-filled), from the query's rows
    ({hours_ago, rows}); buckets outside the window are ignored."""
    counts = [0] * hours
    for row in rows or ():
        bucket = int(row["hours_ago"])
        if 0 <= bucket < hours:
            counts[bucket] += int(row["rows"])
    return [{"start": iso_ms(t0_ms - (h + 1) * HOUR_MS), "rows": counts[h]} for h in range(hours - 1, -1, -1)]


def longest_run_above(values, threshold) -> tuple[int, int | None]:
    """(length, start index) of the longest run of consecutive values strictly above threshold; the most recent
    of equally long runs; (0, None) when no value is above."""
    best, best_start, length = 0, None, 0
    for i, value in enumerate(values):
        length = length + 1 if value > threshold else 0
        if length and length >= best:
            best, best_start = length, i - length + 1
    return best, best_start


def volume_summary(series: list[dict], limits: Thresholds) -> dict:
    """The numbers the parallel-offload rule stands on. sustained = at least limits.sustained_hours consecutive
    hours above limits.normal_rows_per_hour."""
    values = [p["rows"] for p in series]
    threshold = limits.normal_rows_per_hour
    length, start = longest_run_above(values, threshold)
    run = values[start:start + length] if length else []
    return {
        "hours": len(values), "last_hour": values[-1] if values else None, "max": max(values) if values else None,
        "mean": round(sum(values) / len(values), 1) if values else None,
        "hours_above": sum(1 for v in values if v > threshold), "threshold": threshold,
        "sustained_hours": limits.sustained_hours, "longest_run_hours": length,
        "longest_run_start": series[start]["start"] if length else None,
        "longest_run_end": iso_ms(to_ms(parse_utc(series[start + length - 1]["start"])) + HOUR_MS) if length else None,
        "longest_run_min": min(run) if run else None,
        "longest_run_mean": round(sum(run) / len(run), 1) if run else None,
        "sustained": length >= limits.sustained_hours,
    }


def volume_recommendation(table: str, volume: dict | None) -> dict | None:
    if not volume or not volume["sustained"]:
        return None
    reason = (f"{table}: above {volume['threshold']:,} rows/hour for {volume['longest_run_hours']} consecutive hours "
              f"({volume['longest_run_start']} to {volume['longest_run_end']}; min {volume['longest_run_min']:,}, mean "
              f"{volume['longest_run_mean']:,.0f} rows/hour; window max {volume['max']:,}); sustained means at least "
              f"{volume['sustained_hours']} hours in a row")
    return {"rule": RULE_PARALLEL, "subject": table,
            "action": "plan a parallel offload (the runbook's Phase 7: tables, or time slices of this table, offloaded "
                      "concurrently) before its single job outgrows the task timeout",
            "reason": reason,
            "evidence": {k: volume[k] for k in ("threshold", "sustained_hours", "longest_run_hours",
                                                "longest_run_start", "longest_run_end", "longest_run_min",
                                                "longest_run_mean", "max", "last_hour", "hours_above")}}


# --- memory (Docker) ----------------------------------------------------------------------------------------

def memory_summary(name: str, state: dict | None, docker_error: str | None = None) -> dict:
    """One container's memory against its limit; `reason` says why there is no fraction."""
    out = {"container": name, "status": None, "usage_bytes": None, "limit_bytes": None, "fraction": None,
           "reason": None}
    if state is None:
        out["reason"] = f"not read: {docker_error or 'the Docker API did not answer'}"
        return out
    out["status"] = state.get("status")
    if not state.get("exists"):
        out["reason"] = "the container does not exist"
    elif state.get("status") != "running":
        out["reason"] = f"the container is {state.get('status')}: no memory to read"
    else:
        out.update(usage_bytes=state.get("memory_usage"), limit_bytes=state.get("memory_limit"),
                   fraction=state.get("memory_fraction"))
        if not out["limit_bytes"]:
            out["reason"] = "no memory limit set: no fraction to compare"
        elif out["usage_bytes"] is None or out["fraction"] is None:
            out["reason"] = "the Docker API returned no memory figures"
    return out


def memory_recommendation(memory: dict, threshold: float) -> dict | None:
    fraction = memory.get("fraction")
    if fraction is None or fraction <= threshold:
        return None
    mib = 1024 * 1024
    reason = (f"{memory['container']}: {memory['usage_bytes'] / mib:,.0f} MiB of its {memory['limit_bytes'] / mib:,.0f} MiB "
              f"limit ({fraction:.1%}), above {threshold:.0%} (a point-in-time reading, reclaimable page cache excluded)")
    return {"rule": RULE_SPARK, "subject": memory["container"],
            "action": "increase the Spark resources: the container's memory limit (compose mem_limit/deploy limits) and "
                      "the driver/executor memory of the offload job",
            "reason": reason,
            "evidence": {"usage_bytes": memory["usage_bytes"], "limit_bytes": memory["limit_bytes"],
                         "fraction": fraction, "threshold": threshold}}


# --- offload durations (Prefect) ----------------------------------------------------------------------------

def _table(match) -> str | None:
    name = match.group(1).rstrip(".,;:")
    return name if valid_table(name) else None


def attempts_from_logs(task_run: dict, logs) -> list[dict]:
    """K2's per-attempt lines of one offload-table task run, oldest first: {table, outcome (completed, timeout,
    failed), seconds, at}. seconds is the attempt's own "Duration:" (the docker exec wall time the task timeout
    bounds); when that line is missing, a single-attempt COMPLETED run's total_run_time stands in."""
    attempts, pending = [], None
    ordered = sorted((log for log in logs or () if isinstance(log, dict)), key=lambda log: str(log.get("timestamp")))
    for log in ordered:
        message = log.get("message")
        if not isinstance(message, str):
            continue
        at = parse_utc(log.get("timestamp"))
        for pattern, outcome in ((OFFLOAD_COMPLETED, "completed"), (OFFLOAD_TIMEOUT, "timeout"),
                                 (OFFLOAD_FAILED, "failed")):
            match = pattern.search(message)
            if match:
                table = _table(match)
                pending = None
                if table:
                    attempts.append({"table": table, "outcome": outcome, "seconds": None, "at": at})
                    pending = attempts[-1] if outcome == "completed" else None
                break
        else:
            duration = DURATION.match(message)
            if duration and pending is not None and pending["seconds"] is None:
                pending["seconds"], pending["at"] = float(duration.group(1)), at or pending["at"]
    completed = [a for a in attempts if a["outcome"] == "completed"]
    if (len(attempts) == 1 and completed and completed[0]["seconds"] is None
            and task_run.get("state_type") == "COMPLETED" and task_run.get("run_count") == 1
            and isinstance(task_run.get("total_run_time"), (int, float))):
        completed[0]["seconds"] = float(task_run["total_run_time"])
    return attempts


def collect_durations(task_runs, logs) -> tuple[dict, int]:
    """({table: {samples: [(at, seconds)], timeouts, failures, completed_without_duration}}, task runs that name no
    table) from the task runs and all their logs (each log carries its task_run_id)."""
    by_run: dict = {}
    for log in logs or ():
        if isinstance(log, dict) and log.get("task_run_id"):
            by_run.setdefault(log["task_run_id"], []).append(log)
    tables, unattributed = {}, 0
    for run in task_runs or ():
        attempts = attempts_from_logs(run, by_run.get(run.get("id"), []))
        if not attempts:
            unattributed += 1
            continue
        for attempt in attempts:
            entry = tables.setdefault(attempt["table"], {"samples": [], "timeouts": 0, "failures": 0,
                                                         "completed_without_duration": 0})
            if attempt["outcome"] == "timeout":
                entry["timeouts"] += 1
            elif attempt["outcome"] == "failed":
                entry["failures"] += 1
            elif attempt["seconds"] is None or attempt["at"] is None:
                entry["completed_without_duration"] += 1
            else:
                entry["samples"].append((attempt["at"], attempt["seconds"]))
    return tables, unattributed


def percentile(values, q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 1])."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def median(values) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def hourly_points(samples, now: datetime, hours: int) -> list[dict]:
    """Per now-aligned hour with samples (oldest first): {start, x (hours relative to now, the bucket's middle),
    median, max, count}; samples older than the window are dropped."""
    buckets: dict = {}
    for at, seconds in samples:
        bucket = hours_ago(at, now)
        if bucket < hours:
            buckets.setdefault(bucket, []).append(seconds)
    return [{"start": iso_ms(to_ms(now) - (h + 1) * HOUR_MS), "x": -(h + 0.5), "median": round(median(v), 3),
             "max": round(max(v), 3), "count": len(v)} for h, v in sorted(buckets.items(), reverse=True)]


def least_squares(points) -> dict | None:
    """Ordinary least squares y = intercept + slope * x over [(x, y)]; r2 is the coefficient of determination
    (1.0 when y is constant). None with fewer than two distinct x."""
    pts = [(float(x), float(y)) for x, y in points]
    n = len(pts)
    if n < 2:
        return None
    mean_x = sum(x for x, _ in pts) / n
    mean_y = sum(y for _, y in pts) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in pts)
    if sxx == 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in pts) / sxx
    intercept = mean_y - slope * mean_x
    ss_tot = sum((y - mean_y) ** 2 for _, y in pts)
    ss_res = sum((y - (intercept + slope * x)) ** 2 for x, y in pts)
    return {"slope": slope, "intercept": intercept, "r2": 1.0 if ss_tot == 0 else 1 - ss_res / ss_tot}


def duration_trend(points: list[dict], limits: Thresholds) -> dict:
    """The least-squares trend of the hourly medians (x in hours, 0 = now) and whether it reaches the warning level
    (timeout_fraction of the task timeout) now or within min(horizon, span of the history)."""
    warn = limits.warn_seconds
    out = {"evaluated": False, "reason": None, "points": len(points), "span_hours": None,
           "slope_seconds_per_day": None, "fitted_now_seconds": None, "projection_hours": None,
           "projected_seconds": None, "r2": None, "reaches_warning": False, "days_to_warning": None,
           "days_to_timeout": None}
    if len(points) < limits.trend_min_points:
        out["reason"] = (f"{len(points)} hour(s) with timed successful offloads in the window; a trend needs "
                         f"{limits.trend_min_points}")
        return out
    fit = least_squares([(p["x"], p["median"]) for p in points])
    if fit is None:
        out["reason"] = "the durations all fall in one hour: no trend"
        return out
    xs = [p["x"] for p in points]
    span = max(xs) - min(xs)
    horizon = min(limits.trend_horizon_hours, span)
    now_value = fit["intercept"]
    projected = now_value + fit["slope"] * horizon

    def days_to(level: float) -> float | None:
        if now_value >= level:
            return 0.0
        return round((level - now_value) / fit["slope"] / 24, 2) if fit["slope"] > 0 else None

    out.update(evaluated=True, span_hours=round(span, 2), slope_seconds_per_day=round(fit["slope"] * 24, 3),
               fitted_now_seconds=round(now_value, 3), projection_hours=round(horizon, 2),
               projected_seconds=round(projected, 3), r2=round(fit["r2"], 4),
               reaches_warning=max(now_value, projected) >= warn, days_to_warning=days_to(warn),
               days_to_timeout=days_to(limits.task_timeout_seconds))
    return out


def duration_summary(entry: dict | None, now: datetime, hours: int, limits: Thresholds) -> dict:
    """Per table: the successful attempts' statistics, the hourly medians, the trend and the attempts that timed out
    or failed (reported, not part of the trend: a timeout is Scenario 5, a failure has no duration)."""
    entry = entry or {"samples": [], "timeouts": 0, "failures": 0, "completed_without_duration": 0}
    since = now - timedelta(hours=hours)
    samples = sorted((s for s in entry["samples"] if s[0] > since), key=lambda s: s[0])
    seconds = [s for _, s in samples]
    points = hourly_points(samples, now, hours)
    return {
        "completed": len(samples), "timeouts": entry["timeouts"], "failures": entry["failures"],
        "completed_without_duration": entry["completed_without_duration"],
        "median_seconds": median(seconds), "p95_seconds": percentile(seconds, 0.95),
        "max_seconds": max(seconds) if seconds else None,
        "last_seconds": seconds[-1] if seconds else None,
        "last_at": samples[-1][0].isoformat() if samples else None,
        "timeout_seconds": limits.task_timeout_seconds, "warning_seconds": round(limits.warn_seconds, 3),
        "hourly": points, "trend": duration_trend(points, limits),
    }


def duration_recommendation(table: str, duration: dict | None) -> dict | None:
    trend = (duration or {}).get("trend") or {}
    if not trend.get("evaluated") or not trend.get("reaches_warning"):
        return None
    timeout, warn = duration["timeout_seconds"], duration["warning_seconds"]
    level = max(trend["fitted_now_seconds"], trend["projected_seconds"])
    when = ("now" if trend["fitted_now_seconds"] >= warn
            else f"within {trend['days_to_warning']:g} days (projected {trend['projection_hours'] / 24:.1f} days ahead)")
    reason = (f"{table}: offload duration {trend['fitted_now_seconds']:.1f} s now, {trend['projected_seconds']:.1f} s "
              f"projected {trend['projection_hours'] / 24:.1f} days ahead (least squares over {trend['points']} hourly "
              f"medians, slope {trend['slope_seconds_per_day']:+.2f} s/day, r2 {trend['r2']:.2f}); reaches "
              f"{level / timeout:.0%} of the {timeout:g} s task timeout {when} (warning at {warn:g} s); "
              f"{duration['timeouts']} timed-out attempt(s) in the window")
    return {"rule": RULE_TIMEOUT, "subject": table,
            "action": "raise the task timeout (the flow's timeout=, inventory k2_offload_task_timeout_seconds) or "
                      "parallelise the offload before its runs time out",
            "reason": reason,
            "evidence": {"timeout_seconds": timeout, "warning_seconds": warn, "timeouts": duration["timeouts"],
                         "median_seconds": duration["median_seconds"], "p95_seconds": duration["p95_seconds"],
                         **{k: trend[k] for k in ("points", "span_hours", "slope_seconds_per_day", "fitted_now_seconds",
                                                  "projection_hours", "projected_seconds", "r2", "days_to_warning",
                                                  "days_to_timeout")}}}


# --- the report ---------------------------------------------------------------------------------------------

def build_report(tables: list[dict], limits: Thresholds, hours: int, clickhouse: dict, prefect: dict, docker: dict,
                 spark_container: str, clickhouse_container: str) -> dict:
    """The capacity report from the three sources' raw results.

    clickhouse: {reachable, error, t0_ms, tables: {source: {rows, error}}}
    prefect: {reachable, error, now (datetime), task_runs, logs, truncated}
    docker: {reachable, error, containers: {name: container_state}}
    """
    blind = []
    if not clickhouse.get("reachable"):
        blind.append(f"ClickHouse (rows per hour): {clickhouse.get('error')}")
    if not prefect.get("reachable"):
        blind.append(f"Prefect (offload durations): {prefect.get('error')}")
    if not docker.get("reachable"):
        blind.append(f"Docker API (memory): {docker.get('error')}")
    durations, unattributed = (collect_durations(prefect.get("task_runs"), prefect.get("logs"))
                               if prefect.get("reachable") else ({}, 0))
    now = prefect.get("now") or datetime.now(timezone.utc)
    out_tables, recommendations = {}, []
    for table in tables:
        source = table["source"]
        if source in out_tables:
            continue
        ch = (clickhouse.get("tables") or {}).get(source) or {}
        series, volume, error = None, None, ch.get("error")
        if clickhouse.get("reachable") and error is None and ch.get("rows") is not None:
            series = hourly_series(ch["rows"], clickhouse["t0_ms"], hours)
            volume = volume_summary(series, limits)
        elif clickhouse.get("reachable"):
            blind.append(f"ClickHouse rows of {source}: {error}")
        duration = duration_summary(durations.get(source), now, hours, limits) if prefect.get("reachable") else None
        out_tables[source] = {"layer": table.get("layer"), "timestamp_col": table["timestamp_col"],
                              "rows_per_hour": series, "volume": volume, "duration": duration, "error": error}
        recommendations += [r for r in (volume_recommendation(source, volume), duration_recommendation(source, duration))
                            if r]
    containers = docker.get("containers") or {}
    memory = {}
    for role, name in (("spark", spark_container), ("clickhouse", clickhouse_container)):
        why = docker.get("error") if not docker.get("reachable") else (docker.get("errors") or {}).get(name)
        memory[role] = memory_summary(name, containers.get(name) if docker.get("reachable") else None, why)
        if docker.get("reachable") and name not in containers:
            blind.append(f"Docker API (memory of {name}): {why or 'not read'}")
    spark = memory_recommendation(memory["spark"], limits.memory_fraction)
    if spark:
        recommendations.append(spark)
    recommendations.sort(key=lambda r: (RULE_ORDER.index(r["rule"]), r["subject"]))
    status = STATUS_RECOMMENDATIONS if recommendations else STATUS_INCOMPLETE if blind else STATUS_OK
    since_ms = clickhouse.get("t0_ms") - hours * HOUR_MS if clickhouse.get("t0_ms") else to_ms(now) - hours * HOUR_MS
    until_ms = clickhouse.get("t0_ms") or to_ms(now)
    return {"status": status, "window": {"hours": hours, "since": iso_ms(since_ms), "until": iso_ms(until_ms)},
            "thresholds": {**asdict(limits), "warn_seconds": round(limits.warn_seconds, 3)},
            "sources": {"clickhouse": {"reachable": bool(clickhouse.get("reachable")), "error": clickhouse.get("error"),
                                       "server_time": iso_ms(clickhouse["t0_ms"]) if clickhouse.get("t0_ms") else None},
                        "prefect": {"reachable": bool(prefect.get("reachable")), "error": prefect.get("error"),
                                    "server_time": now.isoformat() if prefect.get("reachable") else None,
                                    "task_runs": len(prefect.get("task_runs") or ()),
                                    "task_runs_truncated": bool(prefect.get("truncated")),
                                    "task_runs_without_table": unattributed},
                        "docker": {"reachable": bool(docker.get("reachable")), "error": docker.get("error")}},
            "tables": out_tables, "memory": memory, "recommendations": recommendations, "blind": blind}


def summary_lines(report: dict) -> list[str]:
    """A short human summary: the verdict, one line per recommendation, what could not be read, per table one line."""
    recs, window_days = report["recommendations"], report["window"]["hours"] / 24
    head = {STATUS_OK: f"CAPACITY OK: no recommendation over the last {window_days:g} days",
            STATUS_RECOMMENDATIONS: f"CAPACITY: {len(recs)} recommendation(s) over the last {window_days:g} days",
            STATUS_INCOMPLETE: f"CAPACITY INCOMPLETE: no recommendation from what could be read over the last "
                               f"{window_days:g} days"}[report["status"]]
    lines = [head]
    lines += [f"RECOMMEND {r['rule']} ({r['subject']}): {r['action']}. Because {r['reason']}" for r in recs]
    lines += [f"BLIND: {b}" for b in report["blind"]]
    for source, table in report["tables"].items():
        volume, duration = table["volume"] or {}, table["duration"] or {}
        parts = []
        if volume:
            parts.append(f"rows/hour last {volume['last_hour']:,}, max {volume['max']:,}, above "
                         f"{volume['threshold']:,} for {volume['longest_run_hours']} h in a row at most")
        if duration and duration["completed"]:
            trend = duration["trend"]
            slope = (f", trend {trend['slope_seconds_per_day']:+.2f} s/day" if trend["evaluated"]
                     else f", no trend ({trend['reason']})")
            parts.append(f"duration median {duration['median_seconds']:.1f} s, max {duration['max_seconds']:.1f} s of "
                         f"{duration['timeout_seconds']:g} s{slope}")
        elif duration:
            parts.append("no timed successful offload in the window")
        if duration and duration["timeouts"]:
            parts.append(f"{duration['timeouts']} timed-out attempt(s)")
        lines.append(f"{source}: " + ("; ".join(parts) if parts else "not read"))
    for memory in report["memory"].values():
        if memory["fraction"] is not None:
            lines.append(f"memory {memory['container']}: {memory['fraction']:.1%} of its limit")
        else:
            lines.append(f"memory {memory['container']}: {memory['reason']}")
    return lines
