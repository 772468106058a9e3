"""playbooks/watermark_maintenance.yml (runbook "Prevention - weekly watermark cleanup") end to end on the lab.

- State layout (the lab's default, K2's real table): nothing is ever pruned or backed up, the rows are unchanged;
  the first test only reads (it may run beside other tests); the second injects a stuck row (clean_lab).
- History layout (the runbook's append-only table, the lab rebuilt in it by the session fixture `history_lab` of
  tests/integration/conftest.py, shared with test_history_layout.py): each selected table keeps its newest N rows,
  the other tables none less, every table's newest row (its watermark) stays, the backup is written first and
  holds the whole table, --check changes nothing, a second run has nothing to do. `make test` runs it on the twin
  standing in for the lab (on_a_twin), with test_history_layout.py: one rebuild, and the main lab never goes down.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import lab_clients
import labctl
import pytest
import yaml
from config import LabConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ansible_run import run_playbook  # noqa: E402
from conftest import CRASH_MARKERS, TABLE  # noqa: E402

PLAYBOOK = "playbooks/watermark_maintenance.yml"


def maintenance(tmp_path: Path, *extra: str, check: bool = False, name: str = "report") -> tuple[dict, str, dict]:
    """(the JSON report, all output as text, the play recap per host) of one run; backups go to tmp_path/backups."""
    path = tmp_path / f"{name}.json"
    rc, out, stderr = run_playbook(PLAYBOOK, *(["--check", "--diff"] if check else []),
                                   "-e", f"watermark_maintenance_report_path={path}",
                                   "-e", f"watermark_maintenance_backup_dir={tmp_path / 'backups'}", *extra)
    text = json.dumps(out) + stderr
    assert rc == 0, text[-3000:]
    for marker in CRASH_MARKERS:
        assert marker not in text
    assert LabConfig().db_password not in text  # the password never shows
    return json.loads(path.read_text()), text, out.get("stats", {})


def identities(cfg: LabConfig) -> list[tuple]:
    """(table_name, created_at) of every row: an offload running meanwhile (another test's) updates its row, but a
    prune, a delete or a re-creation would change these."""
    with lab_clients.pg(cfg) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name, created_at FROM offload_watermarks ORDER BY 1, 2")
        return cur.fetchall()


def unchanged(stats: dict) -> bool:
    return all(host["changed"] == 0 and host["failures"] == 0 for host in stats.values())


CONFIGURED = [t["source"] for t in yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "inventory" / "group_vars" / "all" / "k2.yml").read_text())["k2_tables"]]


# --- state layout -------------------------------------------------------------------------------------------

def test_state_layout_is_checked_never_changed(tmp_path):
    """Read-only: the lab is not cleared (no `lab` fixture) and nothing is written to it."""
    cfg = LabConfig()
    if labctl.status(cfg, None) != 0:
        pytest.fail("the lab is not healthy: run `make lab-up` and `make lab-status`")
    if cfg.watermark_layout != "state":
        pytest.skip("the lab runs the history layout")
    before = identities(cfg)
    report, _, stats = maintenance(tmp_path)
    assert report["layout"] == "state" and report["prune"] is None and "nothing to prune" in report["reason"]
    assert report["status"] in ("clean", "attention") and report["check_mode"] is False
    assert sorted(report["tables"]) == sorted(CONFIGURED)
    assert all(f["advice"] and f["table"] in CONFIGURED for f in report["findings"])
    assert (report["status"] == "attention") == any(f["action_needed"] for f in report["findings"])
    assert report["summary_lines"][0].startswith(f"WATERMARK MAINTENANCE {report['status'].upper()}: layout state")
    assert unchanged(stats) and not (tmp_path / "backups").exists()  # no backup: nothing is to change
    assert identities(cfg) == before
    checked, _, check_stats = maintenance(tmp_path, check=True, name="check")
    assert checked["layout"] == "state" and checked["check_mode"] is True and unchanged(check_stats)
    assert identities(cfg) == before


def test_state_layout_stuck_row_is_reported_with_what_to_do_and_left_alone(clean_lab, tmp_path):
    lab = clean_lab
    lab.fault("watermark-stuck-running")
    before = lab.wm()
    report, text, stats = maintenance(tmp_path)
    assert report["status"] == "attention" and unchanged(stats)
    stuck = [f for f in report["findings"] if f["code"] == "stuck_running"]
    assert [f["table"] for f in stuck] == [TABLE] and stuck[0]["action_needed"]
    assert "remediate_scenarios=4" in stuck[0]["advice"] and "no offload of" in stuck[0]["advice"]
    assert f"ACTION {TABLE} stuck_running:" in text
    assert lab.wm() == before  # reported, not changed


# --- history layout -----------------------------------------------------------------------------------------

EXTRA = {"bronze_trades_binance": 150, "bronze_trades_kraken": 45, "bronze_trades_coinbase": 60}
SELECTED = ["bronze_trades_binance", "bronze_trades_kraken", "silver_trades"]  # coinbase is not maintained
KEEP = 20


def _add_history(lab, extra: dict) -> None:
    """Older rows behind each table's newest one (which stays the watermark), a minute apart."""
    with lab_clients.pg(lab.cfg) as conn, conn.cursor() as cur:
        for table, n in extra.items():
            cur.execute("INSERT INTO offload_watermarks (table_name, max_timestamp, sequence_number, created_at) "
                        "SELECT w.table_name, w.max_timestamp - g * INTERVAL '1 minute', w.sequence_number, "
                        "w.created_at - g * INTERVAL '1 minute' FROM generate_series(1, %s) g, (SELECT * FROM "
                        "offload_watermarks WHERE table_name = %s ORDER BY created_at DESC, id DESC LIMIT 1) w",
                        (n, table))


@pytest.mark.on_a_twin  # see tests/conftest.py
def test_history_layout_keeps_the_newest_n_per_table_after_a_backup(history_lab, tmp_path):
    lab = history_lab
    _add_history(lab, EXTRA)
    before, newest = lab.history_row_counts(), lab.history_newest_ids()
    assert len(before) >= 10 and all(before[t] > KEEP for t in EXTRA) and before["silver_trades"] <= KEEP
    expected = sum(max(0, before[t] - KEEP) for t in SELECTED)
    args = ("-e", f"watermark_maintenance_keep={KEEP}", "-e", f"watermark_maintenance_tables={','.join(SELECTED)}")
    backups = tmp_path / "backups"

    # --check: the exact plan (the DELETE runs and is rolled back), no backup written, no row changed.
    plan, text, _ = maintenance(tmp_path, *args, check=True, name="check")
    assert plan["layout"] == "history" and plan["status"] == "would_prune", plan["summary_lines"]
    assert plan["prune"]["would_delete"] == expected and plan["prune"]["deleted"] == 0
    assert plan["prune"]["backup"]["written"] is False and not backups.exists()
    assert lab.history_row_counts() == before
    assert f"would delete {expected} history row(s)" in text

    # The run: a backup of the whole table first, then each selected table keeps its newest KEEP rows.
    report, text, stats = maintenance(tmp_path, *args)
    assert report["status"] == "pruned" and report["prune"]["deleted"] == expected, report["summary_lines"]
    after = lab.history_row_counts()
    assert after == {t: min(n, KEEP) if t in SELECTED else n for t, n in before.items()}  # the others untouched
    assert after["bronze_trades_coinbase"] == before["bronze_trades_coinbase"] > KEEP
    assert lab.history_newest_ids() == newest  # every table's watermark is still its newest row
    backup = report["prune"]["backup"]
    files = list(backups.iterdir())
    assert [f.name for f in files] == [Path(backup["file"]).name] and backup["written"]
    data = files[0].read_bytes()
    assert hashlib.sha256(data).hexdigest() == backup["sha256"] and files[0].stat().st_mode & 0o777 == 0o600
    assert backup["rows"] == data.count(b"\n") - 1 == sum(before.values())  # the table as it was before the prune
    assert any(s["changed"] > 0 for s in stats.values())

    # Again: nothing to prune, so no second backup.
    again, _, again_stats = maintenance(tmp_path, *args, name="again")
    assert again["status"] == "clean" and again["prune"]["deleted"] == 0 and again["prune"]["backup"] is None
    assert unchanged(again_stats) and len(list(backups.iterdir())) == 1 and lab.history_row_counts() == after
    lab.clear()
