# -*- coding: utf-8 -*-
# PRIVATE to this project's modules: diagnosis (+ forced scenarios, lock outcome) -> the remediation plan.
# Pure functions: every decision remediate.yml acts on is made here and unit-tested, the playbook only dispatches.
from __future__ import annotations

import json
import re
from datetime import datetime, timezone

try:
    from ansible.module_utils.offload_common import parse_utc
except ImportError:  # unit tests import module_utils/ directly
    from offload_common import parse_utc

AUTOMATED = (1, 2, 3, 4, 5)
MITIGATIONS = ("auto", "raise", "manual")
MAX_BUDGET_SECONDS = 24 * 3600
DIAGNOSIS_KIND = "k2-offload-diagnosis"
# Orchestration root causes the playbook starts (offload_orchestration), upstream first.
STARTABLE_ROOT_CAUSES = ("prefect_db", "prefect_server")

# The runbook's escalation rules, named as the runbook names them.
RULE_DATA_LOSS = "data loss suspected"
RULE_UNCLEAR = "root cause is unclear"
RULE_CHANGE = "code or infrastructure change needed"
RULE_TIME = "not resolved within 30 minutes"

# Outcomes of the plan (documented in the README; remediate.yml branches on these only).
NOTHING = "healthy"                # nothing to do; nothing was changed
IN_PROGRESS = "in_progress"        # another remediation holds the stack's lock; nothing was changed
ESCALATE = "escalate"              # a runbook escalation rule applies before any change
REMEDIATE = "remediate"            # act (the steps), then verify
REPORT_ONLY = "alerting_blind"     # only monitoring is down and restarting it was not asked for


class PlanError(ValueError):
    """Bad input: one line naming the input, raised before anything runs."""


def parse_forced(value, automated=AUTOMATED) -> list[int]:
    """remediate_scenarios as a list, a comma-separated string or one number -> sorted unique scenario numbers."""
    if value is None or value == "":
        return []
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else [value]
    out = []
    for item in items:
        text = str(item).strip()
        if text == "":
            continue
        if isinstance(item, bool) or not re.fullmatch(r"[0-9]+", text) or int(text) not in automated:
            raise PlanError(f"remediate_scenarios must be among {list(automated)}, got {value}.")
        out.append(int(text))
    return sorted(set(out))


def check_tables(tables) -> list[str]:
    if not isinstance(tables, list) or not tables:
        raise PlanError(f"k2_tables must be a non-empty list of tables, got {_short(tables)}.")
    names = []
    for table in tables:
        name = table.get("source") if isinstance(table, dict) else None
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise PlanError(f"k2_tables entries need a plain identifier as 'source', got {_short(table)}.")
        if name in names:
            raise PlanError(f"k2_tables lists {name!r} twice.")
        names.append(name)
    return names


def check_budget(value) -> int:
    try:
        budget = int(str(value).strip())
    except ValueError:
        raise PlanError(f"remediate_escalation_budget_seconds must be a whole number of seconds, got {_short(value)}.") \
            from None
    if not 1 <= budget <= MAX_BUDGET_SECONDS:
        raise PlanError(f"remediate_escalation_budget_seconds must be between 1 and {MAX_BUDGET_SECONDS}, got {budget}.")
    return budget


def check_mitigation(value) -> str:
    if value not in MITIGATIONS:
        raise PlanError(f"remediate_timeout_mitigation must be one of {', '.join(MITIGATIONS)}, got {_short(value)}.")
    return value


def _short(value) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def load_report(text: str, path: str, host: str, now: datetime, max_age_seconds: float) -> dict:
    """A diagnosis report file (use_report=true): JSON, a diagnosis, of this host, and fresh."""
    try:
        report = json.loads(text)
    except ValueError:
        raise PlanError(f"report {path} is not JSON: run diagnose.yml again or drop use_report.") from None
    return check_report(report, f"report {path}", host, now, max_age_seconds)


def published_report(published, host: str, now: datetime, max_age_seconds: float) -> dict | None:
    """This host's diagnosis from what diagnose.yml published with set_stats (k2_offload_diagnosis, keyed by host):
    how an AWX workflow hands it to the remediate node, whose private data dir holds no report file. None when
    nothing was published for this host (the caller falls back to the report file)."""
    if published is None:
        return None
    if not isinstance(published, dict):
        raise PlanError(f"k2_offload_diagnosis must be a mapping of host to diagnosis, got {_short(published)}.")
    if host not in published:
        return None
    return check_report(published[host], f"published diagnosis k2_offload_diagnosis[{host!r}]", host, now,
                        max_age_seconds)


def check_report(report, source: str, host: str, now: datetime, max_age_seconds: float) -> dict:
    """A diagnosis handed over rather than made by this run: a diagnosis, of this host, and fresh."""
    if not isinstance(report, dict) or report.get("kind") != DIAGNOSIS_KIND:
        kind = report.get("kind") if isinstance(report, dict) else None
        raise PlanError(f"{source} is not a diagnosis report (kind {_short(kind)}).")
    if report.get("host") != host:
        raise PlanError(f"{source} belongs to host {_short(report.get('host'))}, not {host!r}.")
    generated = parse_utc(report.get("generated_at"))
    if generated is None:
        raise PlanError(f"{source} has no valid generated_at time.")
    age = (now - generated).total_seconds()
    if age > max_age_seconds:
        raise PlanError(f"{source} is stale: written {age:.0f} s ago (limit {max_age_seconds:.0f} s); "
                        "run diagnose.yml again.")
    return report


def _configured(names, configured) -> list[str]:
    return [n for n in names or [] if n in configured]


def first_evidence(diagnosis: dict) -> str:
    for item in (diagnosis.get("root_causes") or []) + (diagnosis.get("scenarios") or []):
        if item.get("evidence"):
            return item["evidence"][0]
    return ""


def plan(diagnosis: dict, configured: list[str], forced: list[int], lock: dict | None = None,
         restart_monitoring: bool = False, automated=AUTOMATED, alert_driven: bool = False,
         standdown_seconds: float = 0, now: datetime | None = None) -> dict:
    """The remediation plan: an outcome, one line saying why, and for REMEDIATE the ordered steps. An alert-driven
    run stands down for `standdown_seconds` after an escalation to people (the lock's `escalation`), so that it
    never acts beside them; a run started by a person does not."""
    scenarios = diagnosis.get("scenarios") or []
    root_causes = diagnosis.get("root_causes") or []
    blind = diagnosis.get("blind") or []
    offload_blind = [b for b in blind if not b.get("monitoring")]
    monitoring_blind = [b for b in blind if b.get("monitoring")]
    result = {"outcome": None, "message": "", "escalation_rule": None, "root_cause_steps": [], "scenarios": [],
              "restart_monitoring": False, "tables": [], "watermark_tables": [], "timeout_tables": [],
              "verify_tables": [], "not_automated": [], "monitoring_blind": monitoring_blind, "causes": {},
              "adopt_schedule": False, "test_table": None,
              "diagnosis_titles": [c.get("title", c.get("component")) for c in root_causes]
              + [s.get("title", str(s.get("scenario"))) for s in scenarios]}

    def done(outcome, message, rule=None):
        result.update(outcome=outcome, message=message, escalation_rule=rule)
        return result

    if lock and not lock.get("acquired", True):
        holder = lock.get("holder") or {}
        return done(IN_PROGRESS, f"IN PROGRESS: another remediation in progress since {holder.get('since', '?')}, by "
                                 f"{holder.get('who') or '?'} on {holder.get('control_node') or '?'} (run "
                                 f"{holder.get('run_id') or '?'}"
                                 f"{', at: ' + holder['step'] if holder.get('step') else ''}); this run changed nothing.")

    standing = standing_escalation(lock, standdown_seconds, now) if alert_driven else None
    if standing:
        return done(IN_PROGRESS, f"IN PROGRESS: escalated to people at {standing.get('at')} by run "
                                 f"{standing.get('run_id') or '?'} ({standing.get('rule') or 'rule not recorded'}); an "
                                 f"alert-driven run stands down for {standdown_seconds:.0f} s after an escalation, so "
                                 "that it never acts beside them; this run changed nothing (run remediate.yml by hand "
                                 "to act anyway).")

    headroom = diagnosis.get("min_ttl_headroom_seconds")
    if headroom is not None and float(headroom) <= 0:  # as the diagnosis: no headroom left is data loss
        return done(ESCALATE, f"ESCALATE ({RULE_DATA_LOSS}): TTL headroom {headroom} s per table "
                              f"{json.dumps(diagnosis.get('ttl_headroom_seconds') or {}, sort_keys=True)}; the hot tier "
                              f"may already have deleted rows the cold tier never got. Evidence: "
                              f"{first_evidence(diagnosis)}", RULE_DATA_LOSS)

    failing = _configured(diagnosis.get("failing_tables"), configured)
    fallback = failing or [configured[0]]
    per_scenario = {s.get("scenario"): _configured(s.get("tables"), configured) for s in scenarios}
    if forced:
        chosen, not_automated = list(forced), []
    else:
        chosen = [s["scenario"] for s in scenarios if s.get("scenario") in automated]
        not_automated = [s for s in scenarios if s.get("scenario") not in automated]
    startable = [c["component"] for c in root_causes if c.get("component") in STARTABLE_ROOT_CAUSES]
    # A schedule a dead remediation left paused: this run adopts its hold (hold_schedule.yml) and resumes it at the end.
    adopt_schedule = any(c.get("component") == "schedule" for c in root_causes)
    result.update(root_cause_steps=startable, scenarios=chosen, not_automated=not_automated,
                  causes=diagnosis.get("causes") or {}, adopt_schedule=adopt_schedule)
    acting = bool(chosen or startable or adopt_schedule)

    if offload_blind and not forced and not any(b.get("probe") in _explained_probes(chosen) for b in offload_blind):
        blind_text = "; ".join(f"{b['component']}: {b['cause']}" for b in offload_blind)
        return done(ESCALATE, f"ESCALATE ({RULE_UNCLEAR}): the diagnosis is blind - {blind_text}. Nothing was "
                              "changed: what cannot be seen could be the cause.", RULE_UNCLEAR)
    if not acting and not_automated:
        item = not_automated[0]
        return done(ESCALATE, f"ESCALATE ({RULE_UNCLEAR}): scenario(s) "
                              f"{', '.join(str(s['scenario']) for s in not_automated)} are not automated here "
                              f"({'; '.join(s.get('title', '') for s in not_automated)}). Evidence: "
                              f"{(item.get('evidence') or [''])[0]}. Next: {item.get('next_action', '')}", RULE_UNCLEAR)
    if not acting:
        if monitoring_blind and restart_monitoring:
            result.update(restart_monitoring=True)
            return done(REMEDIATE, "the monitoring containers: alerting is blind (remediate_restart_monitoring=true).")
        if monitoring_blind:
            return done(REPORT_ONLY, "ALERTING BLIND: " + "; ".join(f"{b['component']}: {b['cause']}"
                                                                    for b in monitoring_blind)
                        + ". The offload itself looks healthy; nothing was changed (set "
                          "remediate_restart_monitoring=true to start the monitoring containers).")
        return done(NOTHING, "HEALTHY: the diagnosis found nothing to remediate; nothing was changed.")

    result["restart_monitoring"] = bool(monitoring_blind) and restart_monitoring
    result["tables"] = fallback
    result["watermark_tables"] = per_scenario.get(4) or fallback
    result["timeout_tables"] = per_scenario.get(5) or fallback
    # Scenarios 2 and 3 prove the fix with one manual offload. Of a table whose watermark Scenario 4 repairs only after
    # them, it would fail for that reason: prove it on a table whose watermark is sound.
    sound = [t for t in fallback + configured if 4 not in chosen or t not in result["watermark_tables"]]
    result["test_table"] = (sound or fallback)[0]
    result["verify_tables"] = list(dict.fromkeys(
        fallback + (result["watermark_tables"] if 4 in chosen else []) + (result["timeout_tables"] if 5 in chosen else [])))
    causes = result["causes"]
    steps = ([f"root cause(s) {', '.join(startable)} (start, upstream first)"] if startable else []) + \
        (["the schedule a remediation that is gone left paused (adopt its hold, resume it at the end)"]
         if adopt_schedule else []) + \
        ([f"scenario(s) {', '.join(str(n) for n in chosen)}"] if chosen else [])
    extras = ([", restarting Spark after an OOM kill"] if causes.get("spark_oom") and 3 in chosen else []) + \
        ([", restarting ClickHouse (memory)"] if causes.get("clickhouse_memory") and 2 in chosen else [])
    return done(REMEDIATE, f"{' then '.join(steps)} for table(s) {', '.join(fallback)}{''.join(extras)}; then verify "
                           "with a flow run, the watermarks and the truth check.")


def standing_escalation(lock: dict | None, standdown_seconds: float, now: datetime | None = None) -> dict | None:
    """The lock's last escalation while it is younger than `standdown_seconds`, else None (a record without a
    valid time is not standing: a torn file must not silence the loop for ever)."""
    escalation = (lock or {}).get("escalation") or {}
    at = parse_utc(escalation.get("at"))
    if at is None:
        return None
    age = ((now or datetime.now(timezone.utc)) - at).total_seconds()
    return escalation if age < standdown_seconds else None


def _explained_probes(scenarios: list[int]) -> set[str]:
    """Probes whose blindness a chosen scenario acts on anyway (ClickHouse refused: Scenario 2 tests it)."""
    return {"clickhouse"} if 2 in scenarios else set()


def failure_rule(task: str, result: dict) -> str:
    """The runbook escalation rule a failed step falls under."""
    if result.get("unsafe_lines") or "JDBC driver" in str(result.get("msg") or "") or "JDBC driver" in task:
        return RULE_CHANGE  # a damaged data directory, an image without its driver: people must change things
    if "escalation budget" in task:
        return RULE_TIME
    if task.lower().startswith("no row lost or doubled"):
        return RULE_DATA_LOSS  # the truth check ran and found rows missing or doubled (not: could not run)
    return RULE_UNCLEAR


def escalation_for_failure(step: str, task: str, result: dict, elapsed: float, diagnosis_titles: list[str]) -> str:
    """A failed step -> one escalation line naming the rule, the component, the check, what was waited for and the
    last value seen (an until-loop that ran out reports no message of its own: 'Unknown error')."""
    result = result or {}
    msg = str(result.get("msg") or "").strip()
    generic = not msg or re.fullmatch(r"(Task failed: )?(Action failed: )?Unknown error\.?", msg) is not None
    last = _last_value(result)
    attempts = result.get("attempts")
    waited = f" after {attempts} attempts" if attempts else ""
    what = (f"the condition was not met{waited}; last seen: {last or 'no value (the check never answered)'}" if generic
            else msg.splitlines()[0][:400] + (f" (last seen: {last})" if last and last not in msg else ""))
    return (f"ESCALATE ({failure_rule(task, result)}) after {elapsed:.1f} s: {step}: check '{task}' failed: {what} | "
            f"diagnosis: {'; '.join(diagnosis_titles) or 'none'}")


# Result keys that carry the value a wait was watching, in the order they are most telling.
LAST_VALUE_KEYS = ("error", "worker_online", "reachable", "status", "state_type", "flow_run", "rc", "stderr",
                   "stdout", "workers")


def _last_value(result: dict) -> str:
    parts = []
    for key in LAST_VALUE_KEYS:
        if key in result and result[key] not in (None, "", [], {}):
            value = result[key]
            if isinstance(value, dict):
                value = {k: value[k] for k in ("name", "state_type", "message") if k in value} or value
            parts.append(f"{key}={_short(value) if not isinstance(value, str) else value.strip()[:200]}")
        if len(parts) == 3:
            break
    return ", ".join(parts)
