# -*- coding: utf-8 -*-
# PRIVATE to this project's modules (library/offload_maintenance_report): the decisions of the weekly watermark
# hygiene (runbook "Prevention - weekly watermark cleanup"), from what offload_watermark read and did. No I/O.
# Imported as ansible.module_utils.offload_maintenance.
#
# - History layout (the runbook's append-only table): the newest `keep` rows of each configured table are kept by
#   offload_watermark action=prune (per table, never the newest row); a backup (action=backup) comes first, and
#   only when the prune would delete something. Never the runbook's global "keep the last 50", which deletes the
#   whole history - watermark included - of every table that did not write in the last 50 rows.
# - State layout (K2's real table, one row per table): nothing to prune (the row is the watermark). Rows stuck
#   'running', with NULLs, ahead of the clock or missing are reported with what to do; nothing is changed
#   automatically (a watermark moved by the wrong amount loses or doubles rows).
from __future__ import annotations

LAYOUT_STATE, LAYOUT_HISTORY = "state", "history"

STATUS_CLEAN = "clean"
STATUS_PRUNED = "pruned"
STATUS_WOULD_PRUNE = "would_prune"
STATUS_ATTENTION = "attention"
STATUS_UNUSABLE = "unusable"

REMEDIATE = "ansible-playbook playbooks/remediate.yml -e remediate_scenarios=4"

# Findings a human must act on (the runbook's corruption patterns as they look on K2), with what to do.
ACTION_ADVICE = {
    "missing_row": "every offload of {table} fails 'Watermark not found': `" + REMEDIATE + "` re-creates the row from "
                   "the cold tier's committed maximum (Iceberg metadata), after a backup",
    "null_values": "the job cannot compute its window: `" + REMEDIATE + "` repairs the NULLs from the cold tier's "
                   "committed maximum, after a backup; do not set them by hand",
    "future_watermark": "rows up to it are never offloaded (a gap): check the clocks (K2 assumes UTC everywhere) and "
                        "who wrote it; `" + REMEDIATE + "` moves it back to the cold tier's maximum only while "
                        "ClickHouse still holds the gap's rows, else it escalates (data loss)",
    "stuck_running": "make sure no offload of {table} is in flight (a RUNNING flow run, offload_generic.py in the "
                     "Spark container); then `" + REMEDIATE + "` marks it failed under the table's lock, after a "
                     "backup (K2's own next run does the same once the row is 30 min old, counting one failure)",
}
# Findings that belong to the incident runbook or are expected, reported for completeness.
INFO_ADVICE = {
    "initial_watermark": "the 1970 seed: the table's first offload reads the whole hot table in one batch; expected "
                         "only before that first offload",
    "failed": "an offload failure, not hygiene: `ansible-playbook playbooks/diagnose.yml` names the scenario",
    "consecutive_failures": "the alert's condition: `ansible-playbook playbooks/diagnose.yml` names the scenario",
    "unknown_layout": "offload_watermarks has neither K2's nor the runbook's columns: nothing was read",
}
# history_bloat is what the prune itself fixes; it is reported as rows before/after, not as a finding.
HANDLED_BY_PRUNE = ("history_bloat",)


def ran(result) -> bool:
    """Whether a registered task result is of a task that ran (not skipped, not absent)."""
    return isinstance(result, dict) and bool(result) and not result.get("skipped")


def findings(anomalies) -> list[dict]:
    """offload_watermark's flat anomalies -> [{table, code, detail, advice, action_needed}], action first."""
    out = []
    for item in anomalies or ():
        code, table = item.get("code"), item.get("table")
        if code in HANDLED_BY_PRUNE:
            continue
        needed = code in ACTION_ADVICE
        advice = (ACTION_ADVICE if needed else INFO_ADVICE).get(code, "see playbooks/diagnose.yml")
        out.append({"table": table, "code": code, "detail": item.get("detail"),
                    "advice": advice.format(table=table), "action_needed": needed})
    return sorted(out, key=lambda f: (not f["action_needed"], f["table"] or "", f["code"] or ""))


def prune_part(keep: int, plan, backup, prune, check_mode: bool) -> dict:
    """History layout: what the prune planned (rolled back), the backup taken first and what the prune did."""
    planned = int(plan.get("deleted") or 0) if ran(plan) else 0
    done = ran(prune)
    deleted = int(prune.get("deleted") or 0) if done else 0
    source = prune if done else plan if ran(plan) else {}
    return {
        "keep": keep, "planned_deletions": planned,
        "deleted": 0 if check_mode else deleted,
        "would_delete": deleted if check_mode else None,
        "rows_before": source.get("rows_before") or {}, "rows_after": source.get("rows_after") or {},
        "locked": sorted(set((plan or {}).get("locked") or []) | set((prune or {}).get("locked") or [])),
        "backup": ({"file": backup.get("backup_file"), "rows": backup.get("rows"), "sha256": backup.get("sha256"),
                    "written": not check_mode} if ran(backup) else None),
    }


def build_report(inspect: dict, keep: int, tables: list[str], plan=None, backup=None, prune=None,
                 check_mode: bool = False) -> dict:
    """The maintenance report and its status: unusable (the table cannot be maintained), attention (a finding
    needs a human), pruned / would_prune (check mode), clean."""
    layout = inspect.get("layout")
    found = findings(inspect.get("anomalies"))
    report = {"layout": layout, "tables": list(tables), "server_time": inspect.get("server_time"),
              "findings": found, "prune": None, "status": None, "reason": None}
    if layout not in (LAYOUT_STATE, LAYOUT_HISTORY):
        report["status"] = STATUS_UNUSABLE
        report["reason"] = (f"offload_watermarks layout is {layout}"
                            + (f" (columns: {', '.join(inspect.get('columns') or []) or 'none'})"
                               if layout != "absent" else " (the table does not exist)")
                            + ": neither K2's one-row-per-table table nor the runbook's history; nothing was changed")
        return report
    if layout == LAYOUT_HISTORY:
        report["prune"] = prune_part(keep, plan or {}, backup or {}, prune or {}, check_mode)
        pruned = report["prune"]["would_delete"] if check_mode else report["prune"]["deleted"]
    else:
        report["reason"] = ("K2's state layout: one row per table, which is the watermark - nothing to prune (the "
                            "runbook's cleanup would delete it and every job would fail 'Watermark not found')")
        pruned = 0
    if any(f["action_needed"] for f in found):
        report["status"] = STATUS_ATTENTION
    elif pruned:
        report["status"] = STATUS_WOULD_PRUNE if check_mode else STATUS_PRUNED
    else:
        report["status"] = STATUS_CLEAN
    return report


def summary_lines(report: dict) -> list[str]:
    status = report["status"]
    if status == STATUS_UNUSABLE:
        return [f"WATERMARK MAINTENANCE UNUSABLE: {report['reason']}"]
    lines = [f"WATERMARK MAINTENANCE {status.upper().replace('_', ' ')}: layout {report['layout']}, "
             f"{len(report['tables'])} table(s)"]
    prune = report["prune"]
    if prune is not None:
        before, after = prune["rows_before"], prune["rows_after"]
        if prune["would_delete"] is not None:
            lines.append(f"CHECK MODE - would delete {prune['would_delete']} history row(s), keeping the newest "
                         f"{prune['keep']} per table; nothing was changed")
        else:
            lines.append(f"deleted {prune['deleted']} history row(s), keeping the newest {prune['keep']} per table")
        lines += [f"{t}: {before[t]} -> {after.get(t, before[t])} row(s)" for t in sorted(before)
                  if before[t] != after.get(t, before[t])]
        if prune["backup"]:
            verb = "backed up to" if prune["backup"]["written"] else "would back up to"
            lines.append(f"{verb} {prune['backup']['file']} first (restore: offload_watermark action=restore)")
        if prune["locked"]:
            lines.append(f"not pruned (a remediation holds the table's lock): {', '.join(prune['locked'])}")
    else:
        lines.append(report["reason"])
    actions = [f for f in report["findings"] if f["action_needed"]]
    lines += [f"ACTION {f['table']} {f['code']}: {f['detail']}. What to do: {f['advice']}" for f in actions]
    if not actions:
        lines.append("no stuck, NULL, future or missing watermark")
    info: dict = {}
    for f in report["findings"]:
        if not f["action_needed"]:
            info.setdefault((f["code"], f["advice"]), []).append(f["table"])
    lines += [f"info {code} ({', '.join(tables)}): {advice}" for (code, advice), tables in info.items()]
    return lines
