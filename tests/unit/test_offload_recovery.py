"""Whether a table recovered after a verifying run that COMPLETED: its watermark advanced, or it is quiet as K2's job
leaves a quiet table (status `running`, watermark unchanged) with no hot row it should have read."""
from __future__ import annotations

from datetime import datetime, timezone

import offload_recovery
import pytest

BEFORE = "2026-12-07T10:00:00+00:00"
LATER = "2026-12-07T10:15:00+00:00"


@pytest.mark.parametrize("after, pending, recovered, how", [
    ({"timestamp": LATER, "status": "success", "failure_count": 0}, 0, True, "advanced"),
    ({"timestamp": LATER, "status": "success", "failure_count": 0}, None, True, "advanced"),
    # K2's "No new rows to offload. Exiting cleanly.": running, unchanged, failure_count as earlier failures left it
    ({"timestamp": BEFORE, "status": "running", "failure_count": 3}, 0, True, "quiet"),
    # the same row with rows the job should have read: they were read and not recorded (update failure exits 0)
    ({"timestamp": BEFORE, "status": "running", "failure_count": 0}, 12, False, None),
    ({"timestamp": BEFORE, "status": "running", "failure_count": 0}, None, False, None),  # nobody counted
    ({"timestamp": LATER, "status": "failed", "failure_count": 1}, 0, False, None),
    ({"timestamp": LATER, "status": "failed", "failure_count": 0}, 0, False, None),  # failed, whatever else it says
    ({"timestamp": BEFORE, "status": "success", "failure_count": 0}, 0, False, None),  # not touched by the run
    ({"timestamp": LATER, "status": "success", "failure_count": 2}, 0, False, None),
    ({"timestamp": None, "status": None, "failure_count": None}, 5, False, None),
])
def test_table_recovery(after, pending, recovered, how):
    verdict = offload_recovery.table_recovery("bronze_trades_binance", BEFORE, after, pending)
    assert (verdict["recovered"], verdict["how"]) == (recovered, how)
    assert verdict["table"] == "bronze_trades_binance" and verdict["reason"].startswith("bronze_trades_binance: ")


def test_a_table_without_a_watermark_before_recovers_by_getting_one():
    after = {"timestamp": BEFORE, "status": "success", "failure_count": 0}
    assert offload_recovery.table_recovery("t", None, after, 0)["how"] == "advanced"


def test_the_reasons_name_what_was_seen():
    stuck = offload_recovery.table_recovery("t", BEFORE, {"timestamp": BEFORE, "status": "running"}, 12)
    assert stuck["reason"] == (f"t: 12 hot row(s) after the watermark {BEFORE} were not recorded (status running, "
                               "failure_count 0)")
    quiet = offload_recovery.table_recovery("t", BEFORE, {"timestamp": BEFORE, "status": "running"}, 0)
    assert "not a fault" in quiet["reason"]
    failed = offload_recovery.table_recovery("t", BEFORE, {"timestamp": LATER, "status": "failed", "failure_count": 2}, 0)
    assert failed["reason"] == "t: status failed, failure_count 2"
    advanced = offload_recovery.table_recovery("t", BEFORE, {"timestamp": LATER, "status": "success"}, 0)
    assert advanced["reason"] == f"t: watermark {BEFORE} -> {LATER}"
    untouched = offload_recovery.table_recovery("t", BEFORE, {"timestamp": BEFORE, "status": "success"}, 0)
    assert untouched["reason"] == f"t: watermark {BEFORE} did not advance from {BEFORE} (status success, failure_count 0)"


def test_the_run_must_have_read_rows_up_to_its_start_less_k2s_buffer():
    assert offload_recovery.pending_until("2026-12-07T10:20:00Z") == datetime(2026, 12, 7, 10, 15, tzinfo=timezone.utc)
    assert offload_recovery.pending_until("2026-12-07T10:20:00+01:00", 0) == datetime(2026, 12, 7, 9, 20,
                                                                                        tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        offload_recovery.pending_until("yesterday")
