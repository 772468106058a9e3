"""make soak's short seed, in make test: the alert-driven loop alone against a fault injected during its own
remediation, with the schedule live (lab/soak.py; the README shows a long run). Seed 4 draws ClickHouse disconnected,
then the watermark row deleted while the loop's remediation of the first holds the lock."""
from __future__ import annotations

import json
from pathlib import Path

import soak

REPORT = Path(__file__).resolve().parents[2] / "reports" / "soak-4"


def test_a_seeded_soak_heals_or_rightly_escalates_and_loses_or_doubles_no_row(clean_lab):
    rc = soak.main(["--seed", "4", "--faults", "2"])
    report = json.loads(REPORT.with_suffix(".json").read_text())
    text = REPORT.with_suffix(".md").read_text()
    assert rc == 0, text
    assert (report["lost"], report["doubled"]) == (0, 0), text
    episode = report["episodes"][0]
    assert episode["kind"] == "during a remediation" and episode["faults"][0] == "clickhouse-disconnected", text
    assert episode["outcome"] in ("healed", "escalated") and not episode["wrong_actions"], text
    assert clean_lab.prefect.deployment()["paused"] == (clean_lab.cfg.schedule_seconds <= 0)  # the lab's mode again
