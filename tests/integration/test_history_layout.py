"""The runbook's append-only watermark layout (lab option K2_LAB_WATERMARK_LAYOUT=history).

Runs last: the session fixture history_lab (conftest.py) rebuilds the lab in the history layout once, for every
test that uses it (they are ordered last), and restores the default state layout at the end of the session. make
test runs them on the twin standing in for the lab (on_a_twin), which is rebuilt, so the main lab is never down.
"""
from __future__ import annotations

import sys

import faults
import lab_clients
import offload_watermark_logic
import pytest

sys.modules.setdefault("ansible.module_utils.offload_watermark_logic", offload_watermark_logic)
import offload_watermark_repair  # noqa: E402
from ansible_run import run_module, run_molecule  # noqa: E402
from conftest import TABLE  # noqa: E402
from stack import LabError  # noqa: E402

pytestmark = pytest.mark.on_a_twin  # see tests/conftest.py


def _pg(lab) -> dict:
    return {"login_host": "127.0.0.1", "login_port": lab.cfg.port_postgres, "login_password": lab.cfg.db_password}


def _rows(lab, table=TABLE) -> int:
    with lab_clients.pg(lab.cfg) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM offload_watermarks WHERE table_name = %s", (table,))
        return cur.fetchone()[0]


def test_each_successful_offload_appends_a_watermark_row(history_lab):
    before = _rows(history_lab)
    assert history_lab.cycle()["state_type"] == "COMPLETED"
    assert _rows(history_lab) == before + 1
    assert history_lab.truth()["cold_rows"] > 0
    history_lab.assert_no_row_lost_or_doubled()


def test_history_bloat_fault_grows_past_the_runbook_threshold(history_lab):
    history_lab.fault("watermark-history-bloat")
    assert _rows(history_lab) > 100  # the runbook's "HAVING COUNT(*) > 100" finds it
    assert history_lab.cycle()["state_type"] == "COMPLETED"
    assert history_lab.truth()["duplicated"] == 0
    history_lab.clear()
    assert _rows(history_lab) == 1


def test_state_only_fault_is_refused_with_a_clear_message(history_lab):
    with pytest.raises(LabError, match="needs the state watermark layout"):
        faults.inject(history_lab.dc, history_lab.cfg, "watermark-stuck-running", TABLE)


def test_runbook_global_cleanup_would_destroy_other_tables_history_and_per_table_prune_does_not(history_lab):
    lab = history_lab
    # The bronze tables offload every 15 min; a daily gold table writes a row a day: the frequent tables' recent
    # history outnumbers the rare tables' last row. Here: 60 rows each, all newer than the other tables' rows.
    bronze = ["bronze_trades_binance", "bronze_trades_kraken", "bronze_trades_coinbase"]
    with lab_clients.pg(lab.cfg) as conn, conn.cursor() as cur:
        cur.execute("UPDATE offload_watermarks SET created_at = created_at - INTERVAL '1 day' "
                    "WHERE table_name <> ALL(%s)", (bronze,))  # the rare tables last wrote a day ago
        cur.execute("INSERT INTO offload_watermarks (table_name, max_timestamp, sequence_number, created_at) "
                    "SELECT t, w.max_timestamp, w.sequence_number, NOW() - g * INTERVAL "
                    "'1 second' FROM unnest(%s) t, generate_series(1, 60) g, LATERAL (SELECT max_timestamp, "
                    "sequence_number FROM offload_watermarks WHERE table_name = t ORDER BY created_at DESC, id DESC "
                    "LIMIT 1) w", (bronze,))
    before, newest = lab.history_row_counts(), lab.history_newest_ids()
    assert len(before) >= 10  # K2's ten tables are seeded
    # The runbook's weekly "keep last 50", run and rolled back: tables with older rows lose their whole history,
    # including the newest row, which is their watermark (every job then fails "Watermark not found").
    with lab_clients.pg(lab.cfg) as conn, conn.cursor() as cur:
        cur.execute(offload_watermark_repair.RUNBOOK_GLOBAL_CLEANUP_SQL)
        cur.execute("SELECT table_name, count(*) FROM offload_watermarks GROUP BY table_name")
        after_global = dict(cur.fetchall())
        conn.rollback()
    assert sum(after_global.values()) == 50
    assert len(set(before) - set(after_global)) >= 7, "the rare tables lose every row, their watermark included"

    result = run_module("offload_watermark", {"action": "prune", "keep": 10, "tables": list(before), **_pg(lab)})
    assert result["changed"] and result["deleted"] == sum(max(0, n - 10) for n in before.values()), result
    after = lab.history_row_counts()
    assert after == {t: min(n, 10) for t, n in before.items()}  # every table keeps its own history
    assert lab.history_newest_ids() == newest  # and its watermark
    again = run_module("offload_watermark", {"action": "prune", "keep": 10, "tables": list(before), **_pg(lab)})
    assert not again["changed"] and again["deleted"] == 0
    lab.clear()


def test_molecule_watermark_repair_in_the_history_layout(history_lab):
    """molecule/offload_watermark_repair_history: bloat fault, --check changes nothing, converge prunes per table,
    idempotence, verify (a run appends its row, truth clean, diagnosis healthy)."""
    run_molecule("offload_watermark_repair_history")
