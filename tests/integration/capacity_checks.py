"""Helpers for the capacity report's integration tests (playbooks/capacity_report.yml), also for other test files:
assert_parallel_offload_recommended() is meant for the volume-spike fault's test (tests/integration/test_lab_faults.py),
called while the spike is in the hot tier, i.e. after `lab.fault("volume-spike")` and before `lab.clear()`.

Read-only: the playbook runs with --check and only reads ClickHouse, Prefect and the Docker API."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ansible_run import run_playbook

PLAYBOOK = "playbooks/capacity_report.yml"
DEFAULT_SUSTAINED_HOURS = 3  # the playbook's default (capacity_report_sustained_hours)


def capacity_report(*extra: str, timeout: float = 300) -> tuple[dict, str, str, dict]:
    """Run the playbook in --check: (its JSON report, the HTML chart written next to it, all its output as text, the
    play recap per host)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "capacity.json"
        rc, out, stderr = run_playbook(PLAYBOOK, "--check", "-e", f"capacity_report_path={path}", *extra,
                                       timeout=timeout)
        text = json.dumps(out) + stderr
        assert rc == 0, f"capacity_report.yml failed: {text[-3000:]}"
        chart = path.with_suffix(".html")
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["capacity.html", "capacity.json"]
        return json.loads(path.read_text()), chart.read_text(), text, out.get("stats", {})


def assert_parallel_offload_recommended(table: str) -> dict:
    """The spiked table - and only it - gets the parallel-offload recommendation when one hour above the volume
    threshold is asked to count as sustained (capacity_report_sustained_hours=1), with the numbers behind it; and
    the spike is too short to be sustained under the default rule (3 consecutive hours), which therefore would not
    recommend it. Returns the report."""
    report, _, _, _ = capacity_report("-e", "capacity_report_days=1", "-e", "capacity_report_sustained_hours=1")
    parallel = [r for r in report["recommendations"] if r["rule"] == "parallel_offload"]
    assert [r["subject"] for r in parallel] == [table], report["recommendations"]
    evidence = parallel[0]["evidence"]
    assert evidence["max"] > evidence["threshold"] and evidence["longest_run_min"] > evidence["threshold"], evidence
    assert evidence["sustained_hours"] == 1 and 1 <= evidence["longest_run_hours"] < DEFAULT_SUSTAINED_HOURS, evidence
    assert f"above {evidence['threshold']:,} rows/hour" in parallel[0]["reason"]
    assert report["tables"][table]["volume"]["max"] == evidence["max"]
    return report
