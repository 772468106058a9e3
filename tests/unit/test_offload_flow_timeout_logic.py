"""Finding and setting the task timeout literal of K2's flow file (runbook Scenario 5, mitigation A)."""
from __future__ import annotations

from pathlib import Path

import pytest
from offload_flow_timeout_logic import FlowFileError, find_timeout, set_timeout

LAB_FLOW = Path(__file__).resolve().parents[2] / "lab/services/flows/iceberg_offload_flow.py"

K2_LIKE = '''import subprocess

@task(name="offload-table", retries=2)
def offload_table(cfg: dict) -> int:
    """Runs with a timeout=600 in the docstring too."""
    logger.info("✓ Starting: timeout=600")  # non-ASCII before the literal on other lines
    cmd = ["docker", "exec", "k2-spark-iceberg", "python3", "x.py"]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600)  # 10-minute timeout
    except subprocess.TimeoutExpired:
        logger.error("✗ Offload timeout: %s (exceeded 10 minutes)", cfg)
        raise


def other():
    subprocess.run(["true"], timeout=5)
'''.encode()


def test_finds_the_literal_of_the_task_function_only():
    value, start, end = find_timeout(K2_LIKE, "offload_table")
    assert value == 600
    assert K2_LIKE[start:end] == b"600"
    assert K2_LIKE[:start].endswith(b"check=True, timeout=")


def test_sets_only_that_literal_and_keeps_everything_else():
    updated, previous = set_timeout(K2_LIKE, "offload_table", 1200)
    assert previous == 600
    assert updated == K2_LIKE.replace(b"check=True, timeout=600)", b"check=True, timeout=1200)")
    assert b"timeout=600 in the docstring" in updated and b"timeout=5)" in updated
    assert find_timeout(updated, "offload_table")[0] == 1200


def test_round_trip_restores_the_file_byte_for_byte():
    raised, _ = set_timeout(K2_LIKE, "offload_table", 1200)
    assert set_timeout(raised, "offload_table", 600)[0] == K2_LIKE


def test_non_ascii_before_the_literal_on_the_same_line():
    source = 'import subprocess\ndef offload_table():\n    s = "✓✓"; subprocess.run(["x"], timeout=600)\n'.encode()
    updated, _ = set_timeout(source, "offload_table", 1200)
    assert updated.decode().endswith('subprocess.run(["x"], timeout=1200)\n')


def test_the_lab_flow_source_has_k2s_literal():
    assert find_timeout(LAB_FLOW.read_bytes(), "offload_table")[0] == 600


@pytest.mark.parametrize("source, message", [
    (b"def offload_table(:\n", "not valid Python"),
    (b"def other():\n    pass\n", "expected one function 'offload_table', found 0"),
    (b"import subprocess\ndef offload_table():\n    subprocess.run(['x'])\n",
     "expected one subprocess.run(..., timeout=...) in offload_table, found 0"),
    (b"import subprocess\ndef offload_table():\n    subprocess.run(['x'], timeout=1)\n    subprocess.run(['y'], timeout=2)\n",
     "found 2"),
    (b"import subprocess\nT = 600\ndef offload_table():\n    subprocess.run(['x'], timeout=T)\n",
     "not an integer literal (T)"),
    (b"import subprocess\ndef offload_table():\n    subprocess.run(['x'], timeout=600.0)\n", "not an integer literal"),
    (b"import subprocess\ndef offload_table():\n    subprocess.run(['x'], timeout=True)\n", "not an integer literal"),
])
def test_refuses_what_it_cannot_edit_safely(source, message):
    with pytest.raises(FlowFileError, match=None) as err:
        set_timeout(source, "offload_table", 1200, name="flow file /x.py")
    assert message in str(err.value)
    assert str(err.value).startswith("flow file /x.py") and "\n" not in str(err.value)


def test_messages_name_the_flow_file_by_default():
    with pytest.raises(FlowFileError) as err:
        find_timeout(b"def other():\n    pass\n", "offload_table")
    assert str(err.value) == "flow file: expected one function 'offload_table', found 0."
    with pytest.raises(FlowFileError) as err:
        set_timeout(b"def other():\n    pass\n", "offload_table", 900)
    assert str(err.value) == "flow file: expected one function 'offload_table', found 0."


@pytest.mark.parametrize("name, prefix", [("flows/x.py", "flows/x.py: "), (None, "flow file: ")])
def test_a_value_that_is_no_literal_after_the_edit_is_refused_naming_the_file(name, prefix):
    # -5 is written as "-5": an expression, not an integer literal; the check of the edited file refuses it.
    args = {} if name is None else {"name": name}
    with pytest.raises(FlowFileError) as err:
        set_timeout(K2_LIKE, "offload_table", -5, **args)
    assert str(err.value) == (f"{prefix}the timeout of subprocess.run in offload_table is not an integer literal "
                              "(-5); edit it by hand.")
