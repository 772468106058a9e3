"""offload_report (action_plugins/offload_report.py): the report lands whole, owner-only, in check mode too; bad
input and an unwritable place are one line. The plugin runs through real ansible-playbook on localhost."""
from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("offload_report_action", ROOT / "action_plugins" / "offload_report.py")
action = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(action)


def test_the_directory_is_created_owner_only_and_the_file_replaced_whole(tmp_path):
    dest = tmp_path / "reports" / "nested" / "diagnose-k2-lab.json"
    assert action.write_report(str(dest), '{"status": "healthy"}', 0o600) == 21
    assert stat.S_IMODE(dest.parent.stat().st_mode) == 0o700 and stat.S_IMODE(dest.stat().st_mode) == 0o600
    action.write_report(str(dest), "second", 0o640)
    assert dest.read_text() == "second" and stat.S_IMODE(dest.stat().st_mode) == 0o640
    assert sorted(os.listdir(dest.parent)) == ["diagnose-k2-lab.json"]  # no temporary file left


def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(action.os, "replace", refuse)
    with pytest.raises(PermissionError):
        action.write_report(str(tmp_path / "r.json"), "x", 0o600)
    assert os.listdir(tmp_path) == []


def run(tmp_path, args: dict, *extra: str) -> tuple[int, dict]:
    playbook = tmp_path / "play.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False,
                                     "tasks": [{"name": "w", "offload_report": args}]}]))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "json",
           "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", str(playbook), *extra],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    out = json.loads(proc.stdout)
    return proc.returncode, out["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_written_in_check_mode_too_and_never_changed(tmp_path):
    dest = tmp_path / "out" / "report.json"
    rc, result = run(tmp_path, {"content": "{{ {'a': 1} | to_nice_json }}", "dest": str(dest)}, "--check")
    assert rc == 0 and result["changed"] is False and result["size"] == dest.stat().st_size
    assert json.loads(dest.read_text()) == {"a": 1}


@pytest.mark.parametrize("args, message", [
    ({"content": "x", "dest": "/proc/k2/report.json"}, "Cannot write the report /proc/k2/report.json: "),
    ({"content": "x", "dest": "{{ playbook_dir }}"}, "dest must name the report file, got "),
    ({"content": "x", "dest": "/tmp/r.json", "mode": "rw"}, "mode must be octal, e.g. 0600, got 'rw'."),
    ({"dest": "/tmp/r.json"}, "missing required arguments: content"),
], ids=["unwritable", "a directory", "bad mode", "no content"])
def test_bad_input_or_place_is_one_line(tmp_path, args, message):
    rc, result = run(tmp_path, args)
    assert rc != 0 and result["failed"] and message in result["msg"], result
    assert "\n" not in result["msg"].strip() and "Traceback" not in json.dumps(result)
