# -*- coding: utf-8 -*-
# PRIVATE to this project's modules: the PostgreSQL side of the watermark table - one recorded connection and the
# read-only inspection, shared by library/offload_watermark.py (the changes), library/offload_watermark_info.py and
# library/offload_diagnosis.py (the diagnosis' watermark probe). Imported as ansible.module_utils.offload_watermark_db.
from __future__ import annotations

import traceback

from ansible.module_utils.offload_common import ProbeError, first_line, invalid_identifiers
from ansible.module_utils.offload_watermark_logic import (
    COLUMNS_SQL,
    LAYOUT_ABSENT,
    SERVER_SQL,
    WATERMARK_TABLE,
    Thresholds,
    build_watermarks,
    detect_layout,
    missing_columns,
    to_utc,
    unique,
    watermark_sql,
)

try:
    import psycopg2
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError:
    psycopg2 = None  # for unit tests and a clean missing_required_lib message
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = traceback.format_exc()

APPLICATION_NAME = "ansible-offload_watermark"
STATEMENT_TIMEOUT_MS = 30000
THRESHOLD_OPTIONS = ("stale_running_minutes", "history_row_limit", "future_tolerance_seconds")


def inspect_argument_spec() -> dict:
    """The options of the inspection beyond the connection (offload_watermark's, the diagnosis' watermarks)."""
    return {"stale_running_minutes": {"type": "int", "default": 30},
            "history_row_limit": {"type": "int", "default": 100},
            "future_tolerance_seconds": {"type": "int", "default": 60}}


class SqlError(Exception):
    """An SQL statement failed; carries the statement for the message."""

    def __init__(self, query: str, error: Exception):
        super().__init__(f"Cannot execute SQL '{query}': {first_line(error)}")


def where(params: dict) -> str:
    return f"{params['login_host']}:{params['login_port']}/{params['login_db']}"


class WatermarkDB:
    """One connection to the watermark database; records every statement it runs."""

    def __init__(self, params: dict, readonly: bool):
        conn_args = {"host": params["login_host"], "port": params["login_port"], "user": params["login_user"],
                     "dbname": params["login_db"], "connect_timeout": params["connect_timeout"],
                     "application_name": APPLICATION_NAME, "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"}
        if params.get("login_password"):
            conn_args["password"] = params["login_password"]
        try:
            self.conn = psycopg2.connect(**conn_args)
        except psycopg2.Error as exc:
            raise ProbeError(f"Cannot connect to PostgreSQL at {where(params)} as {params['login_user']}: "
                             f"{first_line(exc)}") from None
        self.conn.set_session(readonly=readonly, autocommit=False)
        self.queries = []

    def _run(self, cur, sql: str, params: dict | None) -> None:
        """Record the statement with its bound values, then run it; an error names the statement."""
        text = cur.mogrify(sql, params).decode("utf-8", errors="replace")
        self.queries.append(text)
        try:
            cur.execute(sql, params)
        except psycopg2.Error as exc:
            raise SqlError(text, exc) from exc

    def rows(self, sql: str, params: dict) -> list[dict]:
        with self.conn.cursor() as cur:
            self._run(cur, sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]

    def execute(self, sql: str, params: dict | None = None) -> int:
        """A statement whose rows are not fetched (a set-based DELETE of a million rows stays on the server)."""
        with self.conn.cursor() as cur:
            self._run(cur, sql, params)
            return cur.rowcount

    def close(self) -> None:
        try:
            self.conn.rollback()  # read-only actions end here; write actions commit before
        finally:
            self.conn.close()


def tables_problem(tables: list | None) -> str | None:
    """The one-line error of table names that are not plain identifiers, else None."""
    bad = unique(invalid_identifiers(tables or []))
    if bad:
        return (f"Invalid table name(s) {', '.join(repr(b) for b in bad)}: only letters, digits and underscores are "
                "accepted (at most 63 characters, not starting with a digit).")
    return None


def inspect_problem(params: dict) -> str | None:
    """The one-line error of bad inspection input (table names, thresholds), else None."""
    problem = tables_problem(params["tables"])
    if problem:
        return problem
    for name in THRESHOLD_OPTIONS:
        if params[name] < 0:
            return f"{name} must be >= 0, got {params[name]}."
    return None


def inspect(reporter, db: WatermarkDB, tables: list[str]) -> dict:
    """Layout, every listed table's watermark and its anomalies, judged by the database server's clock."""
    params = reporter.params
    server = db.rows(SERVER_SQL, {"table": WATERMARK_TABLE})[0]
    now, schema = to_utc(server["server_time"]), server["table_schema"]
    columns = None
    if schema is not None:
        columns = [r["column_name"] for r in db.rows(COLUMNS_SQL, {"schema": schema, "table": WATERMARK_TABLE})]
    layout = detect_layout(columns)
    rows = []
    sql = watermark_sql(layout, columns)
    if sql is not None and tables:
        rows = db.rows(sql, {"tables": tables})
    limits = Thresholds(stale_running_minutes=params["stale_running_minutes"],
                        history_row_limit=params["history_row_limit"],
                        future_tolerance_seconds=params["future_tolerance_seconds"])
    watermarks, anomalies = build_watermarks(layout, rows, tables, now, limits)
    if layout == LAYOUT_ABSENT:
        reporter.warn(f"The table {WATERMARK_TABLE} does not exist in database {params['login_db']}.")
    return {"layout": layout, "schema": schema, "columns": columns or [],
            "missing_columns": missing_columns(layout, columns), "server_time": now, "watermarks": watermarks,
            "anomalies": anomalies}


def read_watermarks(reporter) -> dict:
    """The diagnosis' watermark probe: validate, connect read-only, inspect; ProbeError with the one-line finding."""
    params = reporter.params
    problem = inspect_problem(params)
    if problem:
        raise ProbeError(problem)
    if not HAS_PSYCOPG2:
        raise ProbeError("Failed to import the required Python library (psycopg2) on the control node.")
    db = WatermarkDB(params, readonly=True)
    try:
        result = inspect(reporter, db, unique(params["tables"]))
    except SqlError as exc:
        raise ProbeError(f"{where(params)}: {exc}") from None
    except psycopg2.Error as exc:
        raise ProbeError(f"PostgreSQL error at {where(params)}: {first_line(exc)}") from None
    finally:
        try:
            db.close()
        except psycopg2.Error:
            pass
    return {**result, "queries": db.queries}
