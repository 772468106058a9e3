"""The project's ansible.cfg as ansible-core reads it (ansible-config): what production and AWX jobs inherit from it
when they run in the project directory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_CONFIG = Path(sys.executable).parent / "ansible-config"


def _settings() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}  # the file alone
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    proc = subprocess.run([str(ANSIBLE_CONFIG), "dump", "--format", "json"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {s["name"]: s for s in json.loads(proc.stdout) if isinstance(s, dict) and "name" in s}


def test_host_keys_are_checked_and_awx_inventory_scripts_parse():
    settings = _settings()
    assert settings["HOST_KEY_CHECKING"]["value"] is True  # a changed SSH key is refused, never trusted
    assert "script" in settings["INVENTORY_ENABLED"]["value"]  # AWX's job inventory is an executable
    assert settings["INVENTORY_UNPARSED_IS_FAILED"]["value"] is True  # no host must not end "successful"
