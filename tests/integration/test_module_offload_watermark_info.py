"""offload_watermark_info through real ansible-playbook against the lab's PostgreSQL.

Read-only: nothing here writes to the lab (another process may be injecting faults, so values such as status,
failure_count or the watermark itself can change between runs; the assertions only rely on what a read-only
inspection of K2's state layout guarantees). The lab's `lab` fixture is deliberately not used: it clears faults.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg2
import pytest

TESTS = Path(__file__).resolve().parent.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import offload_watermark_logic as L  # noqa: E402
from ansible_run import ROOT, run_module, run_playbook  # noqa: E402

pytestmark = pytest.mark.beside_the_lab  # see tests/conftest.py

HOST, PORT, DB, USER = "127.0.0.1", 15432, "prefect", "prefect"
PASSWORD = "k2-lab-prefect"
LAB = {"login_host": HOST, "login_port": PORT, "login_password": PASSWORD}
BRONZE = ["bronze_trades_binance", "bronze_trades_kraken", "bronze_trades_coinbase"]
UNKNOWN = "no_such_table_k2_test"
MODULE = "offload_watermark_info"
PER_TABLE_KEYS = {"exists", "timestamp", "sequence", "status", "failure_count", "last_error_message",
                  "last_successful_run", "updated_at", "created_at", "last_offload_row_count",
                  "last_run_duration_seconds", "row_count", "lag_minutes", "anomalies"}


def _iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0), f"not UTC: {value}"
    return parsed


def _without_invocation(result: dict) -> str:
    return json.dumps({k: v for k, v in result.items() if k != "invocation"})


def _one_clean_line(msg: str) -> None:
    assert msg and "\n" not in msg.strip(), msg
    assert "Traceback" not in msg and 'File "' not in msg, msg


@pytest.fixture(scope="module")
def inspected() -> dict:
    return run_module(MODULE, {**LAB, "tables": BRONZE + [UNKNOWN]})


@pytest.fixture(scope="module")
def inspected_check() -> dict:
    return run_module(MODULE, {**LAB, "tables": BRONZE + [UNKNOWN]}, check=True)


# --- state layout, rows ----------------------------------------------------------------------------------------

def test_inspect_reads_k2_state_layout(inspected):
    r = inspected
    assert not r.get("failed"), r.get("msg")
    assert r["changed"] is False
    assert r["layout"] == "state", (r["layout"], r["columns"])
    assert r["schema"] == "public"
    assert set(L.STATE_REQUIRED + L.STATE_OPTIONAL) <= set(r["columns"]) and r["missing_columns"] == []
    server = _iso(r["server_time"])
    assert abs((datetime.now(timezone.utc) - server).total_seconds()) < 600  # same machine, roughly same clock


def test_bronze_rows_exist_with_consistent_values(inspected):
    r = inspected
    server = _iso(r["server_time"])
    assert set(r["watermarks"]) == set(BRONZE + [UNKNOWN])  # (the json callback sorts keys: no order to check)
    for table in BRONZE:
        wm = r["watermarks"][table]
        assert set(wm) == PER_TABLE_KEYS
        assert wm["exists"] is True and wm["row_count"] == 1, (table, wm)
        assert isinstance(wm["sequence"], int)
        assert wm["status"] in ("initialized", "running", "success", "failed"), wm["status"]
        ts = _iso(wm["timestamp"])
        assert wm["lag_minutes"] == pytest.approx((server - ts).total_seconds() / 60, abs=0.01)
        for key in ("updated_at", "created_at", "last_successful_run"):
            if wm[key] is not None:
                _iso(wm[key])
        assert set(wm["anomalies"]) <= set(L.ANOMALY_CODES) - {"missing_row", "unknown_layout", "history_bloat"}
        # whatever faults are active, the codes follow from the values reported
        assert ("failed" in wm["anomalies"]) == (wm["status"] == "failed")
        assert ("consecutive_failures" in wm["anomalies"]) == ((wm["failure_count"] or 0) >= 3)
        assert ("initial_watermark" in wm["anomalies"]) == (ts <= L.EPOCH)


def test_unknown_table_is_a_missing_row_finding(inspected):
    wm = inspected["watermarks"][UNKNOWN]
    assert wm["exists"] is False and wm["row_count"] == 0 and wm["timestamp"] is None
    assert wm["anomalies"] == ["missing_row"]
    found = [a for a in inspected["anomalies"] if a["table"] == UNKNOWN]
    assert [a["code"] for a in found] == ["missing_row"]
    assert "Watermark not found for table: " + UNKNOWN in found[0]["detail"]


def test_flat_anomalies_match_per_table_codes(inspected):
    flat = inspected["anomalies"]
    for a in flat:
        assert set(a) == {"table", "code", "detail"} and all(isinstance(v, str) and v for v in a.values())
    for table, wm in inspected["watermarks"].items():
        assert [a["code"] for a in flat if a["table"] == table] == wm["anomalies"]


def test_queries_are_reported_with_bound_values(inspected):
    queries = inspected["queries"]
    assert len(queries) == 3 and all(q.startswith("SELECT ") for q in queries)
    assert "to_regclass('offload_watermarks')" in queries[0]
    assert "information_schema.columns" in queries[1]
    assert all(f"'{t}'" in queries[2] for t in BRONZE + [UNKNOWN])  # bound as an ARRAY literal by the driver


def test_check_mode_gives_the_same_answer(inspected, inspected_check):
    a, b = inspected, inspected_check
    assert not b.get("failed"), b.get("msg")
    assert b["changed"] is False
    for key in ("layout", "schema", "columns", "missing_columns"):
        assert a[key] == b[key]
    assert set(a["watermarks"]) == set(b["watermarks"])
    for table in a["watermarks"]:
        assert a["watermarks"][table]["exists"] == b["watermarks"][table]["exists"]
        assert set(a["watermarks"][table]) == set(b["watermarks"][table])
    assert len(b["queries"]) == 3


def test_password_never_in_the_result(inspected, inspected_check):
    for result in (inspected, inspected_check):
        text = _without_invocation(result)
        assert PASSWORD not in text
        assert "********" not in text  # Ansible's no_log masking would mean the module echoed the password
        args = result.get("invocation", {}).get("module_args", {})
        if args:
            assert args["login_password"] != PASSWORD


# --- failures ----------------------------------------------------------------------------------------------------

def test_hostile_table_names_fail_before_any_sql():
    hostile = ["x'; DROP TABLE offload_watermarks; --", "bronze_trades_binance;", "ünïcode", "abc\n", "a" * 64]
    r = run_module(MODULE, {**LAB, "tables": ["bronze_trades_binance"] + hostile})
    assert r.get("failed") is True
    msg = r["msg"]
    _one_clean_line(msg)
    assert msg.startswith("Invalid table name(s) ")
    for name in hostile:
        assert repr(name) in msg, (name, msg)
    assert "'bronze_trades_binance'," not in msg  # the valid name is not blamed
    assert "queries" not in r  # failed during validation: nothing was sent to the server


def test_wrong_password_fails_cleanly_without_echoing_it():
    wrong = "Wr0ng-pw-7c1f9e"
    r = run_module(MODULE, {**LAB, "login_password": wrong, "tables": BRONZE})
    assert r.get("failed") is True
    msg = r["msg"]
    _one_clean_line(msg)
    assert msg.startswith(f"Cannot connect to PostgreSQL at {HOST}:{PORT}/{DB} as {USER}: ")
    assert "authentication" in msg
    text = _without_invocation(r)
    assert wrong not in text and PASSWORD not in text and "********" not in text


def test_unreachable_server_fails_with_a_clear_message():
    r = run_module(MODULE, {**LAB, "login_port": 1, "connect_timeout": 3, "tables": BRONZE})
    assert r.get("failed") is True
    msg = r["msg"]
    _one_clean_line(msg)
    assert msg.startswith(f"Cannot connect to PostgreSQL at {HOST}:1/{DB} as {USER}: ")
    assert "refused" in msg.lower() or "timeout" in msg.lower(), msg
    assert PASSWORD not in _without_invocation(r)


def test_missing_psycopg2_names_the_library():
    """The module on a Python without psycopg2 (Debian's /usr/bin/python3 here) fails with missing_required_lib."""
    interpreter = "/usr/bin/python3"
    probe = os.popen(f"{interpreter} -c 'import psycopg2' 2>&1").read()
    if not os.path.exists(interpreter) or "No module named" not in probe:
        pytest.skip(f"{interpreter} missing or has psycopg2")
    play = [{"name": "t", "hosts": "k2_docker_hosts", "gather_facts": False,
             "vars": {"ansible_python_interpreter": interpreter},
             "tasks": [{"name": "m", MODULE: {**LAB, "tables": BRONZE}, "ignore_errors": True}]}]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=ROOT / "playbooks", delete=False) as f:
        json.dump(play, f)
    try:
        _, out, stderr = run_playbook(f.name)
    finally:
        os.unlink(f.name)
    r = next(iter(out["plays"][0]["tasks"][0]["hosts"].values()))
    assert r.get("failed") is True
    assert "psycopg2" in r["msg"] and "Failed to import the required Python library" in r["msg"], r["msg"]


# --- the layouts' SQL on the real engine, without touching the lab's table --------------------------------------
# A CTE named offload_watermarks shadows the real table for the unqualified name the module's SQL uses, so the
# history layout and a stripped-down state table are exercised on PostgreSQL itself in a read-only transaction.

@pytest.fixture(scope="module")
def cursor():
    conn = psycopg2.connect(host=HOST, port=PORT, dbname=DB, user=USER, password=PASSWORD, connect_timeout=5)
    conn.set_session(readonly=True)
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.rollback()
        conn.close()


def _run(cur, cte: str, sql: str, tables: list[str]) -> list[dict]:
    cur.execute(f"WITH {cte} {sql}", {"tables": tables})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def test_history_sql_picks_the_newest_row_and_counts_all(cursor):
    cte = ("offload_watermarks (id, table_name, max_timestamp, sequence_number, created_at) AS (VALUES "
           "(1, 'a', timestamptz '1970-01-01 00:00:00+00', 0::bigint, timestamptz '2026-01-01 00:00:00+00'), "
           "(2, 'a', timestamptz '2026-01-01 10:00:00+00', 5::bigint, timestamptz '2026-01-01 10:05:00+00'), "
           "(3, 'a', timestamptz '2026-01-01 09:00:00+00', 4::bigint, timestamptz '2026-01-01 10:05:00+00'), "
           "(4, 'b', timestamptz '2026-01-02 00:00:00+00', 9::bigint, timestamptz '2026-01-02 00:05:00+00'), "
           "(5, 'c', timestamptz '2026-01-03 00:00:00+00', 1::bigint, timestamptz '2026-01-03 00:05:00+00'))")
    rows = _run(cursor, cte, L.watermark_sql("history", L.HISTORY_REQUIRED), ["a", "b", "zz"])
    by = {r["table_name"]: r for r in rows}
    assert set(by) == {"a", "b"}  # c not requested, zz has no row
    assert (by["a"]["id"], by["a"]["row_count"], by["a"]["sequence_number"]) == (3, 3, 4)  # created_at tie: higher id
    assert by["b"]["row_count"] == 1
    now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    wms, flat = L.build_watermarks("history", rows, ["a", "b", "zz"], now, L.Thresholds(history_row_limit=2))
    assert wms["a"]["anomalies"] == ["history_bloat"] and wms["a"]["timestamp"] == datetime(2026, 1, 1, 9, 0,
                                                                                             tzinfo=timezone.utc)
    assert wms["b"]["anomalies"] == ["future_watermark"]
    assert wms["zz"]["anomalies"] == ["missing_row"]


def test_state_sql_on_a_table_lacking_optional_columns(cursor):
    columns = ["table_name", "last_offload_timestamp", "last_offload_max_sequence", "status"]
    cte = ("offload_watermarks (table_name, last_offload_timestamp, last_offload_max_sequence, status) AS (VALUES "
           "('a', timestamptz '1970-01-01 00:00:00+00', 0::bigint, 'running'))")
    rows = _run(cursor, cte, L.watermark_sql("state", columns), ["a"])
    assert len(rows) == 1 and rows[0]["row_count"] == 1 and rows[0]["updated_at"] is None
    wms, _ = L.build_watermarks("state", rows, ["a"], datetime.now(timezone.utc))
    assert wms["a"]["anomalies"] == ["initial_watermark", "stuck_running"]  # running, updated_at unknown
