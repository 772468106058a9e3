"""Run integration tests on a twin of the lab standing in for it: make test's second lane.

  .venv/bin/python tests/run_on_twin.py d tests/integration -m on_a_twin -q

Brings twin <name> up (lab/twin.py; idempotent), offloads every table once (the baseline the lab's tests expect),
then runs pytest with the twin's K2_LAB_* variables (the tests' LabConfig is the twin's) and an inventory where
host k2-lab is the twin (ANSIBLE_INVENTORY for the playbooks, K2_TEST_INVENTORY_ROOT for molecule: both act on the
twin). The twin has its own containers, network, ports, state dir and lock, so these tests run while others run on
the main lab. The twin stays up: `lab/twin.py <name> down` removes it (make test does, at its end).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lab"))

import lab_clients  # noqa: E402
import twin  # noqa: E402

# The baseline is set-up, not a test: a first run of a fresh twin may time out while the machine is busy elsewhere.
BASELINE_ATTEMPTS = 3


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in twin.NAMES:
        print(__doc__, file=sys.stderr)
        return 2
    name, pytest_args = argv[0], argv[1:]
    up = twin.labctl(name, "up", capture_output=True, text=True, timeout=900)
    if up.returncode != 0:
        print(f"run_on_twin: twin {name} did not come up:\n{up.stdout}{up.stderr}", file=sys.stderr)
        return 1
    cfg = twin.config(name)
    prefect = lab_clients.Prefect(cfg)
    for _ in range(BASELINE_ATTEMPTS):
        baseline = prefect.wait(prefect.trigger([]), 300)
        if baseline["state_type"] == "COMPLETED":
            break
    else:
        print(f"run_on_twin: twin {name}'s baseline offload failed {BASELINE_ATTEMPTS} times, last: "
              f"{baseline['state'].get('message')}", file=sys.stderr)
        return 1
    hosts = twin.write_stand_in_inventory(name)  # <root>/inventory/lab/hosts.yml
    env = {**os.environ, **twin.env(name), "ANSIBLE_INVENTORY": str(hosts),
           "K2_TEST_INVENTORY_ROOT": str(hosts.parents[2])}
    return subprocess.run([str(ROOT / ".venv" / "bin" / "pytest"), *pytest_args], cwd=ROOT, env=env,
                          check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
