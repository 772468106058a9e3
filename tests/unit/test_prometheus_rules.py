"""The early-warning rules shipped with the product (prometheus/k2-offload-early-warning.rules.yml): valid for
`promtool check rules`, their behaviour pinned by `promtool test rules tests/promtool/*.test.yml`, every alert tested
there, and a broken rule is caught (the tests can fail)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "prometheus" / "k2-offload-early-warning.rules.yml"
TESTS = sorted((ROOT / "tests" / "promtool").glob("*.test.yml"))
LAB_METRICS = (ROOT / "lab" / "services" / "flows" / "offload_metrics.py",
               ROOT / "lab" / "services" / "prefect" / "worker_supervisor.py")


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(path).exists():
        pytest.fail("promtool not found: install Debian's prometheus package (scripts/bootstrap.sh does)")
    return path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=ROOT)


def alerts(path: Path = RULES) -> list[dict]:
    return [r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_check_rules(promtool):
    proc = run(promtool, "check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in yaml.safe_load(RULES.read_text())['groups'])} rules found" in proc.stdout


@pytest.mark.parametrize("test_file", TESTS, ids=lambda p: p.name)
def test_promtool_test_rules(promtool, test_file):
    proc = run(promtool, "test", "rules", str(test_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_there_are_promtool_tests():
    assert len(TESTS) >= 2  # a glob that finds nothing would make the test above vanish, not fail


def test_every_alert_is_exercised_and_fires_somewhere_in_the_promtool_tests():
    fired, checked = set(), set()
    for path in TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test") or []:
                checked.add(check["alertname"])
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names == checked == fired, f"untested: {names - checked}, never seen firing: {names - fired}"


def test_every_alert_carries_what_on_call_needs():
    for alert in alerts():
        assert alert["labels"]["severity"] in ("warning", "critical"), alert["alert"]
        assert {"summary", "description", "runbook"} <= set(alert["annotations"]), alert["alert"]
        assert alert.get("for"), f"{alert['alert']}: no `for`, it would fire on one evaluation"


def test_rules_use_the_metrics_the_offload_exports():
    exported = set()
    for path in LAB_METRICS:
        exported |= set(re.findall(r'(?:Counter|Histogram|Gauge|GaugeMetricFamily)\(\s*"(\w+)"', path.read_text()))
    exprs = " ".join(r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"])
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"\b(offload_\w+)", exprs)}
    assert used and used <= exported, f"not exported by the offload: {used - exported}"


def test_a_broken_rule_fails_its_promtool_test(promtool, tmp_path):
    """The lag threshold moved from 17 to 27 min: the test that expects the late cycle to alert must fail."""
    (tmp_path / "prometheus").mkdir()
    (tmp_path / "tests" / "promtool").mkdir(parents=True)
    text = RULES.read_text()
    assert text.count("> 17\n") == 1
    (tmp_path / "prometheus" / RULES.name).write_text(text.replace("> 17\n", "> 27\n"))
    test_file = ROOT / "tests" / "promtool" / "k2-offload-early-warning.test.yml"
    shutil.copy(test_file, tmp_path / "tests" / "promtool" / test_file.name)
    proc = run(promtool, "test", "rules", str(tmp_path / "tests" / "promtool" / test_file.name))
    assert proc.returncode != 0
    assert "IcebergOffloadLagApproaching" in proc.stdout + proc.stderr


def test_check_rules_rejects_an_invalid_expression(promtool, tmp_path):
    broken = tmp_path / "broken.rules.yml"
    broken.write_text(RULES.read_text().replace("> 17\n", "> \n", 1))
    proc = run(promtool, "check", "rules", str(broken))
    assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr
