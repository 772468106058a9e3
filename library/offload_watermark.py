#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_watermark
short_description: Back up, repair, prune and restore K2's offload watermarks in PostgreSQL
description:
  - Changes the table C(offload_watermarks) that K2's Iceberg offload keeps in PostgreSQL (database C(prefect) on
    C(k2-prefect-db)); M(offload_watermark_info) reads it. Both layouts - V(state), K2's real table (one mutable
    row per table), and V(history), the runbook's append-only table - are detected from C(information_schema)
    before anything is changed. Table names are validated as plain identifiers and always bound as query
    parameters, never interpolated into SQL.
  - V(repair) (Scenario 4) makes each table's watermark agree with the cold tier's committed maximum
    (O(cold), from M(offload_iceberg_info)) - a row stuck C(running) with no offload in flight is marked failed
    (K2's own recovery), a missing row is re-created from the Iceberg maximum (the epoch for an empty table),
    NULLs are repaired, a watermark behind the maximum is moved forward (else duplicates), a watermark ahead of
    it (a gap) is moved back only if ClickHouse still holds the gap's rows (O(hot_oldest)), else the table is
    reported in RV(escalate) and left alone. One transaction; a PostgreSQL advisory lock per table
    (C(pg_try_advisory_xact_lock(hashtext('k2-offload-watermark.TABLE')))) - a table locked by another
    remediation is reported C(locked) and not touched; a table in O(in_flight_tables) is C(refused).
  - V(prune) (history layout only) keeps the newest O(keep) rows of each listed table - per table, never its
    newest row, one set-based statement - unlike the runbook's global "keep last 50".
  - V(backup) writes a timestamped CSV dump (COPY) of the whole table into O(backup_dir) on the host the module
    runs on; V(restore) replaces the table's rows by such a file in one transaction.
version_added: "1.0.0"
author: K2 offload automation
attributes:
  check_mode:
    support: full
    details: Write actions run their statements and roll back, so the plan, SQL and diff are exact; V(backup)
      writes nothing.
  diff_mode:
    support: full
    details: V(repair) returns the rows before/after, V(prune) the row counts, V(restore) the row counts.
  idempotent:
    support: partial
    details: V(repair) and V(prune) change nothing on a second run; V(backup) writes a new file and
      V(restore) rewrites the table each time.
extends_documentation_fragment:
  - offload.watermark_tables
  - offload.postgres
options:
  action:
    description: What to do - V(repair), V(prune), V(backup) or V(restore), described above.
    type: str
    choices: [repair, prune, backup, restore]
    required: true
  cold:
    description: V(repair) - per source table, the cold tier's C(max_timestamp) and optional C(max_sequence)
      (M(offload_iceberg_info)'s RV(offload_iceberg_info#module:tables) as is).
    type: dict
    default: {}
  hot_oldest:
    description: V(repair) - per source table, the oldest row still in ClickHouse (ISO 8601).
    type: dict
    default: {}
  in_flight_tables:
    description: Tables with an offload in flight (Spark container process or RUNNING flow run); never touched.
    type: list
    elements: str
    default: []
  tolerance_seconds:
    description: V(repair) - watermark and cold maximum closer than this are equal.
    type: float
    default: 1.0
  keep:
    description: V(prune) - rows kept per table (at least 1; the runbook keeps 10).
    type: int
    default: 10
  backup_dir:
    description: V(backup) - directory of the dump files (created 0700).
    type: path
  backup_file:
    description: V(restore) - the dump file to restore.
    type: path
notes:
  - A table the plan cannot make right without losing data is reported in RV(escalate) and left alone; the task
    fails only on invalid input, a connection failure or an SQL error.
"""

EXAMPLES = r"""
---
- name: Plan the repair from the cold tier's committed maxima (statements run and rolled back)
  offload_watermark:
    action: repair
    tables: [bronze_trades_binance]
    cold: "{{ cold.tables }}"               # offload_iceberg_info
    hot_oldest: {bronze_trades_binance: "2026-11-20T00:00:00Z"}
    login_password: "{{ k2_postgres_password }}"
  check_mode: true
  register: plan

- name: Back up, then keep the newest 10 rows of each table (history layout)
  offload_watermark:
    action: "{{ item }}"
    tables: "{{ k2_tables | map(attribute='source') | list }}"
    backup_dir: /var/backups/k2
    keep: 10
    login_password: "{{ k2_postgres_password }}"
  loop: [backup, prune]
"""

RETURN = r"""
---
layout:
  description:
    - Layout of C(offload_watermarks). V(state) (K2's real table), V(history) (the runbook's append-only
      layout), V(absent) (no such table) or V(unknown).
  returned: always
  type: str
  sample: state
plans:
  description: V(repair) - per table, C(action) (none, refused, locked, mark_failed, create, repair_nulls,
    move_back, move_forward, escalate), C(reason), and the new C(timestamp)/C(sequence).
  returned: when O(action=repair)
  type: list
  elements: dict
escalate:
  description: V(repair) - the plans whose action is C(escalate) (data may be gone); nothing was changed for them.
  returned: when O(action=repair)
  type: list
  elements: dict
deleted:
  description: V(prune) - rows deleted.
  returned: when O(action=prune)
  type: int
backup_file:
  description: V(backup)/V(restore) - the dump file.
  returned: when O(action) is V(backup) or V(restore)
  type: str
sha256:
  description: V(backup) - checksum of the dump file.
  returned: when O(action=backup)
  type: str
queries:
  description: The SQL statements executed, the row locks and writes included, with their bound values (in check mode
    the writes that ran were rolled back).
  returned: always
  type: list
  elements: str
  sample: ["SELECT * FROM offload_watermarks WHERE table_name = 'bronze_trades_binance' FOR UPDATE",
           "UPDATE offload_watermarks SET status = 'failed', failure_count = COALESCE(failure_count, 0) + 1 ..."]
"""

import hashlib
import io
import os
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.offload_common import ProbeError, first_line, invalid_identifiers, postgres_argument_spec, to_json_safe
from ansible.module_utils.offload_watermark_db import (
    HAS_PSYCOPG2,
    PSYCOPG2_IMPORT_ERROR,
    SqlError,
    WatermarkDB,
    psycopg2,
    tables_problem,
    where,
)
from ansible.module_utils.offload_watermark_logic import (
    COLUMNS_SQL,
    LAYOUT_ABSENT,
    LAYOUT_HISTORY,
    LAYOUT_STATE,
    SERVER_SQL,
    WATERMARK_TABLE,
    detect_layout,
    unique,
)
from ansible.module_utils.offload_watermark_repair import (
    COUNT_SQL,
    HISTORY_ROW_SQL,
    LOCK_SQL,
    PRUNE_SQL,
    STATE_ROW_SQL,
    lock_key,
    plan_repair,
    repair_statements,
)


def _layout(db: WatermarkDB) -> tuple[str, list]:
    server = db.rows(SERVER_SQL, {"table": WATERMARK_TABLE})[0]
    if server["table_schema"] is None:
        return LAYOUT_ABSENT, []
    columns = [r["column_name"] for r in db.rows(COLUMNS_SQL, {"schema": server["table_schema"],
                                                               "table": WATERMARK_TABLE})]
    return detect_layout(columns), columns


def _finish(module: AnsibleModule, db: WatermarkDB, changed: bool) -> None:
    """Commit a write action's transaction, or roll it back in check mode (the plan and SQL stay reported)."""
    if changed and not module.check_mode:
        db.conn.commit()
    else:
        db.conn.rollback()


def _lock(db: WatermarkDB, table: str) -> bool:
    return bool(db.rows(LOCK_SQL, {"key": lock_key(table)})[0]["locked"])


def repair(module: AnsibleModule, db: WatermarkDB, tables: list[str]) -> dict:
    """Scenario 4: make each watermark agree with what the cold tier really holds, one transaction, one advisory
    lock per table; a table locked by another remediation or with an offload in flight is left alone."""
    params = module.params
    layout, _ = _layout(db)
    if layout not in (LAYOUT_STATE, LAYOUT_HISTORY):
        module.fail_json(msg=f"Cannot repair {WATERMARK_TABLE}: its layout is {layout} (neither K2's nor the "
                             "runbook's).", queries=db.queries)
    in_flight = set(params["in_flight_tables"] or [])
    plans, before, after, changed = [], {}, {}, False
    for table in tables:
        if not _lock(db, table):
            plans.append({"table": table, "action": "locked", "reason": f"another remediation holds the lock of "
                                                                       f"{table}; nothing changed", "timestamp": None,
                          "sequence": None})
            continue
        rows = db.rows(STATE_ROW_SQL if layout == LAYOUT_STATE else HISTORY_ROW_SQL, {"table": table})
        row = rows[0] if rows else None
        plan = plan_repair(layout, table, row, (params["cold"] or {}).get(table),
                           (params["hot_oldest"] or {}).get(table), table in in_flight, params["tolerance_seconds"])
        statements = repair_statements(layout, plan)
        for sql, values in statements:
            db.execute(sql, values)
        if statements:
            after_rows = db.rows(STATE_ROW_SQL if layout == LAYOUT_STATE else HISTORY_ROW_SQL, {"table": table})
            before[table] = row
            after[table] = after_rows[0] if after_rows else None
            changed = True
        plans.append(plan)
    _finish(module, db, changed)
    escalate = [p for p in plans if p["action"] == "escalate"]
    return {"changed": changed, "layout": layout, "plans": plans, "escalate": escalate,
            "diff": {"before": to_json_safe(before), "after": to_json_safe(after)}}


def prune(module: AnsibleModule, db: WatermarkDB, tables: list[str]) -> dict:
    """History layout: keep the newest `keep` rows of each table (never its newest), per table, set-based."""
    keep = module.params["keep"]
    layout, _ = _layout(db)
    if layout != LAYOUT_HISTORY:
        module.fail_json(msg=f"Nothing to prune: {WATERMARK_TABLE} has the {layout} layout (one row per table on "
                             "K2; deleting would lose the watermark).", queries=db.queries)
    locked = [t for t in tables if not _lock(db, t)]
    todo = [t for t in tables if t not in locked]
    counts = {r["table_name"]: r["n"] for r in db.rows(COUNT_SQL, {"tables": todo})} if todo else {}
    deleted = db.execute(PRUNE_SQL, {"tables": todo, "keep": keep}) if todo else 0
    after = {r["table_name"]: r["n"] for r in db.rows(COUNT_SQL, {"tables": todo})} if todo else {}
    _finish(module, db, deleted > 0)
    return {"changed": deleted > 0, "layout": layout, "deleted": deleted, "locked": locked,
            "rows_before": {t: counts.get(t, 0) for t in todo}, "rows_after": {t: after.get(t, 0) for t in todo},
            "diff": {"before": {t: counts.get(t, 0) for t in todo}, "after": {t: after.get(t, 0) for t in todo}}}


def backup(module: AnsibleModule, db: WatermarkDB, tables: list[str]) -> dict:
    """A timestamped CSV dump (COPY) of the whole table, written where the module runs (the Docker host)."""
    layout, columns = _layout(db)
    if layout == LAYOUT_ABSENT:
        module.fail_json(msg=f"Nothing to back up: {WATERMARK_TABLE} does not exist.", queries=db.queries)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = os.path.join(module.params["backup_dir"], f"{WATERMARK_TABLE}-{stamp}.csv")
    if module.check_mode:
        return {"changed": True, "layout": layout, "backup_file": path, "rows": None, "sha256": None}
    os.makedirs(module.params["backup_dir"], mode=0o700, exist_ok=True)
    order = "id" if layout == LAYOUT_HISTORY else "table_name"
    buf = io.StringIO()
    sql = f"COPY (SELECT * FROM {WATERMARK_TABLE} ORDER BY {order}) TO STDOUT WITH (FORMAT csv, HEADER true)"
    with db.conn.cursor() as cur:
        db.queries.append(sql)
        cur.copy_expert(sql, buf)
    data = buf.getvalue().encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return {"changed": True, "layout": layout, "backup_file": path, "rows": max(0, data.count(b"\n") - 1),
            "sha256": hashlib.sha256(data).hexdigest(), "columns": columns}


def restore(module: AnsibleModule, db: WatermarkDB, tables: list[str]) -> dict:
    """Replace the table's rows by a backup's, in one transaction under an exclusive lock."""
    path = module.params["backup_file"]
    if module.params["in_flight_tables"]:
        module.fail_json(msg=f"Refusing to restore {WATERMARK_TABLE}: offloads in flight for "
                             f"{', '.join(module.params['in_flight_tables'])}.")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        module.fail_json(msg=f"Cannot read backup file {path}: {first_line(exc)}")
    header = data.split(b"\n", 1)[0].decode("utf-8").strip().split(",")
    layout, columns = _layout(db)
    unknown = [c for c in header if c not in columns]
    if not header or unknown:
        module.fail_json(msg=f"Backup {path} does not match {WATERMARK_TABLE} (unknown column(s) "
                             f"{', '.join(unknown) or 'none'}; layout {layout}).", queries=db.queries)
    before = db.rows(f"SELECT count(*) AS n FROM {WATERMARK_TABLE}", {})[0]["n"]
    db.execute(f"LOCK TABLE {WATERMARK_TABLE} IN ACCESS EXCLUSIVE MODE")
    db.execute(f"DELETE FROM {WATERMARK_TABLE}")
    with db.conn.cursor() as cur:
        copy = f"COPY {WATERMARK_TABLE} ({', '.join(header)}) FROM STDIN WITH (FORMAT csv, HEADER true)"
        db.queries.append(copy)
        cur.copy_expert(copy, io.StringIO(data.decode("utf-8")))
    if "id" in header:  # keep the BIGSERIAL ahead of the restored ids
        db.rows(f"SELECT setval(pg_get_serial_sequence('{WATERMARK_TABLE}', 'id'), "
                f"GREATEST((SELECT max(id) FROM {WATERMARK_TABLE}), 1)) AS id", {})
    after = db.rows(f"SELECT count(*) AS n FROM {WATERMARK_TABLE}", {})[0]["n"]
    _finish(module, db, True)
    return {"changed": True, "layout": layout, "backup_file": path, "rows_before": before, "rows_after": after,
            "diff": {"before": {"rows": before}, "after": {"rows": after, "from": path}}}


# action -> (function, read-only transaction).
ACTIONS = {"repair": (repair, False), "prune": (prune, False),
           "backup": (backup, True), "restore": (restore, False)}


def validate(module: AnsibleModule) -> list[str]:
    params = module.params
    problem = tables_problem(params["tables"])
    if problem:
        module.fail_json(msg=problem)
    if params["tolerance_seconds"] < 0:
        module.fail_json(msg=f"tolerance_seconds must be >= 0, got {params['tolerance_seconds']}.")
    if params["keep"] < 1:
        module.fail_json(msg=f"keep must be at least 1 (the newest row is the watermark), got {params['keep']}.")
    bad = unique(invalid_identifiers(params["in_flight_tables"] or []))
    if bad:
        module.fail_json(msg=f"Invalid in_flight_tables name(s) {', '.join(repr(b) for b in bad)}.")
    return unique(params["tables"])


def main() -> None:
    argument_spec = postgres_argument_spec()
    argument_spec.update(
        action={"type": "str", "required": True, "choices": list(ACTIONS)},
        tables={"type": "list", "elements": "str", "required": True},
        cold={"type": "dict", "default": {}},
        hot_oldest={"type": "dict", "default": {}},
        in_flight_tables={"type": "list", "elements": "str", "default": []},
        tolerance_seconds={"type": "float", "default": 1.0},
        keep={"type": "int", "default": 10},
        backup_dir={"type": "path"},
        backup_file={"type": "path"},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[("action", "backup", ["backup_dir"]), ("action", "restore", ["backup_file"])])
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=PSYCOPG2_IMPORT_ERROR)
    tables = validate(module)
    params = module.params
    action, readonly = ACTIONS[params["action"]]
    try:
        db = WatermarkDB(params, readonly=readonly)
    except ProbeError as exc:
        module.fail_json(msg=str(exc))
    try:
        result = action(module, db, tables)
    except SqlError as exc:
        module.fail_json(msg=f"{where(params)}: {exc}", queries=db.queries)
    except psycopg2.Error as exc:
        module.fail_json(msg=f"PostgreSQL error at {where(params)}: {first_line(exc)}", queries=db.queries)
    finally:
        try:
            db.close()
        except psycopg2.Error:
            pass
    result.setdefault("changed", False)
    module.exit_json(queries=db.queries, **to_json_safe(result))


if __name__ == "__main__":
    main()
