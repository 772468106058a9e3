"""The runbook's append-only watermark layout (lab option K2_LAB_WATERMARK_LAYOUT=history).

Runs last (file order): it rebuilds the lab in the history layout and restores the default state layout.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import faults
import lab_clients
from conftest import TABLE, Lab
from stack import PROJECT_ROOT, LabError

LABCTL = [sys.executable, str(PROJECT_ROOT / "lab" / "labctl.py")]


def _rebuild(layout: str) -> None:
    env = {**os.environ, "K2_LAB_WATERMARK_LAYOUT": layout}
    for cmd in (["down"], ["up"]):
        subprocess.run(LABCTL + cmd, check=True, capture_output=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def history_lab():
    _rebuild("history")
    os.environ["K2_LAB_WATERMARK_LAYOUT"] = "history"
    try:
        yield Lab()
    finally:
        os.environ.pop("K2_LAB_WATERMARK_LAYOUT", None)
        _rebuild("state")


def _rows(lab, table=TABLE) -> int:
    with lab_clients.pg(lab.cfg) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM offload_watermarks WHERE table_name = %s", (table,))
        return cur.fetchone()[0]


def test_each_successful_offload_appends_a_watermark_row(history_lab):
    before = _rows(history_lab)
    assert history_lab.cycle()["state_type"] == "COMPLETED"
    assert _rows(history_lab) == before + 1
    truth = history_lab.truth()
    assert truth["cold_rows"] > 0 and truth["missing"] == 0 and truth["duplicated"] == 0, truth


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
