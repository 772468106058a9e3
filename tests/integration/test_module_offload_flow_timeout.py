"""offload_flow_timeout through real ansible-playbook on a copy of the lab's rendered flow file (the lab's own
copy is edited by the Scenario 5 end-to-end tests)."""
from __future__ import annotations

import hashlib
import shutil

import pytest
from ansible_run import ROOT, run_module

pytestmark = pytest.mark.beside_the_lab  # see tests/conftest.py

SOURCE = ROOT / "lab/services/flows/iceberg_offload_flow.py"


@pytest.fixture()
def flow_file(tmp_path):
    path = tmp_path / "flows" / "iceberg_offload_flow.py"
    path.parent.mkdir()
    shutil.copy(SOURCE, path)
    path.chmod(0o640)
    return path


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_check_mode_shows_the_diff_and_writes_nothing(flow_file):
    before = _digest(flow_file)
    result = run_module("offload_flow_timeout", {"path": str(flow_file), "timeout": 1200}, check=True)
    assert result["changed"] and result["previous_timeout"] == 600 and result["timeout"] == 1200
    assert "timeout=600)" in result["diff"]["before"] and "timeout=1200)" in result["diff"]["after"]
    assert _digest(flow_file) == before
    assert list(flow_file.parent.iterdir()) == [flow_file]  # no backup either


def test_raise_backs_up_keeps_the_mode_and_is_idempotent_and_reverts_byte_for_byte(flow_file):
    original = flow_file.read_bytes()
    raised = run_module("offload_flow_timeout", {"path": str(flow_file), "timeout": 1200})
    assert raised["changed"] and raised["previous_timeout"] == 600
    text = flow_file.read_text()
    assert "check=True, timeout=1200)" in text and text.count("timeout=600") == 0
    assert (flow_file.stat().st_mode & 0o777) == 0o640
    backup = raised["backup_file"]
    assert backup.startswith(str(flow_file)) and open(backup, "rb").read() == original

    again = run_module("offload_flow_timeout", {"path": str(flow_file), "timeout": 1200})
    assert not again["changed"] and "backup_file" not in again

    reverted = run_module("offload_flow_timeout", {"path": str(flow_file), "timeout": 600})
    assert reverted["changed"] and reverted["previous_timeout"] == 1200
    assert flow_file.read_bytes() == original


@pytest.mark.parametrize("edit, args, message", [
    (None, {"timeout": 0}, "timeout must be between 1 and 86400 seconds, got 0."),
    (None, {"function": "offload_table; rm"}, "Invalid function name"),
    (lambda t: t.replace("timeout=600)", "timeout=TIMEOUT)"), {}, "is not an integer literal (TIMEOUT)"),
    (lambda t: t + "\n\ndef offload_table():\n    pass\n", {}, "expected one function 'offload_table', found 2"),
    (lambda t: t.replace("def offload_table", "def offload_table(:"), {}, "is not valid Python"),
])
def test_bad_input_is_one_line_and_changes_nothing(flow_file, edit, args, message):
    if edit:
        flow_file.write_text(edit(flow_file.read_text()))
    before = _digest(flow_file)
    result = run_module("offload_flow_timeout", {"path": str(flow_file), "timeout": 1200, **args})
    assert result.get("failed"), result
    assert message in result["msg"] and "\n" not in result["msg"] and "Traceback" not in str(result)
    assert _digest(flow_file) == before and len(list(flow_file.parent.iterdir())) == 1


def test_missing_file_is_named(tmp_path):
    result = run_module("offload_flow_timeout", {"path": str(tmp_path / "nope.py"), "timeout": 1200})
    assert result.get("failed") and result["msg"].startswith(f"Cannot read the flow file {tmp_path / 'nope.py'}")
